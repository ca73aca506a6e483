/**
 * Errors a client sees in its acks. They are part of the wire protocol: small, stable strings.
 * Append new ones; never rename.
 */
export const CLIENT_ERRORS = [
  "forbidden",
  "invalid_room",
  "invalid_event",
  "invalid_payload",
  "payload_too_large",
  "rate_limited",
  "too_many_rooms",
  "unknown_event",
  "unavailable",
  "internal",
  "invalid_token",
  "token_expired",
  "payload_too_deep",
] as const;

export type ClientErrorCode = (typeof CLIENT_ERRORS)[number];

export type AckOk<T extends object = Record<never, never>> = { ok: true } & T;
export interface AckError {
  error: ClientErrorCode;
}
export type AckReply<T extends object = Record<never, never>> = AckOk<T> | AckError;

export const ok = (): AckOk => ({ ok: true });
export const fail = (error: ClientErrorCode): AckError => ({ error });
