import type pg from 'pg';
import { z } from 'zod';
import type { Service } from '@switchyard/messaging';
import { AppError, createPgPool } from '@switchyard/platform';
import { delegationProjections, ProjectionRunner } from '@switchyard/read-models';
import { Dispatcher, type DispatcherOptions } from './dispatcher.js';
import { startTasksService } from './service.js';
import { DispatcherLeases } from './leases.js';
import { DEFAULT_MAX_QUEUED, DEFAULT_MAX_QUEUED_BYTES } from './submission.js';

export type StartDispatcherOptions = DispatcherOptions & {
  /** Run the delegation projections here (default true). Set false when another process runs them. */
  readonly runProjections?: boolean;
  /** Partitions the tasks hash into; the same in every dispatcher of a deployment. Default DISPATCHER_PARTITIONS or 16. */
  readonly partitions?: number;
  /** Lease renewal and rebalancing interval. Default DISPATCHER_LEASE_TICK_MS or 1000 ms. */
  readonly leaseTickMs?: number;
  /** A lease not renewed for this long is taken over. Default DISPATCHER_LEASE_TTL_MS or 5000 ms. */
  readonly leaseTtlMs?: number;
  /** Member id in the lease tables (default host-pid-random). */
  readonly memberId?: string;
};

/** Every dispatcher serves; kept for callers written when one was active and the others stood by. */
export type DispatcherRole = 'active' | 'standby';

export interface DispatcherHandle {
  /** Always `active`: every dispatcher serves (the tasks of the partitions it leases). */
  readonly role: DispatcherRole;
  readonly dispatcher: Dispatcher;
  readonly service: Service;
  readonly projections?: ProjectionRunner;
  readonly leases: DispatcherLeases;
  /** Resolves at once (kept for callers of the leader-lock era). */
  whenActive(): Promise<void>;
  stop(): Promise<void>;
}

/** Scale-out and queue settings from the environment (zod: a bad value stops the start naming the variable). */
const leaseEnv = z.object({
  DISPATCHER_PARTITIONS: z.coerce.number().int().min(1).max(1024).default(16),
  DISPATCHER_LEASE_TICK_MS: z.coerce.number().int().min(50).max(60_000).default(1_000),
  DISPATCHER_LEASE_TTL_MS: z.coerce.number().int().min(200).max(600_000).default(5_000),
  DISPATCHER_MAX_QUEUED: z.coerce.number().int().min(1).max(10_000_000).default(DEFAULT_MAX_QUEUED),
  DISPATCHER_MAX_QUEUED_BYTES: z.coerce
    .number()
    .int()
    .min(1024 * 1024)
    .max(64 * 1024 * 1024 * 1024)
    .default(DEFAULT_MAX_QUEUED_BYTES),
});

/**
 * DISPATCHER_LEASE_TTL_MS as the dispatchers read it (its default when unset or not a valid
 * value): how long a dispatcher may go without renewing its leases, which the monitor needs to
 * judge a dispatcher's heartbeat (a dispatcher refuses to start on an invalid value).
 */
export function dispatcherLeaseTtlMs(env: Record<string, string | undefined> = process.env): number {
  const ttl = leaseEnv.shape.DISPATCHER_LEASE_TTL_MS;
  const parsed = ttl.safeParse(env.DISPATCHER_LEASE_TTL_MS);
  return parsed.success ? parsed.data : ttl.parse(undefined);
}

/**
 * Start a task dispatcher. Any number of processes may run one; all serve at once, each driving
 * the tasks of the partitions it leases (see DispatcherLeases and docs/scale-out.md):
 * 1. The delegation projections start here and are caught up (several runners are safe: the
 *    ProjectionRunner's compare-and-set keeps two from applying an event twice).
 * 2. The dispatcher starts (agents discovered and probed, the log watched), holding nothing yet.
 * 3. The leases start: the first tick takes this member's share of the partitions (all of them
 *    when it is alone), raises their fences, waits for the read model to reach the log's head
 *    and recovers their queued and in-flight tasks. Later ticks renew, rebalance and take over
 *    the partitions of dispatchers whose leases expired.
 * 4. The `tasks` NATS service starts (queue group: any dispatcher answers; a submission for a
 *    partition held elsewhere is recorded and taken over by its owner from the log).
 * `stop()`: the service stops, every partition is drained (bounded) and given back, so the others
 * take it on their next tick, then the dispatcher and the projections stop.
 */
export async function startDispatcher(opts: StartDispatcherOptions): Promise<DispatcherHandle> {
  const env = leaseEnv.safeParse(process.env);
  if (!env.success)
    throw new AppError(
      'validation',
      `bad dispatcher lease configuration: ${env.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  const runner = opts.runProjections !== false ? await startProjections(opts) : undefined;
  const schema = opts.schema ?? 'delegation';
  const log = opts.logger.child({ component: 'dispatcher-start', schema });
  // eslint-disable-next-line prefer-const -- assigned below, after the leases whose callbacks read it
  let dispatcher: Dispatcher | undefined;
  // Renewals on connections of their own: a busy dispatcher pool must not delay them past the TTL.
  const leasePool = createPgPool(
    { ...(opts.pool.options as pg.PoolConfig), max: 2, application_name: 'switchyard-dispatcher-leases' },
    { name: 'dispatcher-leases', logger: opts.logger },
  );
  const leases: DispatcherLeases = new DispatcherLeases({
    pool: leasePool,
    store: opts.store,
    schema,
    partitions: opts.partitions ?? env.data.DISPATCHER_PARTITIONS,
    tickMs: opts.leaseTickMs ?? env.data.DISPATCHER_LEASE_TICK_MS,
    ttlMs: opts.leaseTtlMs ?? env.data.DISPATCHER_LEASE_TTL_MS,
    logger: opts.logger,
    ...(opts.memberId ? { memberId: opts.memberId } : {}),
    onAcquire: async (taken) => {
      // The previous owner's last events must be in the read model the recovery reads.
      if (runner)
        await runner
          .waitFor()
          .catch((err) => log.warn({ err }, 'delegation projections behind; recovering from what they have'));
      await dispatcher?.acquire(taken.map((t) => t.partition));
    },
    onDrain: async (p) => dispatcher?.drain(p),
    onLost: (p) => dispatcher?.lose(p),
  });
  dispatcher = new Dispatcher({
    ...opts,
    maxQueued: opts.maxQueued ?? env.data.DISPATCHER_MAX_QUEUED,
    maxQueuedBytes: opts.maxQueuedBytes ?? env.data.DISPATCHER_MAX_QUEUED_BYTES,
    ownership: leases,
  });
  let service: Service | undefined;
  try {
    await dispatcher.start();
    await leases.start();
    service = await startTasksService(opts.nats, dispatcher, opts.logger);
    // The service's subscriptions are at the server before the caller is told it serves.
    await opts.nats.flush();
  } catch (err) {
    await service?.stop().catch(() => undefined);
    await leases.stop().catch(() => undefined);
    await dispatcher.stop().catch(() => undefined);
    await runner?.stop().catch(() => undefined);
    await leasePool.end().catch(() => undefined);
    throw err;
  }
  log.info(
    { member: leases.memberId, partitions: [...leases.owned().keys()].sort((a, b) => a - b) },
    'dispatcher serving',
  );
  const d = dispatcher;
  const svc = service;
  let stopping: Promise<void> | undefined;
  return {
    role: 'active',
    dispatcher: d,
    service: svc,
    leases,
    ...(runner ? { projections: runner } : {}),
    whenActive: () => Promise.resolve(),
    stop: () =>
      (stopping ??= (async () => {
        await svc.stop().catch(() => undefined);
        await leases.stop();
        await leasePool.end().catch(() => undefined);
        await d.stop();
        await runner?.stop();
      })()),
  };
}

/** The delegation projections, started and caught up (the dispatcher recovers its queue from them). */
async function startProjections(opts: StartDispatcherOptions): Promise<ProjectionRunner> {
  const runner = new ProjectionRunner({
    store: opts.store,
    db: { pool: opts.pool },
    projections: delegationProjections(opts.schema),
    logger: opts.logger,
  });
  try {
    await runner.start();
    // However long the log, while the read models move: they may replay millions of events.
    await runner.catchUp();
    return runner;
  } catch (err) {
    await runner.stop().catch(() => undefined);
    throw err;
  }
}
