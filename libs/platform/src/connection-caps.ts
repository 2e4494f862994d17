import { readFileSync } from 'node:fs';
import type { Server } from 'node:net';
import type { Server as HttpServer } from 'node:http';

/**
 * How many connections one listener keeps open: in all, and from one address. Each open
 * connection is a file descriptor of the process, and every role of a launcher shares them:
 * without a cap, one client holding thousands of half-sent requests exhausted the descriptors,
 * and the process's database pools, NATS and monitor probes failed with EMFILE until it let go.
 */
export interface ConnectionCaps {
  readonly max: number;
  readonly perAddress: number;
}

export const DEFAULT_CONNECTION_CAPS: ConnectionCaps = { max: 2_048, perAddress: 512 };

/**
 * Refuses a connection past the caps by closing it at once (the server's `maxConnections` for
 * the total; a count per remote address for the share). `onRefused` is called at most once a
 * second per address, for a log line.
 */
/** Why a connection was closed at once: the listener's total, one address's share, or the budget it shares with others. */
export interface ConnectionRefusal {
  readonly address: string;
  readonly open: number;
  readonly limit: 'max' | 'perAddress' | 'budget';
}

/** Connections several listeners of the process keep open together at most (counted by capConnections). */
export class ConnectionBudget {
  open = 0;
  constructor(readonly limit: number) {}
}

export function capConnections(
  server: Server | HttpServer,
  caps: ConnectionCaps,
  onRefused?: (why: ConnectionRefusal) => void,
  budget?: ConnectionBudget,
): void {
  server.maxConnections = caps.max;
  const perAddress = new Map<string, number>();
  const lastReported = new Map<string, number>();
  const report = (address: string, open: number, limit: ConnectionRefusal['limit']) => {
    const now = Date.now();
    if ((lastReported.get(address) ?? 0) > now - 1_000) return;
    lastReported.set(address, now);
    if (lastReported.size > 10_000) lastReported.clear();
    onRefused?.({ address, open, limit });
  };
  server.on('drop', (data?: { remoteAddress?: string }) => report(data?.remoteAddress ?? 'unknown', caps.max, 'max'));
  server.on('connection', (socket) => {
    const address = addressShare(socket.remoteAddress ?? 'unknown');
    const open = (perAddress.get(address) ?? 0) + 1;
    if (open > caps.perAddress) {
      report(address, open - 1, 'perAddress');
      socket.destroy();
      return;
    }
    if (budget && budget.open >= budget.limit) {
      report(address, budget.open, 'budget');
      socket.destroy();
      return;
    }
    perAddress.set(address, open);
    if (budget) budget.open++;
    socket.once('close', () => {
      if (budget) budget.open--;
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
  });
}

/**
 * The project's own MCP servers and agents: callers are the connectors and the dispatcher (a few
 * pooled connections each), so a smaller share of the process's descriptors than the gateway's.
 * One address may hold them all: every caller is the system's own, from one loopback address.
 */
export const INTERNAL_LISTENER_CAPS: ConnectionCaps = { max: 512, perAddress: 512 };

/**
 * The process's limit of open files (RLIMIT_NOFILE, from /proc/self/limits): the soft one, or the
 * hard one (how far the soft may be raised); undefined where it cannot be read or is unlimited.
 */
export function openFilesLimit(which: 'soft' | 'hard' = 'soft'): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    const value = m?.[which === 'soft' ? 1 : 2];
    return value && value !== 'unlimited' ? Number(value) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The internal listeners' caps within the process's open-files limit: each at most a sixteenth of
 * it (not under 32, room for a caller's bulkhead and side stream), all of them together a quarter
 * (the budget). At 512 each whatever the limit, under `ulimit -n 1024` 450 half-sent requests to
 * one MCP server's port took the launcher to 1,023 descriptors for a minute: the connectors'
 * sessions to the other servers failed with EMFILE. The rest are the gateway's (half) and the
 * pools', NATS's and files'. `limit` undefined: not known, the caps as configured.
 */
export function internalListenerCaps(limit: number | undefined): {
  caps: ConnectionCaps;
  budget: number;
} {
  if (limit === undefined) return { caps: INTERNAL_LISTENER_CAPS, budget: Number.POSITIVE_INFINITY };
  const max = Math.min(INTERNAL_LISTENER_CAPS.max, Math.max(32, Math.floor(limit / 16)));
  const budget = Math.max(max, Math.floor(limit / 4));
  return { caps: { max, perAddress: Math.min(INTERNAL_LISTENER_CAPS.perAddress, max) }, budget };
}

/**
 * `caps` within the process's descriptors: a listener keeps at most `share` of them open, and one
 * address a quarter of that. A cap above the limit (2,048 connections under `ulimit -n 512`) let
 * one client's idle keep-alive connections take every descriptor: the other keys' connections
 * were reset and the database pools failed with EMFILE.
 */
export function capsWithinDescriptors(
  caps: ConnectionCaps,
  share: number,
  limit: number | undefined = openFilesLimit(),
): ConnectionCaps {
  if (limit === undefined) return caps;
  const room = Math.max(8, Math.floor(limit * share));
  const max = Math.min(caps.max, room);
  return { max, perAddress: Math.min(caps.perAddress, max, Math.max(2, Math.floor(room / 4))) };
}

/** A request not received whole within this long is answered 408 and closed (Node's default is 5 min). */
export const LISTENER_RECEIVE_TIMEOUT_MS = 60_000;

/**
 * `http.createServer` options that answer 408 and close a request not received whole within
 * `receiveTimeoutMs` (checked a few times within it). Node reads them at construction only: set
 * on the server afterwards, they do nothing.
 */
export function receiveTimeoutOptions(receiveTimeoutMs: number = LISTENER_RECEIVE_TIMEOUT_MS): {
  requestTimeout: number;
  headersTimeout: number;
  connectionsCheckingInterval: number;
} {
  return {
    requestTimeout: receiveTimeoutMs,
    headersTimeout: Math.min(60_000, receiveTimeoutMs),
    connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(receiveTimeoutMs / 4))),
  };
}

/** What the internal listeners of this process hold together, made at the first one's start. */
let internalBudget: ConnectionBudget | undefined;

/** The caps of the process's internal listeners, when lowered to fit its open-files limit. */
export interface LoweredInternalCaps {
  readonly configured: ConnectionCaps;
  readonly applied: ConnectionCaps;
  /** All internal listeners of the process together. */
  readonly budget: number;
  readonly openFilesLimit: number | undefined;
  readonly openFilesHardLimit: number | undefined;
}

/**
 * An internal HTTP listener's connection caps (made with receiveTimeoutOptions()), fitted to the
 * open-files limit (internalListenerCaps) and sharing the process's budget with the other internal
 * listeners. `onLowered` is called for the first listener of the process whose caps were lowered,
 * for one warning.
 */
export function boundInternalListener(
  server: HttpServer,
  onRefused?: (why: ConnectionRefusal) => void,
  onLowered?: (lowered: LoweredInternalCaps) => void,
): void {
  const limit = openFilesLimit();
  const { caps, budget } = internalListenerCaps(limit);
  const first = internalBudget === undefined;
  internalBudget ??= new ConnectionBudget(budget);
  if (first && caps.max < INTERNAL_LISTENER_CAPS.max)
    onLowered?.({
      configured: INTERNAL_LISTENER_CAPS,
      applied: caps,
      budget: internalBudget.limit,
      openFilesLimit: limit,
      openFilesHardLimit: openFilesLimit('hard'),
    });
  capConnections(server, caps, onRefused, internalBudget);
}

/**
 * What shares one per-address count: an IPv4 address (IPv4-mapped IPv6 included) itself, an IPv6
 * address its /64 (one host is usually given a whole /64, so counting exact addresses would let it
 * open a share per address).
 */
export function addressShare(address: string): string {
  if (!address.includes(':') || /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address)) return address;
  const bare = address.split('%')[0]!.toLowerCase();
  const [head = '', tail] = bare.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
