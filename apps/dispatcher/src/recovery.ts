import type pg from 'pg';
import type { NatsConnection } from '@nats-io/nats-core';
import type { AllSubscription, EventMetadata, EventStore } from '@switchyard/event-store';
import { AppError, backoffMs, type Logger } from '@switchyard/platform';
import { abandonedAttemptCounts, isTerminal, taskStreamId } from '@switchyard/domain';
import { cancelOnInstance } from './transport.js';
import { ownerOfSubmission } from './submission.js';
import { httpInstanceId, type InstanceRegistry } from './instances.js';
import type { Ownership } from './ownership.js';
import type { RunPump } from './run-pump.js';
import type { TaskStates } from './task-state.js';
import type { ExternalAgents } from './agent-registry.js';
import type { AgentCatalog } from './agent-catalog.js';

export interface RecoveryOptions {
  readonly store: EventStore;
  readonly nats: NatsConnection;
  readonly pool: pg.Pool;
  /** Schema of the delegation read models (the tasks table). */
  readonly schema: string;
  readonly logger: Logger;
  readonly registry: InstanceRegistry;
  readonly tasks: Pick<
    TaskStates,
    | 'after'
    | 'busyTasks'
    | 'cid'
    | 'drivenHere'
    | 'drop'
    | 'exec'
    | 'forget'
    | 'hold'
    | 'isAwaited'
    | 'isKnown'
    | 'load'
    | 'meta'
    | 'progressElsewhere'
    | 'resolveWaiters'
    | 'setCorrelation'
    | 'track'
  >;
  readonly ownership: Pick<Ownership, 'accepting' | 'partitioned' | 'partitionOf'>;
  readonly pump: Pick<RunPump, 'cancelRun' | 'forget' | 'hasRun' | 'kick' | 'running'>;
  readonly agents: Pick<ExternalAgents, 'refreshStoredAgent'>;
  readonly catalog: Pick<AgentCatalog, 'check'>;
  /** How long giving a partition back waits for its running attempts to end. Default 3000 ms. */
  readonly drainMs?: number;
  /** Keep a background job until it settles (stop() waits for it). */
  readonly background: (p: Promise<unknown>) => void;
  readonly stopped: () => boolean;
}

const ACTIVE = ['submitted', 'queued', 'assigned', 'working'];

/** First look at a task whose attempt's end went unrecorded; then doubling up to the max while recording still fails. */
const UNRECORDED_RETRY = { initialMs: 2_000, maxMs: 60_000 } as const;

/** What the log watcher follows: submissions to take over, progress and ends to pass on, external agents changed by another dispatcher. */
const WATCHED = [
  'TaskSubmitted',
  'TaskQueued',
  'TaskAssigned',
  'TaskCompleted',
  'TaskFailed',
  'TaskCanceled',
  'TaskTimedOut',
  'ExternalAgentRegistered',
  'ExternalAgentRemoved',
] as const;

/**
 * Partitions coming and going, and tasks this process did not write itself: recovery of the live
 * tasks after a restart or a takeover, giving a partition back, and the log watcher (submissions
 * recorded elsewhere, ends and progress written by others, external agents changed elsewhere).
 */
export class Recovery {
  private readonly log: Logger;
  private readonly tasks: RecoveryOptions['tasks'];
  private readonly ownership: RecoveryOptions['ownership'];
  private readonly pump: RecoveryOptions['pump'];
  private submissions?: AllSubscription;
  /** Tasks whose attempt's end went unrecorded, and the timer of their next look (retryUnrecorded). */
  private readonly unrecorded = new Map<string, NodeJS.Timeout>();

  constructor(private readonly opts: RecoveryOptions) {
    this.log = opts.logger;
    this.tasks = opts.tasks;
    this.ownership = opts.ownership;
    this.pump = opts.pump;
  }

  private get stopped(): boolean {
    return this.opts.stopped();
  }

  /** Stop following the log. */
  async close(): Promise<void> {
    for (const timer of this.unrecorded.values()) clearTimeout(timer);
    this.unrecorded.clear();
    await this.submissions?.close();
  }

  /**
   * A task whose attempt ended here without the end being recorded (the database refusing writes
   * past the retry budget: out of disk, say). Its log still says assigned, nothing runs it and its
   * deadline timer is gone: left alone it would wait for a restart. Look again (2 s after the end,
   * doubling up to a minute with each `attempt` that fails), as
   * a restart's recovery would: once its partition is still ours and nothing runs it, its attempt
   * is abandoned and the task queued again (timed out when the attempt ended by its deadline,
   * `timedOut`); while recording still fails, look again later.
   */
  retryUnrecorded(taskId: string, timedOut: boolean, attempt = 0): void {
    if (this.stopped || this.unrecorded.has(taskId)) return;
    const timer = setTimeout(
      () => {
        this.unrecorded.delete(taskId);
        this.opts.background(
          this.reattempt(taskId, timedOut).catch((err: unknown) => {
            this.log.warn(
              {
                err,
                taskId,
                correlationId: this.tasks.cid(taskId),
                retryInMs: backoffMs(attempt + 1, UNRECORDED_RETRY),
              },
              'recovering a task whose attempt went unrecorded failed; trying again',
            );
            this.retryUnrecorded(taskId, timedOut, attempt + 1);
          }),
        );
      },
      backoffMs(attempt, UNRECORDED_RETRY),
    );
    timer.unref();
    this.unrecorded.set(taskId, timer);
  }

  private async reattempt(taskId: string, timedOut: boolean): Promise<void> {
    if (this.stopped || !this.ownership.accepting(taskId) || this.pump.hasRun(taskId)) return;
    const state = await this.tasks.load(taskId);
    if (!state || isTerminal(state) || (state.status !== 'assigned' && state.status !== 'working')) return;
    if (this.pump.hasRun(taskId)) return;
    this.tasks.hold(taskId, state);
    // Whether the attempt ran out of time is what its own timer said (monotonic, in the process
    // that ran it), not the recorded deadline against this clock: a wall clock ahead of the one that
    // assigned the task, or a step forward since, read every such deadline as past and timed out
    // tasks that had answered in time, or had never started. Queued again, it gets its whole
    // timeout on its next assignment.
    const expired = timedOut;
    await this.tasks.exec(
      taskId,
      expired
        ? { type: 'TimeOutTask', data: { assignment: state.assignment }, metadata: this.tasks.meta(taskId) }
        : {
            type: 'FailTask',
            data: {
              assignment: state.assignment,
              error: { code: 'unavailable', message: "the attempt's end could not be recorded; attempt abandoned" },
              retryable: true,
              avoid_instance: false,
              count_attempt: false,
            },
            metadata: this.tasks.meta(taskId),
          },
    );
    this.log.info(
      { taskId, correlationId: this.tasks.cid(taskId), outcome: expired ? 'timed_out' : 'queued' },
      'recovered a task whose attempt went unrecorded',
    );
    this.pump.kick();
  }

  /**
   * Partitions just leased here (fences raised; the read model caught up by the caller): recover
   * their live tasks as after a restart.
   */
  async acquire(partitions: readonly number[]): Promise<void> {
    if (this.stopped) return;
    await this.recover(new Set(partitions));
    this.pump.kick();
  }

  /** Forget a partition's tasks at once, writing nothing (the lease is gone; the new owner recovers them). */
  lose(partition: number): void {
    if (!this.ownership.partitioned) return;
    const mine = (id: string) => this.ownership.partitionOf(id) === partition;
    this.pump.forget(mine);
    this.tasks.forget(mine);
  }

  /** Giving a partition back: no new attempt starts there (accepting is false); wait for running ones (bounded), then forget it. */
  async drain(partition: number): Promise<void> {
    const until = Date.now() + (this.opts.drainMs ?? 3_000);
    const mine = (id: string) => this.ownership.partitionOf(id) === partition;
    const busy = () => this.pump.running(mine) || this.tasks.busyTasks().some(mine);
    while (busy() && Date.now() < until && !this.stopped) await new Promise((r) => setTimeout(r, 50));
    this.lose(partition);
  }

  /** A task whose events someone else wrote (a cancel through another dispatcher, a gateway): catch up after our own commands on it. */
  private reconcile(taskId: string): void {
    this.tasks.after(
      taskId,
      async () => {
        if (!this.tasks.isKnown(taskId) && !this.pump.hasRun(taskId)) {
          if (this.tasks.isAwaited(taskId)) {
            const s = await this.tasks.load(taskId);
            if (s && isTerminal(s)) this.tasks.resolveWaiters(taskId, s);
          }
          return;
        }
        const s = await this.tasks.load(taskId);
        if (!s || !isTerminal(s)) return;
        this.tasks.drop(taskId);
        this.pump.cancelRun(taskId, `task ${s.status} elsewhere`);
        this.tasks.track(taskId, s);
      },
      'catching up with a task changed elsewhere failed',
    );
  }

  /**
   * Tasks whose first events someone else appended (the gateway records a submission itself
   * when this dispatcher's reply is late) are taken over from the log: every TaskSubmitted after
   * `from` that this process is not driving is loaded, checked like a submission (refused ones
   * are canceled, with the reason) and queued.
   */
  watchSubmissions(from: number): void {
    const sub = this.opts.store.subscribeToAll({ from, types: [...WATCHED] });
    this.submissions = sub;
    const p = (async () => {
      for await (const e of sub) {
        if (this.stopped) break;
        if (e.type === 'ExternalAgentRegistered' || e.type === 'ExternalAgentRemoved') {
          await this.opts.agents
            .refreshStoredAgent(e)
            .catch((err) =>
              this.log.warn({ err, agent: (e.data as { name?: unknown }).name }, 'refreshing an external agent failed'),
            );
          continue;
        }
        const taskId = (e.data as { task_id?: unknown }).task_id;
        if (typeof taskId !== 'string') continue;
        if (e.type === 'TaskAssigned' || e.type === 'TaskQueued') {
          // A caller here follows a task another dispatcher drives: pass its progress on.
          this.tasks.progressElsewhere(taskId, e.type === 'TaskQueued' ? 'queued' : 'started');
          continue;
        }
        if (e.type !== 'TaskSubmitted') {
          // An end: a caller here may wait for a task another dispatcher drives, or someone else ended one driven here.
          if (this.tasks.isAwaited(taskId) || this.tasks.isKnown(taskId) || this.pump.hasRun(taskId))
            this.reconcile(taskId);
          continue;
        }
        if (this.tasks.drivenHere(taskId) || !this.ownership.accepting(taskId)) continue;
        await this.adopt(taskId, e.metadata.correlationId, ownerOfSubmitted(e.metadata)).catch((err) =>
          this.log.warn({ err, taskId }, 'taking over a task submitted elsewhere failed'),
        );
      }
    })().catch((err) => {
      if (!this.stopped) this.log.error({ err }, 'watching task submissions failed');
    });
    this.opts.background(p);
  }

  private async adopt(taskId: string, correlationId: string | undefined, owner: string): Promise<void> {
    const state = await this.tasks.load(taskId);
    if (!state || isTerminal(state) || this.tasks.drivenHere(taskId) || !this.ownership.accepting(taskId)) return;
    this.tasks.setCorrelation(taskId, correlationId ?? taskId, owner);
    try {
      this.opts.catalog.check(state.task_type, state.context, state.agent);
    } catch (err) {
      const reason = err instanceof AppError ? err.message : String(err);
      this.log.warn({ correlationId: this.tasks.cid(taskId), taskId, reason }, 'task submitted elsewhere refused');
      await this.tasks.exec(taskId, {
        type: 'CancelTask',
        data: { actor: 'system:dispatcher', reason: `refused: ${reason}` },
        metadata: this.tasks.meta(taskId),
      });
      return;
    }
    this.log.info(
      { correlationId: this.tasks.cid(taskId), taskId, taskType: state.task_type, status: state.status },
      'task submitted elsewhere taken over',
    );
    this.tasks.track(taskId, state);
  }

  /**
   * After a restart: queued tasks go back in the queue; tasks that were in flight cannot
   * deliver their result to us any more (the reply went to the old connection), so they are
   * retried: on another instance when theirs is gone (it died), without using an attempt
   * and after a cancel when it is still alive; an external agent's (HTTP contract or A2A) uses
   * one, as its request went out and nothing stops it (abandonedAttemptCounts).
   */
  async recover(partitions?: ReadonlySet<number>): Promise<void> {
    const s = this.opts.schema;
    const all = await this.opts.pool.query<{ task_id: string }>(
      `select task_id from ${s}.tasks where status = any($1) order by submitted_at`,
      [ACTIVE],
    );
    const rows = {
      rows: all.rows.filter((r) =>
        partitions ? partitions.has(this.ownership.partitionOf(r.task_id)) : this.ownership.accepting(r.task_id),
      ),
    };
    let queued = 0;
    let retried = 0;
    for (const { task_id } of rows.rows) {
      if (this.stopped || this.tasks.drivenHere(task_id) || !this.ownership.accepting(task_id)) continue;
      const state = await this.tasks.load(task_id);
      if (!state || isTerminal(state) || this.tasks.drivenHere(task_id)) continue;
      const first = await this.opts.store.readStream(taskStreamId(task_id), { maxCount: 1 });
      this.tasks.setCorrelation(
        task_id,
        first[0]?.metadata.correlationId ?? task_id,
        first[0] ? ownerOfSubmitted(first[0].metadata) : undefined,
      );
      this.tasks.hold(task_id, state);
      if (state.status === 'assigned' || state.status === 'working') {
        const inst = [...this.opts.registry.instances.values()].find(
          (i) => i.instance === state.instance && i.agent === state.assigned_agent,
        );
        const alive = !!inst?.healthy;
        // An external agent's instance no longer registered is still known by its name.
        const external = inst ? inst.kind === 'http' : state.instance === httpInstanceId(state.assigned_agent);
        if (inst && alive) await cancelOnInstance(this.opts.nats, inst, task_id, 'dispatcher restarted');
        // Its recorded deadline is not looked at: it is the assigning dispatcher's wall clock, which
        // this one's may be ahead of. Queued again, the task gets its whole timeout when next assigned.
        await this.tasks.exec(task_id, {
          type: 'FailTask',
          data: {
            assignment: state.assignment,
            error: {
              code: 'unavailable',
              message: alive
                ? 'dispatcher restarted or partition taken over; attempt abandoned'
                : `agent instance ${state.instance} lost during a dispatcher restart`,
            },
            retryable: true,
            avoid_instance: !alive,
            // An attempt the lost instance never started did no work and cannot be what killed
            // it: after a full restart (every instance new) it would otherwise use up an attempt.
            // An external agent's request went out and cannot be called back: that attempt counts.
            count_attempt: abandonedAttemptCounts(state, { sendsStartNotice: !external, instanceLost: !alive }),
          },
          metadata: this.tasks.meta(task_id),
        });
        retried++;
      } else queued++;
    }
    if (queued + retried > 0)
      this.log.info(
        { queued, retried, ...(partitions ? { partitions: [...partitions] } : {}) },
        'recovered tasks after restart or takeover',
      );
  }
}

/** Whose share of the queue a task counts against, from its TaskSubmitted's metadata. */
const ownerOfSubmitted = (m: EventMetadata): string =>
  ownerOfSubmission({
    ...(m.actor !== undefined ? { actor: m.actor } : {}),
    ...(typeof m['onBehalfOf'] === 'string' ? { on_behalf_of: m['onBehalfOf'] } : {}),
  });
