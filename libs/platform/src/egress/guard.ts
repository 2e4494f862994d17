import { promises as dns, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { AppError } from '../errors.js';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

/**
 * `<PREFIX>_ALLOW_HOSTS` and `<PREFIX>_ALLOW_CIDRS` (comma lists) of an environment: the
 * exceptions an operator grants to a guard (e.g. a webhook receiver on the local network).
 * Default prefix `EGRESS`: external agents and alert webhooks.
 */
export function egressPolicyFromEnv(
  env: Record<string, string | undefined> = process.env,
  prefix = 'EGRESS',
): EgressPolicy {
  const allowCidrs = commaList(env[`${prefix}_ALLOW_CIDRS`]);
  const bad = allowCidrs.find((c) => !isCidr(c));
  if (bad !== undefined)
    throw new AppError(
      'validation',
      `${prefix}_ALLOW_CIDRS: not a CIDR range: ${bad} (for example 10.0.0.0/8 or ::1/128)`,
      { variable: `${prefix}_ALLOW_CIDRS` },
    );
  return { allowHosts: commaList(env[`${prefix}_ALLOW_HOSTS`]), allowCidrs };
}

/** The items of a comma-separated setting, trimmed, empty ones left out (unset: none). */
export function commaList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Whether `text` is an address range an egress policy takes (`10.1.0.0/16`, `::1/128`). */
export function isCidr(text: string): boolean {
  return ipaddr.isValidCIDR(text.trim());
}

/** What a setting of address ranges with an item that is none is told (the schemas' message). */
export const NOT_A_CIDR = 'not a CIDR range (for example 10.0.0.0/8 or ::1/128)';

/** Resolves a host name to all its addresses (injectable so tests can fake DNS). */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

export interface EgressPolicy {
  /** Host names that may be reached whatever they resolve to: `api.example.com`, `*.example.com`, `127.0.0.1`. */
  readonly allowHosts?: readonly string[];
  /** Address ranges that may be reached even though they are not public: `10.1.0.0/16`, `::1/128`. */
  readonly allowCidrs?: readonly string[];
  readonly resolve?: Resolver;
}

const defaultResolver: Resolver = (hostname) => dns.lookup(hostname, { all: true, verbatim: true });

/** Bare host of a URL hostname (`[::1]` -> `::1`), lower case, without a trailing dot. */
export function bareHost(hostname: string): string {
  return hostname
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '')
    .toLowerCase();
}

/**
 * ipaddr.js names every special-purpose range (loopback, private, linkLocal,
 * carrierGradeNat, multicast, unspecified, uniqueLocal, ipv4Mapped, 6to4, teredo,
 * rfc6052 NAT64, reserved, ...); only `unicast` is public. Ranges that embed or tunnel to
 * an IPv4 address (ipv4Mapped, 6to4, teredo, rfc6052) are refused with the rest, even
 * when the embedded address is public: a caller wanting one uses the plain IPv4 form.
 * ipaddr.js has no name for the deprecated IPv4-compatible block `::/96` (`::127.0.0.1`
 * is `::7f00:1`, which stacks still route to 127.0.0.1), so it is refused here as
 * `ipv4Compatible`. Every IPv4 spelling is read the way a resolver reads it: ipaddr.js
 * takes `0177.0.0.1`, `0x7f.1`, `127.1` and `2130706433` as 127.0.0.1.
 *
 * Returns the special range an address belongs to, or undefined when it is public.
 */
export function nonPublicRange(ip: string): string | undefined {
  const addr = parseAddress(ip);
  if (!addr) return 'invalid';
  const range = addr.range();
  if (range !== 'unicast') return range;
  return addr.kind() === 'ipv6' && addr.match(IPV4_COMPATIBLE, 96) ? 'ipv4Compatible' : undefined;
}

const IPV4_COMPATIBLE = ipaddr.parse('::') as ipaddr.IPv6;

/** An address in any spelling ipaddr.js or a resolver accepts (zone ids kept), or undefined. */
export function parseAddress(ip: string): Addr | undefined {
  const text = bareHost(ip);
  if (!ipaddr.isValid(text)) return undefined;
  try {
    return ipaddr.parse(text);
  } catch {
    return undefined;
  }
}

/** True when a URL hostname is an address literal in any spelling (not a name to resolve). */
export const isAddressLiteral = (hostname: string): boolean => parseAddress(hostname) !== undefined;

/**
 * The SSRF guard: decides whether an outbound connection may go to an address, and
 * provides a `lookup` for Node's http agent so the socket connects to exactly the
 * addresses that were checked (no gap for DNS rebinding between check and connect).
 */
export class EgressGuard {
  private readonly hosts: readonly string[];
  private readonly cidrs: readonly [Addr, number][];
  private readonly resolver: Resolver;

  constructor(policy: EgressPolicy = {}) {
    this.hosts = (policy.allowHosts ?? []).map((h) => bareHost(h.trim())).filter(Boolean);
    this.cidrs = (policy.allowCidrs ?? []).map((c) => {
      const text = c.trim();
      if (!ipaddr.isValidCIDR(text)) throw new AppError('validation', `not a CIDR range: ${text}`);
      return ipaddr.parseCIDR(text);
    });
    this.resolver = policy.resolve ?? defaultResolver;
  }

  /** True when the host name itself is allow-listed (exact, or `*.suffix`). */
  hostAllowed(hostname: string): boolean {
    const host = bareHost(hostname);
    return this.hosts.some((h) => (h.startsWith('*.') ? host.endsWith(h.slice(1)) : h === host));
  }

  private cidrAllowed(ip: string): boolean {
    const addr = parseAddress(ip);
    return !!addr && this.cidrs.some(([net, bits]) => addr.kind() === net.kind() && addr.match(net, bits));
  }

  /** Throw `forbidden` unless `ip` is public, in an allowed range, or reached through an allowed host. */
  checkAddress(hostname: string, ip: string): void {
    if (this.hostAllowed(hostname)) return;
    const range = nonPublicRange(ip);
    if (range === undefined || (range !== 'invalid' && this.cidrAllowed(ip))) return;
    throw new AppError(
      'forbidden',
      `refusing to connect to ${bareHost(hostname)} (${ip}): ${range} addresses are blocked by the egress policy; allow-list the host or range to permit it`,
      { host: bareHost(hostname), address: ip, range },
      false,
    );
  }

  /** Check a URL before any connection: scheme, and the address when the host is an IP literal. */
  checkUrl(url: URL): void {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new AppError('validation', `only http and https URLs are allowed, got ${url.protocol}`);
    }
    const host = bareHost(url.hostname);
    if (isAddressLiteral(host)) this.checkAddress(host, host);
  }

  /**
   * Check a URL completely before storing or using it: scheme, and every address its host
   * resolves to now. Connections still go through `lookup`, which checks again (rebinding).
   */
  async checkUrlResolved(url: string | URL): Promise<void> {
    let u: URL;
    try {
      u = typeof url === 'string' ? new URL(url) : url;
    } catch {
      // Not repeated: a URL's path and query can be its own credential, and errors get logged.
      throw new AppError('validation', 'not a valid URL');
    }
    this.checkUrl(u);
    await this.resolveChecked(u.hostname);
  }

  /** Resolve a host and check every address; any blocked address refuses the host. */
  async resolveChecked(hostname: string): Promise<LookupAddress[]> {
    const host = bareHost(hostname);
    const literal = parseAddress(host);
    if (literal) {
      this.checkAddress(host, host);
      // Connect to the canonical form of the address that was checked (`0x7f.1` -> 127.0.0.1).
      return [{ address: literal.toString(), family: literal.kind() === 'ipv6' ? 6 : 4 }];
    }
    let addrs: LookupAddress[];
    try {
      addrs = await this.resolver(host);
    } catch (e) {
      throw new AppError('unavailable', `cannot resolve ${host}: ${(e as Error).message}`, { host }, true);
    }
    if (addrs.length === 0) throw new AppError('unavailable', `${host} has no addresses`, { host });
    // One blocked address is enough to refuse: mixing public and internal records is a rebinding trick.
    for (const a of addrs) this.checkAddress(host, a.address);
    return addrs;
  }

  /** A `lookup` for http.request / net.connect that only ever yields checked addresses. */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    this.resolveChecked(hostname).then(
      (addrs) => {
        const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family;
        const usable = family === 4 || family === 6 ? addrs.filter((a) => a.family === family) : addrs;
        if (usable.length === 0) {
          callback(Object.assign(new Error(`${hostname} has no IPv${family} address`), { code: 'ENOTFOUND' }), '', 4);
        } else if (options.all) {
          (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, usable);
        } else {
          callback(null, usable[0]!.address, usable[0]!.family);
        }
      },
      (e: Error) => callback(e as NodeJS.ErrnoException, '', 4),
    );
  };
}
