import { SignJWT } from "jose";

/** Claims a gateway reads from a client token (docs/SECURITY.md). */
export interface ClientClaims {
  sub: string;
  /** Room patterns the client may join (`prefix*`). */
  rooms: string[];
  /** Room patterns the client may publish to. */
  publish: string[];
  /** `iss`, when the gateways check it (AUTH_JWT_ISSUER). */
  issuer?: string | undefined;
  /** `aud`, when the gateways check it (AUTH_JWT_AUDIENCE). */
  audience?: string | undefined;
}

/**
 * An HS256 token for one load-test client: the gateways check it with AUTH_JWT_SECRET (the key
 * as its UTF-8 string). It expires `ttlSeconds` from now.
 */
export function signClientToken(
  secret: string,
  claims: ClientClaims,
  ttlSeconds: number,
): Promise<string> {
  const jwt = new SignJWT({ rooms: claims.rooms, publish: claims.publish })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + Math.ceil(ttlSeconds));
  if (claims.issuer !== undefined) jwt.setIssuer(claims.issuer);
  if (claims.audience !== undefined) jwt.setAudience(claims.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}
