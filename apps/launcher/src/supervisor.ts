import type { Logger } from '@switchyard/platform';

/**
 * What a supervised component gives back when it has started.
 * `failed` settles (either way) when the component has failed for good and needs a restart:
 * e.g. the embedded PostgreSQL exited, the NATS connection closed for good. A component that
 * heals itself (reconnecting clients, retrying loops) never settles it.
 */
export interface SupervisedHandle {
  stop(): Promise<void>;
  readonly failed?: Promise<unknown>;
  /**
   * What is wrong with a component that still runs but works only in part (nats-server whose
   * JetStream stopped): the unit then reports `degraded` with it, in /readyz and the health report.
   */
  readonly trouble?: () => string | undefined;
}

export interface UnitSpec {
  readonly name: string;
  start(): Promise<SupervisedHandle>;
  /** Units that must be restarted with this one (they hold something it made, e.g. its connection). */
  readonly dependsOn?: readonly string[];
}

export type UnitState = 'starting' | 'running' | 'restarting' | 'degraded' | 'stopped';

export interface UnitStatus {
  readonly name: string;
  readonly state: UnitState;
  readonly restarts: number;
  /** When the current state began (ISO). */
  readonly since: string;
  readonly lastError?: string;
  readonly lastFailureAt?: string;
}

export interface SupervisorOptions {
  readonly logger: Logger;
  /** First wait before a restart; doubles per failed attempt up to maxBackoffMs (full jitter on the upper half). */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How long a stop may take before the restart goes on without it. */
  readonly stopTimeoutMs?: number;
  /** How long after an unexpected process-level error the `process` unit reports degraded. */
  readonly unexpectedWindowMs?: number;
}

interface Unit {
  readonly spec: UnitSpec;
  handle: SupervisedHandle | undefined;
  state: UnitState;
  since: number;
  restarts: number;
  lastError?: string;
  lastFailureAt?: number;
  /** Bumped on every start: a `failed` of an older handle is stale. */
  generation: number;
}

/**
 * Restarts failed components with backoff, one restart at a time. A failure of unit X restarts X
 * and every unit started after it that depends on X (directly or not), in start order, like the
 * "rest for one" strategy of Erlang/OTP but limited to dependents. A restart that fails (the
 * database still down, say) is tried again after a longer wait, forever: the process keeps
 * serving what still works and reports the rest as degraded.
 */
export class Supervisor {
  private readonly units: Unit[] = [];
  private readonly log: Logger;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly stopTimeoutMs: number;
  private readonly unexpectedWindowMs: number;
  private stopping = false;
  private queue: Promise<void> = Promise.resolve();
  private readonly pending = new Set<string>();
  private wake: (() => void) | undefined;
  private unexpected: { count: number; last?: { at: number; origin: string; message: string } } = { count: 0 };

  constructor(opts: SupervisorOptions) {
    this.log = opts.logger.child({ component: 'supervisor' });
    this.initialBackoffMs = opts.initialBackoffMs ?? 250;
    this.maxBackoffMs = opts.maxBackoffMs ?? 15_000;
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
    this.unexpectedWindowMs = opts.unexpectedWindowMs ?? 60_000;
  }

  /** Start a unit now (boot: a failure throws, nothing is retried) and supervise it from then on. */
  async add(spec: UnitSpec): Promise<void> {
    if (this.units.some((u) => u.spec.name === spec.name)) throw new Error(`two units are named ${spec.name}`);
    for (const d of spec.dependsOn ?? []) {
      if (!this.units.some((u) => u.spec.name === d))
        throw new Error(`${spec.name} depends on ${d}, which is not started before it`);
    }
    const unit: Unit = { spec, handle: undefined, state: 'starting', since: Date.now(), restarts: 0, generation: 0 };
    const handle = await spec.start();
    this.units.push(unit);
    this.running(unit, handle);
  }

  /** Tell the supervisor a unit failed (a component noticed it cannot go on). */
  fail(name: string, err: unknown): void {
    const unit = this.units.find((u) => u.spec.name === name);
    if (!unit || this.stopping) return;
    this.failed(unit, unit.generation, err);
  }

  /**
   * An error nothing else caught (uncaughtException / unhandledRejection): logged and counted;
   * the process goes on, reported degraded for a while.
   */
  recordUnexpected(origin: string, err: unknown): void {
    this.unexpected.count++;
    const message = err instanceof Error ? err.message : String(err);
    this.unexpected.last = { at: Date.now(), origin, message };
    this.log.error(
      { err, origin, unexpectedErrors: this.unexpected.count },
      'unexpected error caught at the process level; the process goes on',
    );
  }

  status(): UnitStatus[] {
    const out: UnitStatus[] = this.units.map((u) => {
      const trouble = u.state === 'running' ? u.handle?.trouble?.() : undefined;
      const lastError = trouble ?? u.lastError;
      return {
        name: u.spec.name,
        state: trouble ? 'degraded' : u.state,
        restarts: u.restarts,
        since: new Date(u.since).toISOString(),
        ...(lastError ? { lastError } : {}),
        ...(u.lastFailureAt ? { lastFailureAt: new Date(u.lastFailureAt).toISOString() } : {}),
      };
    });
    const last = this.unexpected.last;
    if (last) {
      const recent = Date.now() - last.at < this.unexpectedWindowMs;
      out.push({
        name: 'process',
        state: recent ? 'degraded' : 'running',
        restarts: 0,
        since: new Date(last.at).toISOString(),
        lastError: `${this.unexpected.count} unexpected error(s), last (${last.origin}): ${last.message}`.slice(0, 300),
        lastFailureAt: new Date(last.at).toISOString(),
      });
    }
    return out;
  }

  /** Units not running now, with why (empty: all well). */
  degraded(): UnitStatus[] {
    return this.status().filter((s) => s.state !== 'running');
  }

  /** Stop every unit, last started first; no restart from here on. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.queue.catch(() => undefined);
    for (const unit of [...this.units].reverse()) await this.stopUnit(unit);
  }

  private running(unit: Unit, handle: SupervisedHandle): void {
    unit.handle = handle;
    unit.state = 'running';
    unit.since = Date.now();
    const generation = ++unit.generation;
    handle.failed?.then(
      (why) => this.failed(unit, generation, why ?? new Error(`${unit.spec.name} ended`)),
      (err) => this.failed(unit, generation, err),
    );
  }

  private failed(unit: Unit, generation: number, err: unknown): void {
    if (this.stopping || generation !== unit.generation || unit.state !== 'running') return;
    const message = err instanceof Error ? err.message : String(err);
    unit.lastError = message.slice(0, 300);
    unit.lastFailureAt = Date.now();
    unit.state = 'restarting';
    unit.since = Date.now();
    this.log.error({ err, unit: unit.spec.name }, 'component failed; restarting it');
    if (this.pending.has(unit.spec.name)) return;
    this.pending.add(unit.spec.name);
    this.queue = this.queue.then(() => this.restart(unit)).finally(() => this.pending.delete(unit.spec.name));
  }

  /** Units that depend on `unit`, directly or through another, in start order. */
  private dependentsOf(unit: Unit): Unit[] {
    const names = new Set([unit.spec.name]);
    const out: Unit[] = [];
    for (const u of this.units.slice(this.units.indexOf(unit) + 1)) {
      if ((u.spec.dependsOn ?? []).some((d) => names.has(d))) {
        names.add(u.spec.name);
        out.push(u);
      }
    }
    return out;
  }

  private async restart(unit: Unit): Promise<void> {
    if (this.stopping) return;
    const group = [unit, ...this.dependentsOf(unit)];
    for (const u of group) {
      if (u !== unit && u.state === 'running') {
        u.state = 'restarting';
        u.since = Date.now();
        u.lastError = `restarted with ${unit.spec.name}`;
      }
    }
    // Stop the dependents first (they use what the failed unit made), then the unit itself.
    for (const u of [...group].reverse()) await this.stopUnit(u);
    for (let attempt = 0; !this.stopping; attempt++) {
      await this.sleep(this.backoff(attempt));
      if (this.stopping) return;
      const started: Unit[] = [];
      try {
        for (const u of group) {
          u.state = 'starting';
          const handle = await u.spec.start();
          started.push(u);
          u.restarts++;
          this.running(u, handle);
        }
        this.log.info(
          { unit: unit.spec.name, restarted: group.map((u) => u.spec.name), attempt },
          'component restarted',
        );
        return;
      } catch (err) {
        const failedUnit = group[started.length]!;
        failedUnit.lastError = (err instanceof Error ? err.message : String(err)).slice(0, 300);
        this.log.warn({ err, unit: failedUnit.spec.name, attempt }, 'restart failed; trying again after a longer wait');
        for (const u of [...started].reverse()) await this.stopUnit(u);
        for (const u of group) {
          u.state = 'restarting';
          u.since = Date.now();
        }
      }
    }
  }

  private async stopUnit(unit: Unit): Promise<void> {
    const handle = unit.handle;
    unit.handle = undefined;
    unit.generation++; // whatever the old handle reports from now on is stale
    if (this.stopping) unit.state = 'stopped';
    if (!handle) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        handle.stop(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`stop took longer than ${this.stopTimeoutMs} ms`)),
            this.stopTimeoutMs,
          );
        }),
      ]);
    } catch (err) {
      this.log.warn({ err, unit: unit.spec.name }, 'stopping a component failed');
    } finally {
      clearTimeout(timer);
    }
  }

  private backoff(attempt: number): number {
    const cap = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** attempt);
    return cap / 2 + Math.random() * (cap / 2);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }
}
