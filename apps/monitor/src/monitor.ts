import pg from 'pg';
import { z } from 'zod';
import {
  AppError,
  createLogger,
  createPgPool,
  guardPgPool,
  logAtMostEvery,
  newId,
  type Logger,
} from '@switchyard/platform';
import {
  PostgresEventStore,
  WrongExpectedVersionError,
  type EventMetadata,
  type EventStore,
} from '@switchyard/event-store';
import { ProjectionRunner } from '@switchyard/read-models';
import {
  decideAlerting,
  dueSilences,
  evolveAlerting,
  initialAlertingState,
  invalidMatchers,
  type AlertInstance,
  type AlertingCommand,
  type AlertingEvent,
  type AlertingState,
  type Matcher,
  type Silence,
} from './domain/alerts.js';
import {
  decideHealth,
  evolveHealth,
  healthPolicySchema,
  initialServiceHealth,
  verdictStart,
  type HealthEvent,
  type ServiceHealth,
} from './domain/health.js';
import {
  availabilityReport,
  unprobedGap,
  type AvailabilityWindow,
  type WindowAvailability,
} from './domain/availability.js';
import { computeTrend, widenBuckets, type Trend } from './domain/trends.js';
import { matcherRegexProblem, trendWindows } from '@switchyard/contracts';
import {
  storedAlertRuleSchema,
  defaultAlertRules,
  fingerprint,
  metricNames,
  ruleMatches,
  severitySchema,
  type AlertRule,
  type Labels,
  type Severity,
} from './domain/rules.js';
import { Sampler, type Sample, type SamplerOptions } from './sampler.js';
import { MonitoringStore, defaultRetention, type AlertRow, type Resolution, type ServiceRow } from './store.js';
import { runProbe, type Probe, type ProbeResult } from './probes.js';
import { PrometheusExporter } from './prometheus.js';
import { systemClock, timerAfter, type Timer, type TimerClock } from './timers.js';
import { MONITOR_ACTOR, actorOf, streamOf, type MonitorEvent, type MonitorEventRecord } from './events.js';
import { MONITOR_PROJECTIONS_SCHEMA, monitorProjectionNames, monitorProjections } from './projections.js';

export type { MonitorEvent, MonitorEventRecord } from './events.js';

/** Tunables, parsed by zod when the Monitor is built (a bad value fails fast, naming the field). */
export const monitorSettingsSchema = z.object({
  sampleIntervalMs: z.number().int().positive().default(5_000),
  /** Each service is probed this often (from the start of one probe to the next; a slow one delays only itself). */
  probeIntervalMs: z.number().int().positive().default(5_000),
  /**
   * A probe without an answer by then has failed. Longer than the 5 s response-time threshold, so
   * a slow answer is measured as slow (and alerts as such) instead of counting as unavailable.
   */
  probeTimeoutMs: z.number().int().positive().default(15_000),
  /** Rollup p95 finalisation, retention and silence expiry. */
  maintenanceIntervalMs: z.number().int().positive().default(60_000),
  retention: z
    .object({
      rawMs: z.number().int().positive().default(defaultRetention.rawMs),
      minuteMs: z.number().int().positive().default(defaultRetention.minuteMs),
      hourMs: z.number().int().positive().default(defaultRetention.hourMs),
    })
    .prefault({}),
  healthPolicy: healthPolicySchema.prefault({}),
  slaTargetPercent: z.number().min(0).max(100).default(99.9),
  /**
   * Services that run in the monitor's own process or die with it (a trailing `*` matches a
   * prefix): a time the monitor was not running counts as `down` for them, `unknown` for the rest
   * (see domain/availability.ts).
   */
  colocatedServices: z.array(z.string().min(1)).default([]),
  /**
   * A service of the read model that nothing in this run probes (an agent instance of a process
   * gone before the monitor restarted) is retired this long after the start: it leaves the report.
   */
  retireUnprobedAfterMs: z.number().int().positive().default(120_000),
  /**
   * A service whose last probe is older than this makes the health report degraded (the monitor's
   * data is stale), and two probes of a service further apart than this leave the time between them
   * unmonitored (a suspended host, a stalled monitor, a step of the clock: nobody looked). Default:
   * three probe intervals plus the probe timeout, at least 30 s (see probeGapMsOf).
   */
  probeGapMs: z.number().int().positive().optional(),
  // Stored rules may predate the id grammar and the `for_ms` bound: they still run (input is checked at PUT).
  rules: z.array(storedAlertRuleSchema).default(() => defaultAlertRules.map((r) => ({ ...r }))),
});
export type MonitorSettings = z.infer<typeof monitorSettingsSchema>;

export interface MonitorOptions {
  /** Either a URL (the Monitor owns and closes its pool) or a pool owned by the caller. */
  readonly databaseUrl?: string;
  readonly pool?: pg.Pool;
  /**
   * Receives every event the deciders produce, in order, once it is in the event store and the
   * read models show it, with where it was stored. Errors are logged, not retried.
   */
  readonly publish: (events: readonly MonitorEvent[], records: readonly MonitorEventRecord[]) => Promise<void> | void;
  /**
   * The event log every state change is appended to; the read models are its projections.
   * Default: the PostgreSQL event store in the Monitor's own database (a Monitor on its own).
   */
  readonly eventStore?: EventStore;
  /** Who and which request an event belongs to (default: `actorOf(e)` and the Monitor's correlation id). */
  readonly eventMetadata?: (e: MonitorEvent) => {
    readonly correlationId?: string;
    readonly causationId?: string;
    readonly actor?: string;
  };
  /** How long a change waits for the read models to show it before it is answered anyway (default 10 s). */
  readonly readModelWaitMs?: number;
  readonly logger?: Logger;
  readonly probes?: readonly Probe[];
  readonly sampler?: Sampler | SamplerOptions;
  readonly settings?: z.input<typeof monitorSettingsSchema>;
  readonly correlationId?: string;
  /**
   * The wall clock (event times, windows) and the monotonic clock with its timers (every loop and
   * deadline waits by it, so a step of the wall clock never holds them). Default: the system's.
   */
  readonly clock?: TimerClock;
}

/** How long a service may go without a probe before its data is stale (settings.probeGapMs). */
export function probeGapMsOf(s: Pick<MonitorSettings, 'probeGapMs' | 'probeIntervalMs' | 'probeTimeoutMs'>): number {
  return s.probeGapMs ?? Math.max(30_000, 3 * s.probeIntervalMs + s.probeTimeoutMs);
}

/** A probed service whose last probe is older than probeGapMs: the report about it is out of date. */
export interface StaleProbe {
  readonly service: string;
  /** Its last probe of this run (epoch ms), null when none has finished since the monitor started. */
  readonly lastProbeAt: number | null;
  /** How long since that probe (or since the start), by the monotonic clock. */
  readonly ageMs: number;
}

export interface HealthReport {
  readonly status: ServiceHealth['status'];
  readonly at: number;
  readonly services: readonly ServiceRow[];
  readonly system: {
    readonly cpuPercent: number | null;
    readonly memoryPercent: number | null;
    readonly disks: readonly { mount: string; usedPercent: number }[];
  };
  readonly alerts: { readonly firing: number; readonly pending: number };
  /** Services this run probes that have gone without a probe for longer than probeGapMs. */
  readonly stale: readonly StaleProbe[];
}

export { trendWindows };
// Every window reads a series resolution the store keeps.
trendWindows satisfies Record<string, { ms: number; resolution: Resolution }>;
export type TrendWindow = keyof typeof trendWindows;

export interface SeriesTrend extends Trend {
  readonly labels: Labels;
  /** Width of its buckets: the window's resolution, or a multiple of it (see MAX_TREND_POINTS). */
  readonly bucketMs: number;
}

/**
 * Buckets in one trends answer, all series together: past it the buckets are merged into wider
 * ones (their slope and direction still come from the narrow ones). A week of hourly buckets of
 * 53 probed services was 1.4 MB, past what one reply may carry (413).
 */
export const MAX_TREND_POINTS = 4_000;
const RESOLUTION_MS: Record<string, number> = { '1m': 60_000, '1h': 3_600_000 };

/**
 * A silence to add: from `startsAt` (default: when the monitor takes it) until `endsAt`, or for
 * `durationMs` from its start. A duration is measured from the monitor's clock, so a silence made
 * through a gateway whose clock is off still starts now.
 */
export interface NewSilence {
  readonly matchers: readonly Matcher[];
  readonly createdBy: string;
  readonly comment: string;
  readonly startsAt?: number;
  readonly endsAt?: number;
  readonly durationMs?: number;
}

const matcherSchema = z
  .object({
    name: z.string().min(1),
    value: z.string().max(1_000),
    isRegex: z.boolean().optional(),
    isEqual: z.boolean().optional(),
  })
  .superRefine((m, ctx) => {
    const problem = m.isRegex ? matcherRegexProblem(m.value) : null;
    if (problem) ctx.addIssue({ code: 'custom', path: ['value'], message: problem });
  });
const newSilenceSchema = z
  .object({
    matchers: z.array(matcherSchema).min(1),
    createdBy: z.string().min(1),
    comment: z.string(),
    startsAt: z.number().int().optional(),
    endsAt: z.number().int().optional(),
    durationMs: z.number().int().positive().optional(),
  })
  .refine((s) => (s.endsAt === undefined) !== (s.durationMs === undefined), {
    message: 'give exactly one of endsAt or durationMs',
    path: ['endsAt'],
  });

/** What a commit appended (in order), where, and the append failure that stopped it, if any. */
interface Committed {
  readonly events: readonly MonitorEvent[];
  readonly records: readonly MonitorEventRecord[];
  /** Global position of the last appended event (-1: none). */
  readonly position: number;
  readonly error?: unknown;
}
const nothingCommitted: Committed = { events: [], records: [], position: -1 };

/** The read models an event lands in, to wait for just those. */
function projectionsOf(events: readonly MonitorEvent[]): string[] {
  const names = new Set<string>();
  for (const e of events) {
    if (
      e.type === 'ServiceWentDown' ||
      e.type === 'ServiceDegraded' ||
      e.type === 'ServiceRecovered' ||
      e.type === 'ServiceUnmonitored' ||
      e.type === 'ServiceRetired' ||
      e.type === 'ServiceUnconfigured'
    )
      names.add(monitorProjectionNames.services);
    else if (e.type === 'SilenceAdded' || e.type === 'SilenceExpired') names.add(monitorProjectionNames.silences);
    else names.add(monitorProjectionNames.alerts);
  }
  return [...names];
}

// Metrics whose limit is obvious, for the projection in getPerformanceTrends.
const percentMetrics: ReadonlySet<string> = new Set([
  metricNames.cpuPercent,
  metricNames.memoryPercent,
  metricNames.diskPercent,
]);

/**
 * Runs the sampler and the health probes on intervals, stores samples (with rollups and
 * retention), evaluates alert rules through the alerting decider, tracks service health
 * through the health decider, appends every event the deciders decide to the event store
 * (its projections keep the read models in PostgreSQL) and then hands it to `publish`.
 * All state changes go through one queue, so deciders see a consistent state.
 */
export class Monitor {
  readonly settings: MonitorSettings;
  readonly store: MonitoringStore;
  readonly prometheus: PrometheusExporter;
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly sampler: Sampler;
  private readonly ownsSampler: boolean;
  private readonly log: Logger;
  private readonly probes: Probe[];
  private alerting: AlertingState = initialAlertingState;
  private readonly health = new Map<string, ServiceHealth>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly timers = new Set<Timer>();
  /** The last sample each alert was evaluated with: what a `for` deadline re-evaluates. */
  private readonly lastEvaluated = new Map<string, { rule: AlertRule; labels: Labels; value: number }>();
  /** The `for` deadline armed for each pending alert (by fingerprint), with when it is due on the monotonic clock; none for any other. */
  private readonly deadlines = new Map<string, { timer: Timer; dueMonotonic: number }>();
  /**
   * When each alert went pending in this run, on the monotonic clock, with its `pendingSince` (which
   * names that pending episode): its `for` is measured from there, so a step of the wall clock
   * neither holds it back nor brings it forward.
   */
  private readonly pendingMonotonic = new Map<string, { pendingSince: number; monotonic: number }>();
  private running = false;
  private inFlight = new Set<Promise<unknown>>();
  private loaded = false;
  private readonly eventStore: EventStore;
  private readonly ownsEventStore: boolean;
  /** The monitor's read models (alerts, silences, services, alert rules) as projections of its events. */
  readonly projections: ProjectionRunner;
  /** Last revision of each stream the Monitor appended to (the expected revision of its next append). */
  private readonly revisions = new Map<string, number>();
  /** After stop(): a late deadline evaluation does not wait for projections that no longer run. */
  private projectionsStopped = false;
  /** When start() began probing (epoch ms): what a gap of the previous run ends at. */
  private startedAt: number | null = null;
  /** The same on the monotonic clock: what the `for` of an alert pending from before this run counts from. */
  private startedMonotonic: number | null = null;
  /** Each service's last probe outcome of this run, by both clocks (probe gaps and staleness). */
  private readonly lastProbes = new Map<string, { wall: number; monotonic: number }>();
  /** When this run began probing each service (monotonic): its age until a first probe finishes. */
  private readonly probingSince = new Map<string, number>();
  private readonly clock: TimerClock;

  constructor(private readonly opts: MonitorOptions) {
    this.settings = monitorSettingsSchema.parse(opts.settings ?? {});
    this.clock = opts.clock ?? systemClock;
    if (!opts.pool && !opts.databaseUrl) throw new AppError('validation', 'Monitor needs databaseUrl or pool');
    this.ownsPool = !opts.pool;
    this.pool = opts.pool
      ? guardPgPool(opts.pool, { name: 'monitor' })
      : createPgPool(
          { connectionString: opts.databaseUrl, max: 4 },
          { name: 'monitor', ...(opts.logger ? { logger: opts.logger } : {}) },
        );
    this.store = new MonitoringStore(this.pool);
    this.ownsSampler = !(opts.sampler instanceof Sampler);
    this.sampler = opts.sampler instanceof Sampler ? opts.sampler : new Sampler(opts.sampler ?? {});
    this.log = (opts.logger ?? createLogger('monitor')).child({
      correlationId: opts.correlationId ?? 'monitor',
      component: 'monitor',
    });
    this.probes = [...(opts.probes ?? [])];
    this.prometheus = new PrometheusExporter(() => ({ alerting: this.alerting, health: this.health }));
    this.ownsEventStore = !opts.eventStore;
    this.eventStore =
      opts.eventStore ?? new PostgresEventStore({ pool: this.pool, ...(opts.logger ? { logger: opts.logger } : {}) });
    this.projections = new ProjectionRunner({
      store: this.eventStore,
      db: { pool: this.pool },
      projections: monitorProjections(),
      schema: MONITOR_PROJECTIONS_SCHEMA,
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
  }

  /**
   * Create the schema, start the projections and let them catch up with the log, then rebuild
   * the deciders' in-memory state from the read models (the fold of the log, already computed).
   */
  async init(): Promise<void> {
    if (this.loaded) return;
    await this.store.migrate();
    if (this.ownsEventStore) await this.eventStore.init();
    await this.projections.start();
    // However long the log, while the read models move (a replay of millions of events).
    await this.projections.catchUp(undefined, 60_000);
    this.alerting = await this.store.loadAlertingState();
    this.warnAboutBadMatchers();
    for (const [service, h] of await this.store.loadHealthStates()) this.health.set(service, h);
    this.loaded = true;
  }

  /** Silences stored with a regex that does not compile suppress nothing (see matcherMatches): say so. */
  private warnAboutBadMatchers(): void {
    for (const s of Object.values(this.alerting.silences)) {
      for (const bad of invalidMatchers(s)) {
        this.log.warn(
          {
            silenceId: s.id,
            matcherIndex: bad.index,
            matcherName: bad.matcher.name,
            pattern: bad.matcher.value,
            problem: bad.problem,
          },
          'silence matcher skipped: its regex is not valid, so the silence suppresses nothing',
        );
      }
    }
  }

  /** init(), then run sampling, probes and maintenance on their intervals until stop(). */
  async start(): Promise<void> {
    await this.init();
    this.startedAt = this.clock.now();
    this.startedMonotonic = this.clock.monotonicNow();
    this.pendingMonotonic.clear();
    // A previous run's last probes are the restart's gap (markUnmonitored), not this run's.
    this.lastProbes.clear();
    this.probingSince.clear();
    await this.markUnmonitored(this.startedAt);
    this.running = true;
    const s = this.settings;
    this.loop('sample', s.sampleIntervalMs, () => this.sampleOnce());
    for (const p of this.probes) this.probeLoop(p);
    this.loop('maintenance', s.maintenanceIntervalMs, () => this.maintain(), s.maintenanceIntervalMs);
    const retireAt = this.startedAt + s.retireUnprobedAfterMs;
    this.after(s.retireUnprobedAfterMs, () => {
      void this.retireUnprobed(Math.max(this.clock.now(), retireAt)).catch((err: unknown) =>
        this.log.error({ err }, 'retiring unprobed services failed'),
      );
    });
    const slowest = s.rules.filter(
      (r) => r.metric === metricNames.probeResponseMs && (r.comparator === '>' || r.comparator === '>='),
    );
    for (const r of slowest) {
      if (r.threshold >= s.probeTimeoutMs)
        this.log.warn(
          { rule: r.id, threshold: r.threshold, probeTimeoutMs: s.probeTimeoutMs },
          'a response-time rule at or above the probe timeout can never fire: raise MONITOR_PROBE_TIMEOUT_MS',
        );
    }
    this.log.info(
      {
        sampleIntervalMs: s.sampleIntervalMs,
        probeIntervalMs: s.probeIntervalMs,
        probes: this.probes.map((p) => p.service),
        rules: s.rules.length,
      },
      'monitor started',
    );
  }

  /** Stop the loops, wait for the round in progress, release what the Monitor owns. */
  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    this.deadlines.clear();
    await Promise.allSettled([...this.inFlight]);
    await this.queue.catch(() => undefined);
    this.projectionsStopped = true;
    await this.projections.stop();
    if (this.ownsEventStore) await this.eventStore.close();
    if (this.ownsSampler) this.sampler.close();
    if (this.ownsPool) await this.pool.end();
  }

  /**
   * Add a probe at run time (e.g. an MCP server registered after start). One of a service already
   * probed replaces it (its loop ends at its next tick): a restarted gateway adds its probe again.
   */
  addProbe(probe: Probe): void {
    this.retiredThisRun.delete(probe.service);
    this.unconfigured.delete(probe.service);
    for (let i = this.probes.length - 1; i >= 0; i--)
      if (this.probes[i]!.service === probe.service) this.probes.splice(i, 1);
    this.probes.push(probe);
    if (this.running) this.probeLoop(probe);
  }

  /** Whether a time the monitor did not run counts as down for `service` (settings.colocatedServices). */
  isColocated(service: string): boolean {
    return this.settings.colocatedServices.some((p) =>
      p.endsWith('*') ? service.startsWith(p.slice(0, -1)) : service === p,
    );
  }

  /**
   * Stop probing `service` and retire it (ServiceRetired: it leaves the report and the status, its
   * availability history ends at its last probe), e.g. an agent instance no longer registered.
   * Its active alerts are resolved, since nothing would resolve them later.
   */
  async removeProbe(service: string, reason: string, at = this.clock.now()): Promise<void> {
    this.unconfigured.delete(service);
    for (let i = this.probes.length - 1; i >= 0; i--) if (this.probes[i]!.service === service) this.probes.splice(i, 1);
    this.lastProbes.delete(service);
    this.probingSince.delete(service);
    const row = (await this.store.listServices()).find((r) => r.service === service);
    if (row) await this.retire(row, reason, at);
  }

  /**
   * `service` is listed but cannot run as configured (an MCP server whose credential is not set):
   * it is shown `unconfigured` with `reason` (ServiceUnconfigured, once per reason), is not probed,
   * and is left out of the verdict, the alerts and availability. A probe added for it later (it
   * got configured) decides its status again.
   */
  async markUnconfigured(service: string, kind: string, reason: string, at = this.clock.now()): Promise<void> {
    for (let i = this.probes.length - 1; i >= 0; i--) if (this.probes[i]!.service === service) this.probes.splice(i, 1);
    this.lastProbes.delete(service);
    this.probingSince.delete(service);
    this.unconfigured.add(service);
    this.retiredThisRun.delete(service);
    const done = await this.serial(async () =>
      this.commit(
        decideHealth(
          { type: 'MarkUnconfigured', data: { service, kind, reason }, metadata: this.meta(at) },
          this.health.get(service) ?? initialServiceHealth,
        ),
      ),
    );
    if (done.events.length) this.log.info({ service, reason }, 'service unconfigured: not probed, not an outage');
    await this.settle(done);
  }

  /** Services this run was told are unconfigured (markUnconfigured) and has not probed since. */
  private readonly unconfigured = new Set<string>();

  /**
   * At start, before anything is probed: every service the previous run left in a known state
   * gets ServiceUnmonitored from its last probe to now, so no interval bridges the time the
   * monitor was not running and its `up since` restarts with its next good probe.
   */
  private async markUnmonitored(now: number): Promise<void> {
    const rows = await this.store.listServices();
    const done = await this.serial(async () => {
      const evs: MonitorEvent[] = [];
      for (const row of rows) {
        const state = this.health.get(row.service) ?? initialServiceHealth;
        const from = row.lastProbeAt?.getTime() ?? row.since?.getTime() ?? null;
        if (from === null) continue;
        evs.push(
          ...decideHealth(
            {
              type: 'MarkUnmonitored',
              data: {
                service: row.service,
                kind: row.kind,
                from,
                to: now,
                countsAs: this.isColocated(row.service) ? 'down' : 'unknown',
              },
              metadata: this.meta(now),
            },
            state,
          ),
        );
      }
      return this.commit(evs);
    });
    if (done.events.length)
      this.log.info(
        { services: done.events.length, at: new Date(now).toISOString() },
        'the monitor was not running: services have no up evidence for that time',
      );
    await this.settle(done);
  }

  /** Retire every service of the read model that no probe of this run covers (see retireUnprobedAfterMs). */
  async retireUnprobed(now = this.clock.now()): Promise<string[]> {
    if (this.startedAt === null || now - this.startedAt < this.settings.retireUnprobedAfterMs) return [];
    const probed = new Set([...this.probes.map((p) => p.service), ...this.unconfigured]);
    const gone = (await this.store.listServices()).filter((r) => !probed.has(r.service));
    for (const row of gone) await this.retire(row, 'not probed since the monitor started', now);
    return gone.map((r) => r.service);
  }

  /**
   * Services this run retired and has not probed since: the read model drops a retired row a moment
   * later, and a pass that read it before that (the unprobed services' pass after a removeProbe)
   * would retire it a second time.
   */
  private readonly retiredThisRun = new Set<string>();
  /** A failing round or probe logs once a minute (each repeats every few seconds while, say, the database is full). */
  private readonly failureLogs = new Map<string, ReturnType<typeof logAtMostEvery>>();

  private logFailure(key: string, write: (held: number) => void): void {
    let log = this.failureLogs.get(key);
    if (!log) this.failureLogs.set(key, (log = logAtMostEvery(60_000)));
    log(write);
  }

  /** Retire the service of a read-model row (its kind and last probe are what ServiceRetired records). */
  private async retire(row: ServiceRow, reason: string, at: number): Promise<void> {
    const { service } = row;
    if (this.retiredThisRun.has(service)) return;
    this.retiredThisRun.add(service);
    for (const kind of ['probe', 'waiting']) this.failureLogs.delete(`${kind}:${service}`);
    const done = await this.serial(async () =>
      this.commit(
        decideHealth(
          {
            type: 'RetireService',
            data: { service, kind: row.kind, lastProbeAt: row.lastProbeAt?.getTime() ?? null, reason },
            metadata: this.meta(at),
          },
          this.health.get(service) ?? initialServiceHealth,
        ),
      ),
    );
    this.prometheus.forgetService(service);
    this.log.info({ service, reason }, 'service retired: no longer probed');
    await this.settle(done);
    for (const a of Object.values(this.alerting.alerts)) {
      if (a.status === 'resolved' || a.labels['service'] !== service) continue;
      await this.resolveAlert(a.fingerprint, MONITOR_ACTOR, `${service} is no longer probed`, at).catch(
        (err: unknown) =>
          this.log.warn({ err, fingerprint: a.fingerprint }, 'resolving an alert of a retired service failed'),
      );
    }
  }

  watchProcess(pid: number, name: string): void {
    this.sampler.watchProcess(pid, name);
  }

  /** Run `fn` in `ms` by the monotonic clock (any length: see timerAfter); stop() cancels it. */
  private after(ms: number, fn: () => void): Timer {
    const t = timerAfter(
      Math.max(0, ms),
      () => {
        this.timers.delete(t);
        fn();
      },
      this.clock,
    );
    this.timers.add(t);
    return t;
  }

  // Each loop schedules its next round after the previous one ends, so slow rounds never pile up.
  private loop(name: string, everyMs: number, fn: () => Promise<unknown>, firstDelayMs = 0): void {
    const tick = () => {
      if (!this.running) return;
      const p = fn()
        .catch((err) =>
          this.logFailure(`loop:${name}`, (held) =>
            this.log.error({ err, loop: name, heldBack: held }, 'monitor round failed'),
          ),
        )
        .finally(() => {
          this.inFlight.delete(p);
          if (this.running) this.after(everyMs, tick);
        });
      this.inFlight.add(p);
    };
    this.after(firstDelayMs, tick);
  }

  /**
   * One loop per probe: a probe starts `probeIntervalMs` after the previous one of the same
   * service started, or when that one ends if it took longer (never two at once). A slow or
   * hanging service delays only its own probes, not everyone's.
   */
  private probeLoop(p: Probe): void {
    const every = this.settings.probeIntervalMs;
    if (!this.probingSince.has(p.service)) this.probingSince.set(p.service, this.clock.monotonicNow());
    const tick = () => {
      if (!this.running || !this.probes.includes(p)) return;
      // By the monotonic clock: a step of the wall clock during the probe must not move the next one.
      const started = this.clock.monotonicNow();
      const run = this.probeService(p)
        .catch((err) =>
          this.logFailure(`probe:${p.service}`, (held) =>
            this.log.error({ err, service: p.service, heldBack: held }, 'probe round failed'),
          ),
        )
        .finally(() => {
          this.inFlight.delete(run);
          if (this.running) this.after(started + every - this.clock.monotonicNow(), tick);
        });
      this.inFlight.add(run);
    };
    this.after(0, tick);
  }

  // Events carry the monitor's correlation id so the wiring and the logs can follow them.
  private meta(at: number): { at: number; correlationId: string } {
    return { at, correlationId: this.opts.correlationId ?? 'monitor' };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  // ---------- rounds ----------

  /** One sampler round: collect, store, evaluate the rules. Returns the samples. */
  async sampleOnce(now = this.clock.now()): Promise<Sample[]> {
    const samples = await this.sampler.collect(now);
    await this.ingest(samples);
    return samples;
  }

  /** Store samples from anywhere (e.g. request latencies) and evaluate the rules against them. */
  async ingest(samples: readonly (Sample & { readonly monotonicTs?: number })[]): Promise<AlertingEvent[]> {
    await this.store.insertSamples(samples);
    this.prometheus.observeSamples(samples);
    return this.evaluate(samples);
  }

  /** One probe round over every probe, in parallel; returns the results by service. */
  async probeOnce(): Promise<Map<string, ProbeResult>> {
    const results = await Promise.all(this.probes.map(async (p) => [p.service, await this.probeService(p)] as const));
    return new Map(results);
  }

  /**
   * Probe one service: health decider, probe record, samples (`probe_up`, `service_up`,
   * `probe_response_ms`) and the rules on them. While the probe waits, each response-time
   * threshold of a rule (`probe_response_ms >` t) it passes is evaluated at once with the time
   * waited so far, so that alert fires when the threshold is crossed, not when the answer comes.
   */
  private async probeService(p: Probe): Promise<ProbeResult> {
    const labels = { service: p.service, kind: p.kind };
    const marks = this.settings.rules
      .filter(
        (r) =>
          r.metric === metricNames.probeResponseMs &&
          (r.comparator === '>' || r.comparator === '>=') &&
          ruleMatches(r, r.metric, labels),
      )
      // +1: a `>` threshold is passed only once strictly more time has gone by.
      .map((r) => r.threshold + 1);
    const sentAt = this.clock.now();
    const sentMonotonic = this.clock.monotonicNow();
    const r = await runProbe(p, this.settings.probeTimeoutMs, {
      marks,
      onMark: (elapsedMs) => {
        // Evaluated, not stored: the latency series holds answers; this is a lower bound while waiting.
        this.evaluate([{ metric: metricNames.probeResponseMs, labels, ts: this.clock.now(), value: elapsedMs }]).catch(
          (err: unknown) =>
            this.logFailure(`waiting:${p.service}`, (held) =>
              this.log.error({ err, service: p.service, heldBack: held }, 'evaluating a probe still waiting failed'),
            ),
        );
      },
    });
    const at = this.clock.now();
    const atMonotonic = this.clock.monotonicNow();
    // A good answer shows the service up when it came; a failed probe failed from when it went out
    // (a timed-out one got no answer all along), so its `probe_up` 0, which the unavailability
    // rule counts its `for` from, dates from then.
    const outcomeAt = r.ok ? at : sentAt;
    // Removed while it waited (retired): its answer must not bring the row back.
    if (!this.probes.includes(p)) return r;
    this.prometheus.observeProbe(p.service, p.kind, r.ok, r.responseMs);
    let firstVerdict = false;
    let verdictAheadSince: number | null = null;
    const done = await this.serial(async () => {
      const cmd = {
        type: 'RecordProbeResult',
        data: { service: p.service, kind: p.kind, result: r, policy: this.settings.healthPolicy, sentAt },
        metadata: this.meta(at),
      } as const;
      if (!this.probes.includes(p)) return nothingCommitted;
      const before = this.health.get(p.service) ?? initialServiceHealth;
      const evs: HealthEvent[] = this.markProbeGap(p, { wall: sentAt, monotonic: sentMonotonic }, before);
      const state = evs.reduce(evolveHealth, before);
      this.lastProbes.set(p.service, { wall: at, monotonic: atMonotonic });
      firstVerdict = state.status === 'unknown';
      if (verdictStart(state) > at) verdictAheadSince = verdictStart(state);
      evs.push(...decideHealth(cmd, state));
      // The last probe's outcome is telemetry (it changes every probe), not an event.
      await this.store.recordProbe(p.service, p.kind, r, at);
      return this.commit(evs);
    });
    if (done.events.length && verdictAheadSince !== null)
      this.log.warn(
        { service: p.service, verdictSince: new Date(verdictAheadSince).toISOString(), at: new Date(at).toISOString() },
        'the wall clock stepped back behind the service verdict (decided while it was ahead): the verdict is restated at this probe',
      );
    else if (done.events.length) {
      // A service's first verdict after start (unknown -> up) is routine: debug, not one info line per service.
      const level = firstVerdict && r.ok ? 'debug' : 'info';
      this.log[level](
        { service: p.service, kind: p.kind, events: done.events.map((e) => e.type), error: r.error },
        'service health changed',
      );
    }
    await this.settle(done);
    const status = this.health.get(p.service)?.status;
    // With their monotonic times: an alert's `for` is measured on that clock from its first sample.
    const samples: (Sample & { monotonicTs: number })[] = [
      {
        metric: metricNames.probeUp,
        labels,
        ts: outcomeAt,
        monotonicTs: r.ok ? atMonotonic : sentMonotonic,
        value: r.ok ? 1 : 0,
      },
      { metric: metricNames.serviceUp, labels, ts: at, monotonicTs: atMonotonic, value: status === 'down' ? 0 : 1 },
    ];
    // A failed probe's duration is the time to fail, not a response time: keep it out of the latency series.
    if (r.ok)
      samples.push({
        metric: metricNames.probeResponseMs,
        labels,
        ts: at,
        monotonicTs: atMonotonic,
        value: r.responseMs,
      });
    await this.ingest(samples);
    return r;
  }

  /**
   * Nobody looked at the service between its previous probe of this run and this one when they are
   * further apart than probeGapMs (the host was suspended, the monitor stalled, or the wall clock
   * stepped forward): that time becomes unmonitored, as the time before a restart does, instead of
   * an open `up` interval bridging it. It counts as unknown whatever the service: the monitor ran,
   * so nothing says the service did not. Runs inside the queue; returns the events to commit.
   */
  private markProbeGap(p: Probe, sent: { wall: number; monotonic: number }, state: ServiceHealth): HealthEvent[] {
    const previous = this.lastProbes.get(p.service);
    const gap = previous ? unprobedGap(previous, sent, probeGapMsOf(this.settings)) : null;
    if (!gap) return [];
    const evs = decideHealth(
      {
        type: 'MarkUnmonitored',
        data: { service: p.service, kind: p.kind, from: gap.from, to: gap.to, countsAs: 'unknown' },
        metadata: this.meta(sent.wall),
      },
      state,
    );
    if (evs.length)
      this.log.warn(
        {
          service: p.service,
          from: new Date(gap.from).toISOString(),
          wallGapMs: gap.to - gap.from,
          monotonicGapMs: Math.round(sent.monotonic - previous!.monotonic),
        },
        'no probe of the service for longer than the probe gap (a suspend, a stall or a clock step): that time is unmonitored',
      );
    return evs;
  }

  /** Services this run probes whose last probe (or start of probing) is older than probeGapMs, by the monotonic clock. */
  staleProbes(): StaleProbe[] {
    if (!this.running) return [];
    const limit = probeGapMsOf(this.settings);
    const now = this.clock.monotonicNow();
    const out: StaleProbe[] = [];
    for (const service of new Set(this.probes.map((p) => p.service))) {
      const last = this.lastProbes.get(service);
      const since = last?.monotonic ?? this.probingSince.get(service);
      if (since === undefined || now - since <= limit) continue;
      out.push({ service, lastProbeAt: last?.wall ?? null, ageMs: Math.round(now - since) });
    }
    return out;
  }

  /** Finalise rollup p95s, apply retention, expire due silences, retire services nothing probes. */
  async maintain(now = this.clock.now()): Promise<void> {
    const { retention } = this.settings;
    const p95 = await this.store.finalizeRollups(now, retention.rawMs);
    const deleted = await this.store.applyRetention(now, retention);
    for (const id of dueSilences(this.alerting, now))
      await this.expireSilence(id, 'monitor', now).catch(() => undefined);
    await this.retireUnprobed(now).catch((err: unknown) => this.log.warn({ err }, 'retiring unprobed services failed'));
    this.log.debug({ p95, deleted }, 'monitoring maintenance done');
  }

  // ---------- alerting ----------

  /** Evaluate the rules on samples; `monotonicTs` is when the monitor took one itself, on its monotonic clock. */
  private async evaluate(samples: readonly (Sample & { readonly monotonicTs?: number })[]): Promise<AlertingEvent[]> {
    const rules = this.settings.rules;
    const done = await this.serial(async () => {
      // Decided on a working copy, so each sample sees the previous ones' effect; the Monitor's
      // state moves only as the events are appended (commit).
      let state = this.alerting;
      const out: AlertingEvent[] = [];
      const touched = new Set<string>();
      for (const s of samples) {
        for (const rule of rules) {
          if (!ruleMatches(rule, s.metric, s.labels)) continue;
          const fp = fingerprint(rule.id, { ...s.labels, ...rule.labels });
          touched.add(fp);
          // A sample the monitor did not time itself (the sampler's, one ingested) is placed on the
          // monotonic clock by its distance from the wall clock's now, so a step between two samples
          // cancels out, while a sample's own time still counts.
          const atMonotonic = s.monotonicTs ?? this.clock.monotonicNow() + (s.ts - this.clock.now());
          const evs = this.decideSample(
            {
              type: 'EvaluateSample',
              data: { rule, labels: s.labels, value: s.value, pendingForMs: this.pendingForMs(fp, state, atMonotonic) },
              metadata: this.meta(s.ts),
            },
            state,
            atMonotonic,
          );
          state = evs.reduce(evolveAlerting, state);
          out.push(...evs);
        }
      }
      const done = await this.commit(out);
      // An alert pending from before a restart, or under a rule whose `for` changed, gets its deadline here.
      for (const fp of touched) this.syncDeadline(fp);
      return done;
    });
    await this.settle(done);
    return done.events as AlertingEvent[];
  }

  // The alerting decider on a sample taken at `atMonotonic`, remembering the sample for the alert's
  // `for` deadline and, for an alert it makes pending, when that was on the monotonic clock.
  private decideSample(
    cmd: AlertingCommand & { type: 'EvaluateSample' },
    state: AlertingState,
    atMonotonic: number,
  ): AlertingEvent[] {
    const evs = decideAlerting(cmd, state);
    const { rule, labels, value } = cmd.data;
    const fp = fingerprint(rule.id, { ...labels, ...rule.labels });
    if (Number.isFinite(value)) this.lastEvaluated.set(fp, { rule, labels, value });
    for (const e of evs)
      if (e.type === 'AlertPending')
        this.pendingMonotonic.set(fp, { pendingSince: e.metadata.at, monotonic: atMonotonic });
    return evs;
  }

  /**
   * When a pending alert's `for` began on the monotonic clock: when it went pending in this run, or
   * this run's start for one pending from before it. Undefined when it is not pending, or before
   * start() for one this run did not make pending (the decider then goes by the wall clock).
   */
  private pendingStartMonotonic(fp: string, alert: AlertInstance | undefined): number | undefined {
    if (alert?.status !== 'pending') return undefined;
    const mine = this.pendingMonotonic.get(fp);
    if (mine?.pendingSince === alert.pendingSince) return mine.monotonic;
    return this.startedMonotonic ?? undefined;
  }

  /** How long the alert `fp` has been pending in `state` at `atMonotonic`, by the monotonic clock. */
  private pendingForMs(fp: string, state: AlertingState, atMonotonic: number): number | undefined {
    const start = this.pendingStartMonotonic(fp, state.alerts[fp]);
    return start === undefined ? undefined : atMonotonic - start;
  }

  /**
   * Append decided events to the event store, one by one in order, each with its stream's
   * expected revision (the Monitor is the only writer of its streams; a conflict means another
   * monitor wrote, and the round fails). Each appended event moves the in-memory state; the
   * first failure stops the rest, which are decided again at the next sample or request.
   * Runs inside the queue.
   */
  private async commit(events: readonly MonitorEvent[]): Promise<Committed> {
    const committed: MonitorEvent[] = [];
    const records: MonitorEventRecord[] = [];
    let position = -1;
    for (const e of events) {
      const streamId = streamOf(e);
      const id = newId();
      const extra = this.opts.eventMetadata?.(e) ?? {};
      const metadata: EventMetadata = {
        correlationId: extra.correlationId ?? e.metadata.correlationId ?? 'monitor',
        ...(extra.causationId ? { causationId: extra.causationId } : {}),
        actor: extra.actor ?? actorOf(e),
        timestamp: new Date(e.metadata.at).toISOString(),
      };
      try {
        const expected = await this.revisionOf(streamId);
        const r = await this.eventStore.append(streamId, [{ id, type: e.type, data: e.data, metadata }], {
          expectedRevision: expected === -1 ? 'no_stream' : expected,
        });
        this.revisions.set(streamId, r.nextExpectedRevision);
        position = r.position;
        records.push({ id, streamId, metadata, revision: r.nextExpectedRevision, position: r.position });
      } catch (err) {
        if (err instanceof WrongExpectedVersionError) this.revisions.delete(streamId);
        // Once a minute per stream: while the store refuses, every probe of every service gets here.
        this.logFailure(`append:${streamId}`, (held) =>
          this.log.error(
            { err, streamId, type: e.type, correlationId: metadata.correlationId, heldBack: held },
            'could not append a monitor event',
          ),
        );
        return { events: committed, records, position, error: err };
      }
      committed.push(e);
      this.evolveOne(e);
    }
    return { events: committed, records, position };
  }

  private async revisionOf(streamId: string): Promise<number> {
    const known = this.revisions.get(streamId);
    if (known !== undefined) return known;
    const [last] = await this.eventStore.readStream(streamId, { direction: 'backwards', maxCount: 1 });
    return last ? last.revision : -1;
  }

  private evolveOne(e: MonitorEvent): void {
    switch (e.type) {
      case 'ServiceWentDown':
      case 'ServiceDegraded':
      case 'ServiceRecovered':
      case 'ServiceUnmonitored':
      case 'ServiceUnconfigured':
        this.health.set(e.data.service, evolveHealth(this.health.get(e.data.service) ?? initialServiceHealth, e));
        return;
      case 'ServiceRetired':
        this.health.delete(e.data.service);
        return;
      default:
        this.alerting = evolveAlerting(this.alerting, e);
        if ('fingerprint' in e.data) this.syncDeadline(e.data.fingerprint);
    }
  }

  /**
   * After a commit: wait until the read models show the appended events (so whoever asked
   * reads its own change), hand them to `publish`, then rethrow an append failure.
   */
  private async settle(done: Committed): Promise<void> {
    if (done.events.length > 0) {
      if (!this.projectionsStopped) {
        await this.waitForReadModels(done.position, projectionsOf(done.events)).catch((err: unknown) =>
          this.log.warn({ err, position: done.position }, 'the read models are behind; answering anyway'),
        );
      }
      await this.emit(done.events, done.records);
    }
    if (done.error !== undefined) {
      if (done.error instanceof AppError || done.error instanceof WrongExpectedVersionError) throw done.error;
      throw new AppError('unavailable', "the event store did not take the monitor's event", {
        cause: String(done.error),
      });
    }
  }

  /** Resolve once the named read models (default: all of the monitor's) have applied `position`. */
  async waitForReadModels(
    position: number,
    names: readonly string[] = Object.values(monitorProjectionNames),
    timeoutMs = this.opts.readModelWaitMs ?? 10_000,
  ): Promise<void> {
    await Promise.all(names.map((n) => this.projections.waitFor(position, n, timeoutMs)));
  }

  /**
   * A pending alert fires once its condition has held for the rule's `for`: at that moment, not at
   * the next sample after it (which may come a whole interval later). Then the alert is evaluated
   * again with the last value it saw; a sample that cleared it meanwhile left nothing pending.
   * Called whenever the alert or the rules change: an alert no longer pending, or whose rule is
   * gone, keeps no timer; a rule whose `for` changed moves the deadline. The deadline is on the
   * monotonic clock (see pendingStartMonotonic), as the decider's `pendingForMs` is.
   */
  private syncDeadline(fp: string): void {
    const alert = this.alerting.alerts[fp];
    if (alert?.status !== 'pending') this.pendingMonotonic.delete(fp);
    const rule =
      alert?.status === 'pending' && this.lastEvaluated.has(fp)
        ? this.settings.rules.find((r) => r.id === alert.ruleId)
        : undefined;
    const start = this.pendingStartMonotonic(fp, alert);
    const dueMonotonic =
      this.running && rule && rule.for_ms > 0 && start !== undefined ? start + rule.for_ms : undefined;
    const armed = this.deadlines.get(fp);
    if (armed && armed.dueMonotonic === dueMonotonic) return;
    if (armed) {
      armed.timer.cancel();
      this.timers.delete(armed.timer);
      this.deadlines.delete(fp);
    }
    if (dueMonotonic === undefined || alert?.status !== 'pending') return;
    const pendingSince = alert.pendingSince;
    const timer = this.after(dueMonotonic - this.clock.monotonicNow(), () => {
      if (this.deadlines.get(fp)?.timer === timer) this.deadlines.delete(fp);
      this.evaluateAtDeadline(fp, pendingSince);
    });
    this.deadlines.set(fp, { timer, dueMonotonic });
  }

  private evaluateAtDeadline(fp: string, pendingSince: number): void {
    if (!this.running) return;
    void this.serial(async (): Promise<Committed> => {
      const current = this.alerting.alerts[fp];
      const last = this.lastEvaluated.get(fp);
      if (current?.status !== 'pending' || current.pendingSince !== pendingSince || !last) return nothingCommitted;
      // The rule in force now (it may have been changed through the API meanwhile).
      const rule = this.settings.rules.find((r) => r.id === last.rule.id);
      if (!rule) return nothingCommitted;
      const atMonotonic = this.clock.monotonicNow();
      return this.commit(
        this.decideSample(
          {
            type: 'EvaluateSample',
            data: {
              rule,
              labels: last.labels,
              value: last.value,
              pendingForMs: this.pendingForMs(fp, this.alerting, atMonotonic),
            },
            metadata: this.meta(this.clock.now()),
          },
          this.alerting,
          atMonotonic,
        ),
      );
    })
      .then((done) => this.settle(done))
      .catch((err: unknown) => this.log.error({ err, fingerprint: fp }, 'evaluating an alert at its deadline failed'));
  }

  /**
   * The rule list changed in place (RuleManager): move or drop the deadlines of pending alerts,
   * and forget the last samples of rules no longer in force.
   */
  rulesChanged(): void {
    void this.serial(async () => {
      const ids = new Set(this.settings.rules.map((r) => r.id));
      for (const [fp, seen] of this.lastEvaluated) if (!ids.has(seen.rule.id)) this.lastEvaluated.delete(fp);
      for (const fp of new Set([...this.deadlines.keys(), ...Object.keys(this.alerting.alerts)])) this.syncDeadline(fp);
    });
  }

  /** How many `for` deadlines are armed (one per pending alert whose rule has a `for`). */
  get armedDeadlines(): number {
    return this.deadlines.size;
  }

  private async command(cmd: AlertingCommand): Promise<AlertingEvent[]> {
    // decide throws AppError before anything changes.
    const done = await this.serial(async () => this.commit(decideAlerting(cmd, this.alerting)));
    await this.settle(done);
    return done.events as AlertingEvent[];
  }

  private async emit(events: readonly MonitorEvent[], records: readonly MonitorEventRecord[]): Promise<void> {
    for (const e of events) {
      if (e.type === 'AlertFiring' || e.type === 'AlertResolved' || e.type === 'AlertPending') {
        this.log.info(
          { alert: e.data.name, fingerprint: e.data.fingerprint, event: e.type, labels: e.data.labels },
          'alert state changed',
        );
      }
    }
    try {
      await this.opts.publish(events, records);
    } catch (err) {
      this.log.error({ err, events: events.map((e) => e.type) }, 'publishing monitor events failed');
    }
  }

  /** Resolve an alert by hand. Throws AppError not_found / illegal_state / validation. */
  /**
   * Resolve an alert by hand; answers the alert as this resolve left it. Its rule may still hold
   * and fire it again (same id) before the answer is read: the answer is then the instance this
   * resolve ended, not the new one.
   */
  async resolveAlert(id: string, actor: string, reason: string, at = this.clock.now()): Promise<AlertRow> {
    const [before] = await this.store.listAlerts({ id });
    const events = await this.command({
      type: 'ResolveManually',
      data: { fingerprint: id, actor, reason },
      metadata: this.meta(at),
    });
    const [row] = await this.store.listAlerts({ id });
    const resolved = events.find((e) => e.type === 'AlertResolved');
    if ((row && row.state === 'resolved') || !before || !resolved) return row ?? before!;
    return {
      ...before,
      state: 'resolved',
      resolvedAt: new Date(at),
      resolvedHow: 'manual',
      resolvedBy: actor,
      resolveReason: reason,
      suppressedBy: resolved.data.suppressedBy ?? null,
      updatedAt: new Date(at),
    };
  }

  /** Add a silence; alerts it matches stop notifying until it ends. */
  async addSilence(input: NewSilence, at = this.clock.now()): Promise<Silence> {
    const parsed = newSilenceSchema.safeParse(input);
    if (!parsed.success) throw new AppError('validation', 'invalid silence', { issues: parsed.error.issues });
    const { durationMs, startsAt: asked, endsAt, ...rest } = parsed.data;
    // One clock for every silence: a duration starts by the monitor's, whatever clock the caller had.
    const startsAt = asked ?? at;
    const silence: Silence = { id: newId(), ...rest, startsAt, endsAt: endsAt ?? startsAt + durationMs! };
    await this.command({ type: 'AddSilence', data: { silence }, metadata: this.meta(at) });
    return silence;
  }

  async expireSilence(id: string, actor: string, at = this.clock.now()): Promise<void> {
    await this.command({ type: 'ExpireSilence', data: { silenceId: id, actor }, metadata: this.meta(at) });
  }

  // ---------- queries ----------

  async listAlerts(filter: { state?: AlertRow['state']; severity?: Severity } = {}): Promise<AlertRow[]> {
    if (filter.severity !== undefined) severitySchema.parse(filter.severity);
    return this.store.listAlerts(filter);
  }

  async listSilences(): Promise<Silence[]> {
    return this.store.listSilences(true);
  }

  /** Overall status (worst service), each service, the latest system figures and alert counts. */
  async getHealthReport(now = this.clock.now()): Promise<HealthReport> {
    const services = await this.store.listServices();
    const stale = this.staleProbes();
    // An unconfigured service is no better or worse than one not yet probed: it does not count.
    const rank = { unknown: 0, unconfigured: 0, up: 1, degraded: 2, down: 3 } as const;
    const worst = services.reduce<ServiceHealth['status']>(
      (w, s) => (rank[s.status] > rank[w] ? s.status : w),
      services.length ? 'up' : 'unknown',
    );
    // Rows nobody has refreshed for a while say nothing about now: a frozen monitor must not look healthy.
    const status = stale.length && rank[worst] < rank.degraded ? 'degraded' : worst;
    const latest = await this.store.latest(
      [metricNames.cpuPercent, metricNames.memoryPercent, metricNames.diskPercent],
      now,
      10 * 60_000,
    );
    const cpu = latest.find((s) => s.metric === metricNames.cpuPercent && s.labels.cpu === 'total');
    const mem = latest.find((s) => s.metric === metricNames.memoryPercent);
    const active = Object.values(this.alerting.alerts);
    return {
      status,
      at: now,
      services,
      system: {
        cpuPercent: cpu?.value ?? null,
        memoryPercent: mem?.value ?? null,
        disks: latest
          .filter((s) => s.metric === metricNames.diskPercent)
          .map((s) => ({ mount: s.labels.mount ?? '?', usedPercent: s.value })),
      },
      alerts: {
        firing: active.filter((a) => a.status === 'firing').length,
        pending: active.filter((a) => a.status === 'pending').length,
      },
      stale,
    };
  }

  /**
   * Buckets (1 min for 1h, else 1 h) with avg/p95/max, slope and direction per series of `metric`;
   * percentages project towards 100, others towards `opts.limit` when given.
   */
  async getPerformanceTrends(
    metric: string,
    window: TrendWindow,
    opts: { labels?: Labels; limit?: number; now?: number } = {},
  ): Promise<SeriesTrend[]> {
    const w = trendWindows[window];
    if (!w)
      throw new AppError('validation', `unknown window ${String(window)}`, {
        window,
        allowed: Object.keys(trendWindows),
      });
    const now = opts.now ?? this.clock.now();
    const series = await this.store.rollups(metric, w.resolution, now - w.ms, opts.labels);
    const limit = opts.limit ?? (percentMetrics.has(metric) ? 100 : undefined);
    const points = series.reduce((n, s) => n + s.buckets.length, 0);
    const resolutionMs = RESOLUTION_MS[w.resolution]!;
    const bucketMs = resolutionMs * Math.max(1, Math.ceil(points / MAX_TREND_POINTS));
    return series.map((s) => {
      const trend = computeTrend(s.buckets, limit === undefined ? {} : { limit });
      const buckets = bucketMs === resolutionMs ? trend.buckets : widenBuckets(trend.buckets, bucketMs);
      return { labels: s.labels, ...trend, buckets, bucketMs };
    });
  }

  /** Uptime %, incidents, MTTR and SLA per window for one probed service. Throws not_found for an unknown service. */
  async getAvailability(
    service: string,
    opts: { now?: number; slaTargetPercent?: number } = {},
  ): Promise<{ service: string; windows: Record<AvailabilityWindow, WindowAvailability> }> {
    const now = opts.now ?? this.clock.now();
    const intervals = await this.store.serviceIntervals(service, now - 2_592_000_000);
    if (intervals.length === 0 && !(await this.store.listServices()).some((s) => s.service === service)) {
      throw new AppError('not_found', `service ${service} is not monitored`, { service });
    }
    return {
      service,
      windows: availabilityReport(intervals, {
        now,
        slaTargetPercent: opts.slaTargetPercent ?? this.settings.slaTargetPercent,
      }),
    };
  }

  /** Prometheus text exposition (content type: `monitor.prometheus.contentType`). */
  renderPrometheus(): Promise<string> {
    return this.prometheus.render();
  }

  /** Read-only view of the in-memory alerting state (tests, debugging). */
  get alertingState(): AlertingState {
    return this.alerting;
  }

  /** The rules in force. */
  get rules(): readonly AlertRule[] {
    return this.settings.rules;
  }
}
