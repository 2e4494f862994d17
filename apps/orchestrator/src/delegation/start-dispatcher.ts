import pg from 'pg';
import type { Service } from '@switchyard/messaging';
import { AppError, createPgClient, type Logger } from '@switchyard/platform';
import { ProjectionRunner } from '@switchyard/read-models';
import { Dispatcher, type DispatcherOptions } from './dispatcher.js';
import { performanceProjection, tasksProjection } from './projections.js';
import { startTasksService } from './service.js';

export type StartDispatcherOptions = DispatcherOptions & {
  /** Run the delegation projections here (default true). Set false when another process runs them. */
  readonly runProjections?: boolean;
  /** A standby tries to take the leader lock this often (ms). Default 1000. */
  readonly standbyPollMs?: number;
};

export type DispatcherRole = 'active' | 'standby';

export interface DispatcherHandle {
  /** `active`: this process holds the leader lock and dispatches; `standby`: it waits to take over. */
  readonly role: DispatcherRole;
  /** The running dispatcher; throws `unavailable` while this process stands by. */
  readonly dispatcher: Dispatcher;
  /** The running `tasks` NATS service; throws `unavailable` while this process stands by. */
  readonly service: Service;
  readonly projections?: ProjectionRunner;
  /** Resolves when this process is (or becomes) the active dispatcher; rejects (`unavailable`) if it is stopped first. */
  whenActive(): Promise<void>;
  stop(): Promise<void>;
}

/** `application_name` of the session holding (or trying for) the leader lock, as seen in pg_stat_activity. */
export const DISPATCHER_LEADER_APPLICATION_NAME = 'switchyard-dispatcher-leader';
/** Key of the leader lock; $1 is the delegation schema, so separate deployments in one database do not exclude each other. */
const LOCK_KEY_SQL = `hashtext('switchyard.delegation.dispatcher.' || $1::text)`;

/** The delegation projections (tasks table and per-agent performance) for a ProjectionRunner. */
export const delegationProjections = (schema = 'delegation') => [tasksProjection(schema), performanceProjection(schema)];

/**
 * Start the task dispatcher role. Any number of processes may run it; exactly one is active.
 * 1. The projections start here in every process, active or standby (the ProjectionRunner's
 *    compare-and-set keeps two runners from applying an event twice), and are caught up.
 * 2. Leadership is a session-level PostgreSQL advisory lock held on a dedicated connection.
 *    One try now: won -> the dispatcher (discovery, recovery, timers) and the `tasks` NATS
 *    service start and an active handle is returned; lost -> a standby handle is returned at
 *    once and the lock is tried every `standbyPollMs`. A standby that wins waits for the
 *    projections to catch up, then starts the dispatcher, whose start recovers the queue and
 *    the in-flight tasks the previous one left.
 * 3. If the lock's session ends (PostgreSQL restarted, the session was terminated), the active
 *    process stops serving at once and stands by again: it never dispatches without the lock.
 * 4. `stop()` stops the service and the dispatcher, releases the lock (a standby takes over on
 *    its next try) and stops the projections.
 * The lock is no fencing token: a write still in flight when the session drops can land after
 * another process took over; the task streams' revision check keeps such a write from
 * overwriting the new dispatcher's decisions.
 */
export async function startDispatcher(opts: StartDispatcherOptions): Promise<DispatcherHandle> {
  const runner = opts.runProjections !== false ? await startProjections(opts) : undefined;
  const handle = new LeaderElectedDispatcher(opts, runner);
  try {
    await handle.firstTry();
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}

/** The delegation projections, started and caught up (the dispatcher recovers its queue from them). */
async function startProjections(opts: StartDispatcherOptions): Promise<ProjectionRunner> {
  const runner = new ProjectionRunner({ store: opts.store, db: { pool: opts.pool }, projections: delegationProjections(opts.schema), logger: opts.logger });
  try {
    await runner.start();
    await runner.waitFor();
    return runner;
  } catch (err) {
    await runner.stop().catch(() => undefined);
    throw err;
  }
}

interface Serving {
  readonly dispatcher: Dispatcher;
  readonly service: Service;
}

class LeaderElectedDispatcher implements DispatcherHandle {
  readonly projections?: ProjectionRunner;
  private readonly log: Logger;
  private readonly schema: string;
  private readonly pollMs: number;
  /** The lock session: holds the lock while active, tries for it while standing by. */
  private client: pg.Client | undefined;
  private serving: Serving | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Lock attempts and step-downs run one at a time, in order. */
  private turn: Promise<unknown> = Promise.resolve();
  private readonly activeWaiters = new Set<{ resolve: () => void; reject: (e: AppError) => void }>();
  private stopped = false;
  private readonly stopSignal: Promise<void>;
  private signalStop!: () => void;

  constructor(
    private readonly opts: StartDispatcherOptions,
    runner: ProjectionRunner | undefined,
  ) {
    if (runner) this.projections = runner;
    this.schema = opts.schema ?? 'delegation';
    this.pollMs = opts.standbyPollMs ?? 1_000;
    this.log = opts.logger.child({ component: 'dispatcher-leader', schema: this.schema });
    this.stopSignal = new Promise<void>((resolve) => (this.signalStop = resolve));
  }

  get role(): DispatcherRole {
    return this.serving ? 'active' : 'standby';
  }

  get dispatcher(): Dispatcher {
    return this.current().dispatcher;
  }

  get service(): Service {
    return this.current().service;
  }

  whenActive(): Promise<void> {
    if (this.serving) return Promise.resolve();
    if (this.stopped) return Promise.reject(new AppError('unavailable', 'this dispatcher is stopped'));
    return new Promise((resolve, reject) => this.activeWaiters.add({ resolve, reject }));
  }

  /** The start-up try: errors (no database, the dispatcher failing to start) fail the start-up, as before there was a lock. */
  firstTry(): Promise<void> {
    return this.enqueue(() => this.tryToLead(true));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.signalStop();
    // An attempt under way sees `stopped` and undoes what it started; a step-down finishes.
    await this.turn;
    const serving = this.serving;
    this.serving = undefined;
    if (serving) await this.stopServing(serving);
    await this.releaseLock();
    for (const w of this.activeWaiters) w.reject(new AppError('unavailable', 'this dispatcher was stopped before it became active'));
    this.activeWaiters.clear();
    await this.projections?.stop();
  }

  private current(): Serving {
    if (this.serving) return this.serving;
    if (this.stopped) throw new AppError('unavailable', 'this dispatcher is stopped');
    throw new AppError('unavailable', 'this process stands by; another dispatcher is active');
  }

  private enqueue<T>(step: () => Promise<T>): Promise<T> {
    const run = this.turn.then(step);
    this.turn = run.catch(() => undefined);
    return run;
  }

  private schedule(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.enqueue(() => this.tryToLead(false)).catch((err) => this.log.error({ err }, 'leader lock attempt failed'));
    }, this.pollMs);
    this.timer.unref();
  }

  /** One try for the lock; on winning, start serving. Only `first` lets errors through. */
  private async tryToLead(first: boolean): Promise<void> {
    if (this.stopped || this.serving) return;
    let client: pg.Client;
    try {
      client = this.client ?? (await this.connect());
      const res = await client.query<{ won: boolean }>(`select pg_try_advisory_lock(${LOCK_KEY_SQL}) as won`, [this.schema]);
      if (!res.rows[0]?.won) {
        if (first) this.log.info({ standbyPollMs: this.pollMs }, 'dispatcher stands by (another process holds the leader lock)');
        this.schedule();
        return;
      }
    } catch (err) {
      this.dropClient();
      if (first) throw err;
      this.log.warn({ err }, 'cannot try the dispatcher leader lock; trying again');
      this.schedule();
      return;
    }
    try {
      await this.serve(client, first);
    } catch (err) {
      // Ending the session releases the lock, so another process can try.
      this.dropClient();
      if (first) throw err;
      this.log.error({ err }, 'taking over as dispatcher failed; leader lock released, trying again');
      this.schedule();
    }
  }

  /** Holding the lock on `client`: start the dispatcher and the service, unless the lock is lost (or stop() called) meanwhile. */
  private async serve(client: pg.Client, first: boolean): Promise<void> {
    const holding = () => this.client === client && !this.stopped;
    // The previous dispatcher's last events must be in the read model its successor recovers from.
    if (!first && this.projections) await Promise.race([this.projections.waitFor(), this.stopSignal]);
    if (!holding()) return;
    const dispatcher = new Dispatcher(this.opts);
    let service: Service | undefined;
    try {
      await dispatcher.start();
      if (holding()) {
        service = await startTasksService(this.opts.nats, dispatcher, this.opts.logger);
        // The service's subscriptions are at the server before anyone is told this process is active.
        await this.opts.nats.flush();
      }
    } catch (err) {
      await this.stopServing({ dispatcher, ...(service ? { service } : {}) });
      throw err;
    }
    if (!service || !holding()) {
      await this.stopServing({ dispatcher, ...(service ? { service } : {}) });
      return;
    }
    this.serving = { dispatcher, service };
    this.log.info({}, first ? 'dispatcher is active (holds the leader lock)' : 'dispatcher took over (standby -> active)');
    for (const w of this.activeWaiters) w.resolve();
    this.activeWaiters.clear();
  }

  private async stopServing(s: { readonly dispatcher: Dispatcher; readonly service?: Service }): Promise<void> {
    await s.service?.stop().catch(() => undefined);
    await s.dispatcher.stop();
  }

  private async connect(): Promise<pg.Client> {
    // The pool keeps its config in `options`: same server and credentials, on a connection of its own.
    const client = createPgClient({
      ...(this.opts.pool.options as pg.ClientConfig),
      application_name: DISPATCHER_LEADER_APPLICATION_NAME,
      keepAlive: true,
      // Notice a dead peer in seconds rather than the OS default of hours, ideally before the server drops the session.
      keepAliveInitialDelayMillis: 10_000,
    }, { name: 'dispatcher-leader-lock' });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    try {
      await client.connect();
    } catch (err) {
      client.end().catch(() => undefined);
      throw err;
    }
    this.client = client;
    return client;
  }

  /** The lock session failed or ended: the lock is gone with it. */
  private lost(client: pg.Client, err?: Error): void {
    if (this.client !== client) return; // a session already dropped (or never taken into use)
    this.client = undefined;
    client.end().catch(() => undefined);
    if (this.stopped) return;
    const serving = this.serving;
    if (serving) {
      // Role and getters say standby from here on; the service and dispatcher stop right behind.
      this.serving = undefined;
      this.log.warn({ err }, 'dispatcher lost its leader lock (its PostgreSQL session ended); stopped serving, standing by');
      void this.enqueue(() => this.stopServing(serving)).catch((e) => this.log.error({ err: e }, 'stopping the dispatcher after losing the lock failed'));
    } else {
      this.log.warn({ err }, 'dispatcher leader-lock connection lost; reconnecting');
    }
    this.schedule();
  }

  private dropClient(): void {
    const client = this.client;
    this.client = undefined;
    client?.end().catch(() => undefined);
  }

  private async releaseLock(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    // Explicit, so the lock is free when stop() returns whatever the session's teardown order.
    await client.query('select pg_advisory_unlock_all()').catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}
