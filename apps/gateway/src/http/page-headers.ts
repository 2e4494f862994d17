/**
 * The policy of the pages the gateway serves on the API's own origin (the operator console at
 * /ui, the API docs at /docs): only their own scripts (no inline, no eval), their own API (same
 * origin), no framing (their buttons act with the key a visitor typed). Inline styles are
 * allowed because the console's chart library and the Swagger UI set style attributes.
 */
export const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Every header such a page carries. */
export const PAGE_HEADERS = {
  'content-security-policy': PAGE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
} as const;
