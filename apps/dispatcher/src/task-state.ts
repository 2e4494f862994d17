import { aggregateStream, FencedError, type CommandResult, type EventStore, type Fence } from '@switchyard/event-store';
import { AppError, isAppError, isPassingDatabaseFailure, type Logger } from '@switchyard/platform';
import {
  isDomainError,
  isTerminal,
  taskDelegationDecider,
  taskStreamId,
  type ExistingTaskState,
  type TaskCommand,
  type TaskEvent,
  type TaskState,
} from '@switchyard/domain';
import { decideTaskCommand, type FollowUp } from './task-commands.js';
import { OwnerTally } from './owner-tally.js';

/** What the task states need from the rest of the dispatcher. */
export interface TaskStatesDeps {
  readonly store: EventStore;
  readonly log: Logger;
  /** The fence of a task's writes (throws when its partition is gone; see Ownership.fenceOf). */
  fenceOf(taskId: string): Fence | undefined;
  /** An append of the task was fenced: its partition is someone else's now. */
  fenced(taskId: string): void;
  /** A task (re)joined the queue: ask for a queue pass. */
  kick(): void;
}

type Waiter = { resolve: (s: ExistingTaskState) => void; reject: (e: AppError) => void };

/**
 * The tasks this process drives and the callers waiting on them: the cached decide-and-append
 * (one command at a time per task), the live states the queue is made of, the end and progress
 * waiters, and the correlation id of each task.
 */
export class TaskStates {
  private readonly active = new Map<string, ExistingTaskState>();
  /**
   * Tasks of `active` in status `queued` and the bytes of JSON of their contexts, in all and per
   * owner (whose share of the queue each counts against, see Submissions), kept with every change
   * of it (a submit asks them each time); each one's size is taken once, as it joins the queue.
   */
  private readonly queued = new OwnerTally();
  private readonly queuedSizes = new Map<string, number>();
  private readonly owners = new Map<string, string>();
  /**
   * State and stream revision of every live task as this process last wrote or read it: commands
   * are decided against it and appended with that revision, without re-reading the stream. The
   * store's revision check still guards every append; a conflict drops the entry and falls back
   * to read-decide-append.
   */
  private readonly known = new Map<string, { state: TaskState; revision: number }>();
  private readonly correlation = new Map<string, string>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  /** Callers following a task's wait for an agent (see watchProgress). */
  private readonly progressWatchers = new Map<string, Set<(state: 'queued' | 'started') => void>>();
  /**
   * Tasks this process saw end, in two generations swapped every 30 s: the log watcher may
   * deliver a TaskSubmitted after its (fast) task ended here, and must not read its stream for that.
   */
  private ended = { current: new Set<string>(), previous: new Set<string>() };

  constructor(private readonly deps: TaskStatesDeps) {}

  /** Start a new generation of ended tasks (the oldest is forgotten). */
  rotateEnded(): void {
    this.ended = { current: new Set(), previous: this.ended.current };
  }

  /** The live state of a task driven here, if any. */
  activeState(taskId: string): ExistingTaskState | undefined {
    return this.active.get(taskId);
  }

  activeStates(): IterableIterator<ExistingTaskState> {
    return this.active.values();
  }

  /** This process holds the task's state and revision (it drives it and it has not ended). */
  isKnown(taskId: string): boolean {
    return this.known.has(taskId);
  }

  /** Something here waits for the task's end. */
  isAwaited(taskId: string): boolean {
    return this.waiters.has(taskId);
  }

  /** A command of the task (not a `serially` key) is in flight. */
  isBusy(taskId: string): boolean {
    return this.locks.has(taskId);
  }

  /** Task ids with a command in flight (not the `serially` keys). */
  busyTasks(): string[] {
    return [...this.locks.keys()].filter((k) => !k.includes(':'));
  }

  /** Every command in flight (stop() waits for them). */
  inFlight(): Promise<unknown>[] {
    return [...this.locks.values()];
  }

  /** Forget the tasks `mine` picks (their partition is gone, writing nothing). */
  forget(mine: (taskId: string) => boolean): void {
    for (const id of [...this.active.keys()]) if (mine(id)) this.setActive(id, undefined);
    for (const id of [...this.known.keys()]) if (mine(id)) this.known.delete(id);
  }

  /** Forget the held state of a task that ended elsewhere. */
  drop(taskId: string): void {
    this.known.delete(taskId);
  }

  /** Take a task into the queue as read from its stream (recovery). */
  hold(taskId: string, state: ExistingTaskState): void {
    this.setActive(taskId, state);
  }

  /** `owner`: whose share of the queue the task counts against (kept while the task lives here). */
  setCorrelation(taskId: string, correlationId: string, owner?: string): void {
    this.correlation.set(taskId, correlationId);
    if (owner !== undefined && !this.owners.has(taskId)) this.owners.set(taskId, owner);
  }

  /** Forget the owner kept for a task that is not live here (its submission was not appended). */
  settleOwner(taskId: string): void {
    if (!this.active.has(taskId)) this.owners.delete(taskId);
  }

  /** The tasks and bytes of context queued here for `owner`. */
  queuedOf(owner: string): { count: number; bytes: number } {
    return this.queued.of(owner);
  }

  private countQueued(taskId: string, count: number, bytes: number): void {
    this.queued.add(this.owners.get(taskId) ?? '', count, bytes);
  }

  queuedCount(): number {
    return this.queued.count;
  }

  /** Bytes of JSON of the contexts of the queued tasks (they are held here until placed). */
  queuedContextBytes(): number {
    return this.queued.bytes;
  }

  /** Set (or, with undefined, remove) a task's live state, keeping the queued count and bytes. */
  private setActive(taskId: string, state: ExistingTaskState | undefined): void {
    const size = this.queuedSizes.get(taskId);
    if (this.active.get(taskId)?.status === 'queued') {
      this.queuedSizes.delete(taskId);
      this.countQueued(taskId, -1, -(size ?? 0));
    }
    if (state === undefined) {
      this.active.delete(taskId);
      this.owners.delete(taskId);
    } else {
      this.active.set(taskId, state);
      if (state.status === 'queued') {
        // A context does not change while its task waits: measured when it joins the queue.
        const bytes = size ?? contextBytes(state);
        this.queuedSizes.set(taskId, bytes);
        this.countQueued(taskId, 1, bytes);
      }
    }
  }

  /** A caller's wait for the task's end; the returned function stops it. */
  addWaiter(taskId: string, waiter: Waiter): () => void {
    let set = this.waiters.get(taskId);
    if (!set) this.waiters.set(taskId, (set = new Set()));
    set.add(waiter);
    return () => {
      const now = this.waiters.get(taskId);
      now?.delete(waiter);
      if (now?.size === 0) this.waiters.delete(taskId);
    };
  }

  /** Nobody may wait for the task any more (it does not exist). */
  dropWaiters(taskId: string): void {
    this.waiters.delete(taskId);
  }

  /** Every waiting caller gets `unavailable` (the dispatcher stops). */
  rejectWaiters(): void {
    for (const [taskId, set] of this.waiters) {
      for (const w of set)
        w.reject(
          new AppError('unavailable', 'dispatcher stopped before the task ended; ask again', { task_id: taskId }),
        );
    }
    this.waiters.clear();
  }

  /**
   * Tell `listener` when the task (re)joins the queue (`queued`) and when it is assigned to an agent
   * (`started`: its own timeout counts from there), until the returned function is called.
   */
  watchProgress(taskId: string, listener: (state: 'queued' | 'started') => void): () => void {
    let set = this.progressWatchers.get(taskId);
    if (!set) this.progressWatchers.set(taskId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.progressWatchers.get(taskId) === set) this.progressWatchers.delete(taskId);
    };
  }

  /** Progress of a task another dispatcher drives, seen in the log: passed on to callers here. */
  progressElsewhere(taskId: string, state: 'queued' | 'started'): void {
    const watchers = this.known.has(taskId) ? undefined : this.progressWatchers.get(taskId);
    for (const w of watchers ?? []) {
      try {
        w(state);
      } catch {
        // a notice is advisory
      }
    }
  }

  drivenHere(taskId: string): boolean {
    return (
      this.known.has(taskId) ||
      this.active.has(taskId) ||
      this.locks.has(taskId) ||
      this.ended.current.has(taskId) ||
      this.ended.previous.has(taskId)
    );
  }

  cid(taskId: string): string {
    return this.correlation.get(taskId) ?? taskId;
  }

  meta(taskId: string, actor = 'system:dispatcher') {
    return { timestamp: new Date().toISOString(), correlationId: this.cid(taskId), actor };
  }

  async load(taskId: string): Promise<ExistingTaskState | undefined> {
    const { state } = await aggregateStream(this.deps.store, taskStreamId(taskId), taskDelegationDecider);
    return state.status === 'initial' ? undefined : state;
  }

  /** Runs `fn` after the previous call with the same key has settled (stop() waits for these too). */
  serially<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.locks.get(key) ?? Promise.resolve()).catch(() => undefined).then(fn);
    this.locks.set(key, next);
    const clear = () => {
      if (this.locks.get(key) === next) this.locks.delete(key);
    };
    next.then(clear, clear);
    return next;
  }

  /** Commands on one task run one at a time here (the store's revision check guards across processes). */
  exec(taskId: string, command: TaskCommand, follow?: FollowUp): Promise<CommandResult<TaskEvent, TaskState>> {
    const prev = this.locks.get(taskId) ?? Promise.resolve();
    const next = prev
      .catch(() => undefined)
      .then(() => this.decideAndAppend(taskId, command, follow))
      .catch((err: unknown) => {
        if (err instanceof FencedError) {
          // Another dispatcher holds the partition now: stop acting on it, write nothing more.
          this.deps.log.warn(
            { taskId, fence: err.fence, current: err.current },
            'append fenced: partition taken over by another dispatcher',
          );
          this.known.delete(taskId);
          this.deps.fenced(taskId);
          throw new AppError(
            'unavailable',
            `task ${taskId} is now driven by another dispatcher`,
            { task_id: taskId },
            true,
          );
        }
        // Domain errors keep their code on the way to NATS and HTTP.
        throw isDomainError(err) ? new AppError(err.code, err.message, err.details, false) : err;
      })
      .then((r) => {
        this.remember(taskId, r);
        this.track(taskId, r.state);
        return r;
      });
    this.locks.set(taskId, next);
    const clear = () => {
      if (this.locks.get(taskId) === next) this.locks.delete(taskId);
    };
    next.then(clear, clear);
    return next;
  }

  /**
   * After our own commands on the task: run `fn` (catching up with a task someone else wrote).
   * Failures are logged, not thrown.
   */
  after(taskId: string, fn: () => Promise<void>, what: string): void {
    const prev = this.locks.get(taskId) ?? Promise.resolve();
    const next = prev
      .catch(() => undefined)
      .then(fn)
      .catch((err) => this.deps.log.warn({ err, taskId }, what));
    this.locks.set(taskId, next);
    const clear = () => {
      if (this.locks.get(taskId) === next) this.locks.delete(taskId);
    };
    void next.then(clear, clear);
  }

  /** The task's command through the shared command path, with the state and revision this process holds (see decideTaskCommand). */
  private decideAndAppend(
    taskId: string,
    command: TaskCommand,
    follow?: FollowUp,
  ): Promise<CommandResult<TaskEvent, TaskState>> {
    // Every write of a task this dispatcher drives carries its partition's fence (throws when the partition is gone).
    const fence = this.deps.fenceOf(taskId);
    return decideTaskCommand(this.deps.store, taskId, command, {
      held: this.known.get(taskId),
      fence,
      follow,
      forget: () => this.known.delete(taskId),
    });
  }

  /** Keep the state and revision of live tasks only (ended ones are read from the store when asked). */
  private remember(taskId: string, r: CommandResult<TaskEvent, TaskState>): void {
    if (r.state.status === 'initial' || isTerminal(r.state)) this.known.delete(taskId);
    else this.known.set(taskId, { state: r.state, revision: r.revision });
  }

  track(taskId: string, state: TaskState): void {
    if (state.status === 'initial') return;
    if (isTerminal(state)) {
      this.setActive(taskId, undefined);
      this.ended.current.add(taskId);
      this.resolveWaiters(taskId, state);
      // Keep the correlation only while someone may still act on the task.
      this.correlation.delete(taskId);
      this.owners.delete(taskId);
      return;
    }
    this.setActive(taskId, state);
    const watchers = this.progressWatchers.get(taskId);
    if (watchers && (state.status === 'queued' || state.status === 'assigned')) {
      for (const w of watchers) {
        try {
          w(state.status === 'queued' ? 'queued' : 'started');
        } catch {
          // a notice is advisory
        }
      }
    }
    if (state.status === 'queued') this.deps.kick();
  }

  resolveWaiters(taskId: string, state: ExistingTaskState): void {
    const set = this.waiters.get(taskId);
    if (!set) return;
    this.waiters.delete(taskId);
    for (const w of set) w.resolve(state);
  }
}

/** How long an attempt's outcome is retried through a database outage before it is left to recovery. */
const RECORD_RETRY_BUDGET_MS = 120_000;

/**
 * Run `record` until it succeeds, retrying while the failure is transient (the database or the
 * event store unavailable, or PostgreSQL out of disk or memory) with backoff from 250 ms to 5 s, for up to RECORD_RETRY_BUDGET_MS;
 * stops when this dispatcher stops or no longer drives the task (its partition was taken over:
 * the new owner recovers the task from the events). Other errors are thrown at once.
 */
export async function untilRecorded<T>(
  taskId: string,
  what: string,
  log: Logger,
  stopped: () => boolean,
  record: () => Promise<T>,
): Promise<T | undefined> {
  const deadline = Date.now() + RECORD_RETRY_BUDGET_MS;
  for (let delay = 250; ; delay = Math.min(delay * 2, 5_000)) {
    try {
      return await record();
    } catch (err) {
      const transient =
        isPassingDatabaseFailure(err) ||
        (isAppError(err) && err.code === 'unavailable' && !/driven by another dispatcher/.test(err.message));
      if (!transient || stopped() || Date.now() + delay > deadline) throw err;
      log.warn({ err, taskId, retryInMs: delay }, `${what} failed; retrying`);
      await new Promise((r) => setTimeout(r, delay));
      if (stopped()) return undefined;
    }
  }
}

/** Bytes of JSON of a task's context. */
export function contextBytes(state: { readonly context?: unknown }): number {
  return Buffer.byteLength(JSON.stringify(state.context ?? {}));
}
