import { promises as dns, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { AppError } from '@switchyard/platform';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

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
  return hostname.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '').toLowerCase();
}

/**
 * ipaddr.js names every special-purpose range (loopback, private, linkLocal,
 * carrierGradeNat, multicast, unspecified, uniqueLocal, ipv4Mapped, 6to4, teredo,
 * rfc6052 NAT64, ...); only `unicast` is public. Ranges that embed or tunnel to an
 * IPv4 address (ipv4Mapped, 6to4, teredo, rfc6052) are refused with the rest, even
 * when the embedded address is public: a caller wanting one uses the plain IPv4 form.
 *
 * Returns the special range an address belongs to, or undefined when it is public.
 */
export function nonPublicRange(ip: string): string | undefined {
  if (!ipaddr.isValid(ip)) return 'invalid';
  const range = ipaddr.parse(ip).range();
  return range === 'unicast' ? undefined : range;
}

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
    const addr = ipaddr.parse(ip);
    return this.cidrs.some(([net, bits]) => addr.kind() === net.kind() && addr.match(net, bits));
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
    if (ipaddr.isValid(host)) this.checkAddress(host, host);
  }

  /** Resolve a host and check every address; any blocked address refuses the host. */
  async resolveChecked(hostname: string): Promise<LookupAddress[]> {
    const host = bareHost(hostname);
    if (ipaddr.isValid(host)) {
      this.checkAddress(host, host);
      return [{ address: host, family: ipaddr.parse(host).kind() === 'ipv6' ? 6 : 4 }];
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
