/** A URL fit for logs and error messages: its password replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = "***";
    return parsed.toString();
  } catch {
    // An unparsable value may still hold credentials: never echo it.
    return "(unparsable URL)";
  }
}

/** A configuration value fit for logs: secrets hidden, URLs without their password. */
export function redactSetting(name: string, value: string): string {
  if (/SECRET|KEYS|PASSWORD|TOKEN/.test(name)) return "***";
  if (name.endsWith("_URL")) return redactUrl(value);
  return value;
}
