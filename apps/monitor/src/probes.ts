import type pg from 'pg';
import { createPgPool, guardPgPool } from '@switchyard/platform';

/** Outcome of one health check. `responseMs` is the time the check took (also on failure). */
export interface ProbeResult {
  readonly ok: boolean;
  readonly responseMs: number;
  readonly error?: string;
  readonly details?: Record<string, unknown>;
}

/**
 * A health probe of one service. `check` resolves when the service answered well and throws
 * (or rejects) otherwise; the Monitor times it, applies the timeout and turns it into a
 * ProbeResult. `check` should honour `signal` to stop work after the timeout.
 */
export interface Probe {
  readonly service: string;
  /** postgres | nats | http | mcp | agent | ... (labels and reports only). */
  readonly kind: string;
  check(signal: AbortSignal): Promise<void | Record<string, unknown>>;
}

/**
 * What later wiring supplies for an MCP server or an agent: e.g. an MCP `ping` request or a
 * NATS request to the agent's `$SRV.PING` endpoint. Return details to show in the report.
 */
export type ProbeCheck = (signal: AbortSignal) => Promise<void | Record<string, unknown>>;

/** An MCP server / agent / anything probe from a callback. */
export function functionProbe(service: string, kind: string, check: ProbeCheck): Probe {
  return { service, kind, check };
}

/** PostgreSQL: `select 1` on a dedicated one-connection pool, so it also notices a lost connection. */
export function postgresProbe(service: string, connection: string | pg.Pool): Probe & { close(): Promise<void> } {
  const owned = typeof connection === 'string';
  // A client erroring (server restart) must not crash the process; the next check reconnects.
  const pool = owned
    ? createPgPool(
        { connectionString: connection, max: 1, connectionTimeoutMillis: 5_000, idleTimeoutMillis: 30_000 },
        { name: `probe-${service}` },
      )
    : guardPgPool(connection, { name: `probe-${service}` });
  return {
    service,
    kind: 'postgres',
    async check() {
      await pool.query('select 1');
    },
    async close() {
      if (owned) await pool.end();
    },
  };
}

/** Structural subset of a NATS connection (@nats-io/nats-core NatsConnection), so this package does not pin one. */
export interface RttCapable {
  rtt(): Promise<number>;
}

/** NATS: `nc.rtt()` (a PING/PONG round trip to the server). */
export function natsProbe(service: string, nc: RttCapable): Probe {
  return {
    service,
    kind: 'nats',
    async check() {
      return { rttMs: await nc.rtt() };
    },
  };
}

/**
 * HTTP: GET `url` (e.g. `http://host:port/health`); any 2xx is healthy, whatever the body says
 * (a server answering 200 `unconfigured` is reachable, not down). A JSON body's `status` is
 * reported as `state`.
 */
export function httpProbe(service: string, url: string, opts: { headers?: Record<string, string> } = {}): Probe {
  return {
    service,
    kind: 'http',
    async check(signal) {
      const res = await fetch(url, { signal, headers: opts.headers ?? {} });
      // Read the body whole so the connection goes back to the keep-alive pool.
      const text = await res.text().catch(() => '');
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return { status: res.status, ...bodyState(text) };
    },
  };
}

function bodyState(text: string): { state?: string } {
  try {
    const body = JSON.parse(text) as unknown;
    const state = body && typeof body === 'object' ? (body as { status?: unknown }).status : undefined;
    return typeof state === 'string' ? { state: state.slice(0, 64) } : {};
  } catch {
    return {};
  }
}

/** Describe an error for a report: the cause code of a failed fetch (ECONNREFUSED) beats "fetch failed". */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    if (cause && typeof cause === 'object' && 'code' in cause) return `${err.message}: ${String(cause.code)}`;
    return err.message;
  }
  return String(err);
}

/** Watching a probe while it waits for its answer. */
export interface ProbeWatch {
  /** Elapsed times (ms) at which `onMark` is told the probe is still waiting (those not below the timeout are ignored). */
  readonly marks?: readonly number[];
  /** Called with the elapsed time when a mark passes and no answer has come yet. */
  readonly onMark?: (elapsedMs: number) => void;
}

/**
 * Run a probe with a timeout and timing; never throws. With `watch`, a probe still waiting when
 * it passes a mark says so then: a response-time threshold is crossed at that moment, whether
 * the answer comes later or never.
 */
export async function runProbe(probe: Probe, timeoutMs: number, watch: ProbeWatch = {}): Promise<ProbeResult> {
  const ac = new AbortController();
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const markTimers = (watch.onMark ? (watch.marks ?? []) : [])
    .filter((m) => m >= 0 && m < timeoutMs)
    .map((m) =>
      setTimeout(() => {
        if (!settled) watch.onMark!(performance.now() - started);
      }, m),
    );
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        ac.abort();
        reject(new Error(`probe timed out after ${timeoutMs} ms`));
      }, timeoutMs);
    });
    const details = await Promise.race([probe.check(ac.signal), timeout]);
    return { ok: true, responseMs: performance.now() - started, ...(details ? { details } : {}) };
  } catch (err) {
    return { ok: false, responseMs: performance.now() - started, error: describeError(err) };
  } finally {
    settled = true;
    clearTimeout(timer);
    for (const t of markTimers) clearTimeout(t);
  }
}
