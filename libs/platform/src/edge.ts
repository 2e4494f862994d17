/**
 * Host and Origin checks for every HTTP listener of the system (MCP servers, agents, gateway).
 *
 * Why: a listener on 127.0.0.1 is still reachable from a browser through DNS rebinding (a page
 * on attacker.example whose name then resolves to 127.0.0.1) or through a page served by another
 * local port. The browser then sends `Host: attacker.example` and `Origin: http://attacker.example`
 * (or `Origin: http://localhost:<other port>`), which is what we refuse. Non-browser clients send
 * no Origin, and their Host is the address they dialled, so they pass.
 */

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

export interface EdgePolicy {
  /**
   * Extra accepted `Host` values, lower case: `name` (any port) or `name:port`.
   * Loopback names with the port the request arrived on are always accepted.
   */
  readonly allowedHosts: readonly string[];
  /** Extra accepted `Origin` values (`scheme://host[:port]`). Loopback origins with the listening port are always accepted. */
  readonly allowedOrigins: readonly string[];
}

export const emptyEdgePolicy: EdgePolicy = { allowedHosts: [], allowedOrigins: [] };

const list = (s: string | undefined): string[] =>
  (s ?? '')
    .split(',')
    .map((x) => x.trim().toLowerCase())
    .filter(Boolean);

/** The origin of a URL-ish string in normal form (`http://a.example:8080`), or undefined when it is not one. */
function normalOrigin(value: string): string | undefined {
  try {
    const u = new URL(value);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    return u.origin.toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * `ALLOWED_HOSTS` and `ALLOWED_ORIGINS` (comma lists), plus the bind address itself when it is
 * a specific non-loopback address (a listener bound to 10.0.0.5 is meant to be called as 10.0.0.5).
 */
export function edgePolicyFromEnv(
  env: Record<string, string | undefined> = process.env,
  bindHost?: string,
): EdgePolicy {
  const hosts = list(env.ALLOWED_HOSTS);
  if (bindHost && !['0.0.0.0', '::', '127.0.0.1', '::1', 'localhost'].includes(bindHost))
    hosts.push(bindHost.includes(':') ? `[${bindHost.toLowerCase()}]` : bindHost.toLowerCase());
  const origins = list(env.ALLOWED_ORIGINS).map((o) => normalOrigin(o) ?? o);
  return { allowedHosts: hosts, allowedOrigins: origins };
}

/** Merge two policies (e.g. the environment's and one given in code). */
export function mergeEdgePolicies(a: EdgePolicy, b: Partial<EdgePolicy> | undefined): EdgePolicy {
  if (!b) return a;
  return {
    allowedHosts: [...a.allowedHosts, ...(b.allowedHosts ?? []).map((h) => h.toLowerCase())],
    allowedOrigins: [...a.allowedOrigins, ...(b.allowedOrigins ?? []).map((o) => normalOrigin(o) ?? o.toLowerCase())],
  };
}

export type EdgeVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

const refused = (reason: string): EdgeVerdict => ({ ok: false, reason });

/**
 * Check a request's `Host` and `Origin` against the policy. `localPort` is the port the
 * connection arrived on (`req.socket.localPort`), so a listener on port 0 needs no configuration.
 * The reason names the header, never echoes its value at length (it is attacker input).
 */
export function checkHostAndOrigin(
  headers: { host?: string | undefined; origin?: string | undefined },
  localPort: number | undefined,
  policy: EdgePolicy,
): EdgeVerdict {
  const hostHeader = headers.host;
  if (!hostHeader) return refused('missing Host header');
  let hostname: string;
  let port: string;
  try {
    const u = new URL(`http://${hostHeader}`);
    // URL drops the default port: a bare `Host: localhost` means port 80.
    if (u.username || u.password || u.pathname !== '/' || u.search || u.hash) return refused('malformed Host header');
    hostname = u.hostname.toLowerCase();
    port = u.port || '80';
  } catch {
    return refused('malformed Host header');
  }
  const samePort = localPort !== undefined && port === String(localPort);
  const hostOk =
    (LOOPBACK_NAMES.has(hostname) && samePort) ||
    policy.allowedHosts.includes(hostname) ||
    policy.allowedHosts.includes(`${hostname}:${port}`);
  if (!hostOk) return refused('Host header is not an allowed host of this server');

  const origin = headers.origin;
  if (origin === undefined) return { ok: true };
  const normal = normalOrigin(origin);
  // `Origin: null` (sandboxed frames, file://) is a browser with no trustworthy origin.
  if (!normal) return refused('Origin header is not an allowed origin of this server');
  if (policy.allowedOrigins.includes(normal)) return { ok: true };
  const o = new URL(normal);
  const originPort = o.port || (o.protocol === 'https:' ? '443' : '80');
  if (LOOPBACK_NAMES.has(o.hostname) && localPort !== undefined && originPort === String(localPort))
    return { ok: true };
  return refused('Origin header is not an allowed origin of this server');
}
