import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Pool } from 'pg';
import type { EventStore } from '@switchyard/event-store';
import { processMemoryBudget } from '@switchyard/platform';
import {
  EVENT_STORE,
  GATEWAY_OPTIONS,
  NATS_CONNECTION,
  PG_POOL,
  READINESS_EXTRA,
  type ReadinessProbe,
  type ResolvedGatewayOptions,
} from '../tokens.js';

export interface CheckResult {
  readonly status: 'up' | 'down' | 'degraded';
  readonly durationMs: number;
  readonly error?: string;
}

export interface ReadinessReport {
  readonly ready: boolean;
  /** Ready, but some check says `degraded` (a component of this process is being restarted). */
  readonly degraded: boolean;
  readonly checks: Record<string, CheckResult>;
  /** Names of the failed checks. */
  readonly failed: string[];
}

class ProbeTimeout extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

/** Reject when `work` has not settled within `ms` (the work itself cannot be cancelled; its late result is ignored). */
async function within<T>(work: () => Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ProbeTimeout(ms)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs the readiness probes in parallel, each bounded by a timeout: Postgres
 * `select 1`, a NATS round trip, the event store's ping, plus any extra probe
 * the host or a feature module registered.
 */
@Injectable()
export class ReadinessService {
  private readonly probes = new Map<string, ReadinessProbe>();

  constructor(
    @Inject(PG_POOL) pool: Pool,
    @Inject(NATS_CONNECTION) nats: NatsConnection,
    @Inject(EVENT_STORE) store: EventStore,
    @Inject(READINESS_EXTRA) extra: Readonly<Record<string, ReadinessProbe>>,
    @Inject(GATEWAY_OPTIONS) private readonly options: ResolvedGatewayOptions,
  ) {
    this.register('postgres', () => pool.query('select 1'));
    this.register('nats', async () => {
      // rtt() on a closed connection rejects; while reconnecting it waits, hence the timeout.
      if (nats.isClosed()) throw new Error('connection closed');
      await nats.rtt();
    });
    this.register('eventStore', async () => {
      await store.ping();
      // It answers reads but refuses writes (out of disk): ready, but not as if nothing were wrong.
      const refusal = store.recentRefusal?.();
      return refusal ? { degraded: refusal } : undefined;
    });
    // Past the high mark of the process's memory ceiling workflow starts are refused (503): ready, but say so.
    this.register('memory', () => {
      const budget = processMemoryBudget();
      if (!budget.isHigh()) return Promise.resolve(undefined);
      const r = budget.read();
      const ceilingMb = Math.round(r.ceilingBytes / 1048576);
      return Promise.resolve({
        degraded: `${Math.round(r.share * 100)} % of the memory ceiling (${ceilingMb} MiB, from ${r.ceilingSource}) in use: workflow starts refused`,
      });
    });
    for (const [name, probe] of Object.entries(extra)) this.register(name, probe);
  }

  /** Add (or replace) a probe: feature modules inject this service and call it from their constructor. */
  register(name: string, probe: ReadinessProbe): void {
    this.probes.set(name, probe);
  }

  async check(): Promise<ReadinessReport> {
    const entries = await Promise.all(
      [...this.probes].map(async ([name, probe]): Promise<[string, CheckResult]> => {
        const started = performance.now();
        try {
          const out = await within(probe, this.options.readinessTimeoutMs);
          const durationMs = Math.round(performance.now() - started);
          const degraded = (out as { degraded?: unknown } | null | undefined)?.degraded;
          if (typeof degraded === 'string')
            return [name, { status: 'degraded', durationMs, error: degraded.slice(0, 500) }];
          return [name, { status: 'up', durationMs }];
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          return [
            name,
            { status: 'down', durationMs: Math.round(performance.now() - started), error: message.slice(0, 200) },
          ];
        }
      }),
    );
    const checks = Object.fromEntries(entries);
    const failed = entries.filter(([, r]) => r.status === 'down').map(([n]) => n);
    return { ready: failed.length === 0, degraded: entries.some(([, r]) => r.status === 'degraded'), checks, failed };
  }
}
