import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { agentStartedNotice, serviceSubject } from '@switchyard/contracts';
import type { CommandResult } from '@switchyard/event-store';
import { asAppError, noticeBody } from '@switchyard/messaging';
import {
  AppError,
  isAppError,
  newId,
  redactedHead,
  sizePayload,
  type EgressGuard,
  type ErrorCode,
  type Logger,
} from '@switchyard/platform';
import {
  DEFAULT_AGING_MS,
  orderQueue,
  type ExistingTaskState,
  type TaskCommand,
  type TaskError,
  type TaskEvent,
  type TaskState,
} from '@switchyard/domain';
import { callA2a, callHttp, callNats, cancelOnInstance } from './transport.js';
import { selectInstance } from './placement.js';
import type { AgentInstance, InstanceRegistry } from './instances.js';
import type { Ownership } from './ownership.js';
import { untilRecorded, type TaskStates } from './task-state.js';

export interface RunPumpOptions {
  readonly nats: NatsConnection;
  readonly registry: InstanceRegistry;
  readonly egress: EgressGuard;
  readonly logger: Logger;
  readonly tasks: Pick<TaskStates, 'activeStates' | 'cid' | 'exec' | 'meta'>;
  readonly ownership: Pick<Ownership, 'accepting' | 'releaseSlot' | 'reserveSlot'>;
  readonly agingMs?: number;
  readonly agentConcurrency?: Readonly<Record<string, number>>;
  readonly submitPlacementWaitMs?: number;
  readonly agentToken?: string;
  readonly externalAgentToken?: string;
  readonly stopped: () => boolean;
  /**
   * An attempt ended here (result, failure, deadline, lost instance) and recording that failed for
   * good: the log still has the task assigned, with no run here and its deadline timer gone. The
   * dispatcher looks at it again later (Recovery.retryUnrecorded) instead of leaving it to a restart.
   * `timedOut`: the attempt ended by its deadline (this process's timer, or the agent's own stop),
   * which only this process measured; the log's deadline is a wall-clock instant of whoever assigned it.
   */
  readonly unrecorded?: (taskId: string, timedOut: boolean) => void;
}

interface Run {
  readonly taskId: string;
  readonly assignment: number;
  readonly inst: AgentInstance;
  readonly controller: AbortController;
  /** When the execute request went out (ms). */
  readonly launchedAt: number;
  timer?: NodeJS.Timeout;
  done: boolean;
  /** The agent said it started (its best-effort notice arrived). */
  started?: boolean;
  /** When the notice arrived (the TaskStarted's time, even when it is appended with the completion). */
  noticedAt?: string;
  /** The StartTask of the notice has been handed to exec (alone, or with the completion). */
  startTaken?: boolean;
}

/** Errors that another attempt cannot fix: the task fails at once. */
const FATAL: readonly ErrorCode[] = [
  'validation',
  'not_found',
  'illegal_state',
  'unauthorized',
  'forbidden',
  'payload_too_large',
];

/** How long after a NATS reconnect a run without a start notice is taken for lost (see watchReconnects). */
const LOST_DISPATCH_CHECK_MS = 5_000;

/** Most characters of an attempt's error message, and of its details as JSON, kept in the task's events. */
const ERROR_MESSAGE_CHARS = 2_000;
const ERROR_DETAILS_CHARS = 4_096;

/**
 * Milliseconds an attempt has left at its launch, `elapsedMs` (monotonic) after its assignment was
 * decided: never more than its timeout, never less than 0.
 */
export const attemptTimeLeft = (timeoutMs: number, elapsedMs: number): number =>
  Math.min(timeoutMs, Math.max(0, timeoutMs - elapsedMs));

/**
 * An attempt's error as the task's events keep it: without a credential an agent echoed in it,
 * and bounded (an agent's 9 MB error message was stored in every attempt's event, and the task
 * could no longer be read over NATS).
 */
const toTaskError = (e: AppError): TaskError => {
  const details = sizePayload(e.details, ERROR_DETAILS_CHARS);
  return {
    code: e.code,
    message: redactedHead(e.message, ERROR_MESSAGE_CHARS),
    details: details.truncated
      ? { truncated: details.value, size: details.size }
      : ((details.value ?? {}) as Record<string, unknown>),
  };
};

/**
 * The queue pump and the attempts it launches: a pass places queued tasks by effective priority
 * (aging) on the best instance; each attempt runs until its outcome (result, error, deadline,
 * cancel, lost instance) is recorded on the task.
 */
export class RunPump {
  private readonly runs = new Map<string, Run>();
  private readonly assigning = new Set<string>();
  private readonly notifySubject: string;
  private readonly log: Logger;
  private readonly registry: InstanceRegistry;
  private readonly tasks: RunPumpOptions['tasks'];
  private readonly ownership: RunPumpOptions['ownership'];
  private notices?: Subscription;
  private pumpRun: Promise<void> | undefined;
  private pumpAgain = false;

  constructor(private readonly opts: RunPumpOptions) {
    this.log = opts.logger;
    this.registry = opts.registry;
    this.tasks = opts.tasks;
    this.ownership = opts.ownership;
    this.notifySubject = `${serviceSubject('tasks', 'started')}.${newId().replace(/-/g, '')}`;
  }

  private get stopped(): boolean {
    return this.opts.stopped();
  }

  /** Listen for the agents' "started" notices and for NATS reconnects. */
  listen(): void {
    this.notices = this.opts.nats.subscribe(this.notifySubject, {
      callback: (err, msg) => {
        if (err) return;
        const parsed = agentStartedNotice.safeParse(noticeBody(msg));
        if (parsed.success) void this.onStarted(parsed.data.task_id, parsed.data.attempt);
      },
    });
    this.watchReconnects();
  }

  unlisten(): void {
    this.notices?.unsubscribe();
  }

  /** Give up every attempt (the dispatcher stops; the tasks stay as they are in the store). */
  abortAll(): void {
    for (const run of this.runs.values()) {
      run.done = true;
      clearTimeout(run.timer);
      run.controller.abort('dispatcher stopping');
    }
    this.runs.clear();
  }

  /** Forget the attempts of the tasks `mine` picks at once, writing nothing (their partition is gone). */
  forget(mine: (taskId: string) => boolean): void {
    for (const run of [...this.runs.values()]) {
      if (!mine(run.taskId)) continue;
      run.done = true;
      clearTimeout(run.timer);
      this.runs.delete(run.taskId);
      this.registry.release(run.inst);
      run.controller.abort('partition lost');
    }
  }

  /** An attempt of a task `mine` picks is running. */
  running(mine: (taskId: string) => boolean): boolean {
    return [...this.runs.values()].some((r) => mine(r.taskId));
  }

  hasRun(taskId: string): boolean {
    return this.runs.has(taskId);
  }

  /** The task ended another way: end its attempt here and ask its instance to cancel it. */
  cancelRun(taskId: string, reason: string): void {
    const run = this.runs.get(taskId);
    if (run) {
      this.finishRun(run);
      void cancelOnInstance(this.opts.nats, run.inst, taskId, reason);
    }
  }

  /** Queue passes placing a task right now. */
  get assigningCount(): number {
    return this.assigning.size;
  }

  // ---- the queue -----------------------------------------------------------

  /** A queue pass, awaited at most `submitPlacementWaitMs`. */
  async placeSoon(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const pass = this.pump().catch((err) => this.log.error({ err }, 'queue pass failed'));
    await Promise.race([
      pass,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, this.opts.submitPlacementWaitMs ?? 250))),
    ]);
    clearTimeout(timer);
  }

  /** Ask for a pass over the queue (coalesced). */
  kick(): void {
    if (!this.stopped) void this.pump().catch((err) => this.log.error({ err }, 'queue pass failed'));
  }

  /** Resolves after a pass that started after this call (a running pass is followed by one more). */
  private pump(): Promise<void> {
    if (this.pumpRun) {
      this.pumpAgain = true;
      return this.pumpRun;
    }
    this.pumpRun = (async () => {
      try {
        do {
          this.pumpAgain = false;
          await this.pumpOnce();
        } while (this.pumpAgain && !this.stopped);
      } finally {
        this.pumpRun = undefined;
      }
    })();
    return this.pumpRun;
  }

  /**
   * One pass: queued tasks by effective priority (aging), each placed on the best instance that
   * accepts it.
   * 1. Choose in queue order: each choice takes its place on the instance here at once
   *    (registry.reserve), so the choices stop where the instances are full.
   * 2. Reserve the shared slots one agent's choices after another, in queue order (a refusal of
   *    the agent or the instance passes the rest of its choices over, as a full instance would).
   * 3. Append each TaskAssigned as soon as its slot is held, overlapping the other placements.
   * Placed one after another, a pass waited for two round trips to PostgreSQL per task: after an
   * outage, with the database busy catching up, that held placement to a few tasks a second while
   * the agents' slots stood empty and the backlog grew.
   */
  private async pumpOnce(): Promise<void> {
    const now = Date.now();
    const queued = [...this.tasks.activeStates()]
      .filter(
        (s): s is Extract<ExistingTaskState, { status: 'queued' }> =>
          s.status === 'queued' && !this.assigning.has(s.task_id) && this.ownership.accepting(s.task_id),
      )
      .map((s) => ({ task_id: s.task_id, priority: s.priority, waiting_since_ms: Date.parse(s.submitted_at), s }));
    // Instances and agents found full in the shared slot table during this pass (other dispatchers' attempts).
    const full = new Set<string>();
    // Per agent, the reservation of the task chosen for it last in this pass: the next one waits for it.
    const turns = new Map<string, Promise<unknown>>();
    const placements: Promise<void>[] = [];
    for (const { s } of orderQueue(queued, now, this.opts.agingMs ?? DEFAULT_AGING_MS)) {
      if (this.stopped) break;
      const inst = this.select(s, full);
      if (!inst) continue;
      this.registry.reserve(inst);
      this.assigning.add(s.task_id);
      const reservation = (turns.get(inst.agent) ?? Promise.resolve()).then(async () => {
        if (this.stopped || full.has(`agent:${inst.agent}`) || full.has(inst.key)) return 'passed' as const;
        const slot = await this.ownership.reserveSlot(s.task_id, inst, s.assignment + 1);
        if (slot !== 'ok') full.add(slot === 'agent_full' ? `agent:${inst.agent}` : inst.key);
        return slot;
      });
      // reserveSlot answers 'fenced' for a failed statement; anything else thrown is taken the same way.
      const held = reservation.catch(() => 'fenced' as const);
      turns.set(inst.agent, held);
      placements.push(this.place(s, inst, held));
    }
    await Promise.all(placements);
  }

  /** Assign a task chosen by a pass once its slot is reserved, and launch the attempt. */
  private async place(
    s: Extract<ExistingTaskState, { status: 'queued' }>,
    inst: AgentInstance,
    reservation: Promise<string>,
  ): Promise<void> {
    let r: CommandResult<TaskEvent, TaskState>;
    let decidedAt: number;
    try {
      if ((await reservation) !== 'ok') {
        this.registry.release(inst);
        return;
      }
      // The attempt's timeout counts from here on the monotonic clock (launch).
      decidedAt = performance.now();
      try {
        r = await this.tasks.exec(s.task_id, {
          type: 'AssignTask',
          data: { agent: inst.agent, instance: inst.instance },
          metadata: this.tasks.meta(s.task_id),
        });
      } catch (err) {
        this.registry.release(inst);
        void this.ownership.releaseSlot(s.task_id, s.assignment + 1);
        this.log.warn({ correlationId: this.tasks.cid(s.task_id), taskId: s.task_id, err }, 'assignment refused');
        return;
      }
    } finally {
      this.assigning.delete(s.task_id);
    }
    if (r.state.status !== 'assigned') {
      this.registry.release(inst);
      void this.ownership.releaseSlot(s.task_id, s.assignment + 1);
      return;
    }
    this.launch(r.state, inst, decidedAt);
  }

  /** Capability (or the asked-for agent), health, breaker, concurrency; then least loaded, avoiding instances that failed this task. */
  select(
    s: Pick<ExistingTaskState, 'task_type' | 'agent' | 'failed_instances'>,
    exclude?: ReadonlySet<string>,
  ): AgentInstance | undefined {
    return selectInstance(this.registry, s, this.opts.agentConcurrency, exclude);
  }

  // ---- one attempt -----------------------------------------------------------

  /**
   * Send the attempt and arm its deadline timer. `decidedAt` is performance.now() from just before
   * the AssignTask was decided: the timer runs the task's timeout from there on the monotonic
   * clock. The recorded deadline is a wall-clock instant (the decision's time + timeout), and
   * measured against the wall clock at launch a step forward between the two (an NTP correction,
   * a VM resumed) timed the attempt out at once, before it was even sent, using up an attempt.
   */
  launch(
    s: Extract<TaskState, { status: 'assigned' }>,
    inst: AgentInstance,
    decidedAt: number = performance.now(),
  ): void {
    const run: Run = {
      taskId: s.task_id,
      assignment: s.assignment,
      inst,
      controller: new AbortController(),
      launchedAt: Date.now(),
      done: false,
    };
    this.runs.set(s.task_id, run);
    const remaining = attemptTimeLeft(s.timeout_ms, performance.now() - decidedAt);
    run.timer = setTimeout(() => void this.onDeadline(run), remaining);
    // The agent stops itself `remaining_ms` after it receives the attempt (transport.ts); the
    // deadline, by this clock now rather than the recorded one from before a possible step, is
    // for an agent from before that field, which reads it by its own wall clock.
    const sent: Extract<TaskState, { status: 'assigned' }> = {
      ...s,
      deadline: new Date(Date.now() + remaining).toISOString(),
    };
    const log = this.log.child({
      correlationId: this.tasks.cid(s.task_id),
      taskId: s.task_id,
      agent: inst.agent,
      instance: inst.instance,
      assignment: s.assignment,
    });
    // Per task at debug: at info, logging is a measurable part of a short task's cost.
    log.debug({ taskType: s.task_type, attempt: s.attempts + 1 }, 'task assigned');
    void (async () => {
      try {
        const result =
          inst.kind === 'nats'
            ? await callNats(this.opts.nats, sent, inst, remaining, {
                notifySubject: this.notifySubject,
                correlationId: this.tasks.cid(s.task_id),
              })
            : inst.a2aCardUrl
              ? await callA2a(this.opts.egress, sent, inst, run.controller.signal)
              : await callHttp(this.opts.egress, sent, inst, run.controller.signal, {
                  correlationId: this.tasks.cid(s.task_id),
                  remainingMs: remaining,
                  agentToken: this.opts.agentToken,
                  externalAgentToken: this.opts.externalAgentToken,
                });
        if (run.done) return; // given up already (deadline, cancel, instance lost): a late result is ignored
        // A start notice not recorded yet goes in the completion's append.
        const withStart = this.takeStart(run);
        this.finishRun(run);
        this.registry.recordSuccess(inst);
        const complete: TaskCommand = {
          type: 'CompleteTask',
          data: { assignment: s.assignment, result },
          metadata: this.tasks.meta(s.task_id),
        };
        // The result lives only in this process until it is appended: keep trying through a
        // database outage (a PostgreSQL restart), or the task would stay assigned for good.
        try {
          await untilRecorded(s.task_id, 'recording a completion', log, this.opts.stopped, async () => {
            if (!withStart) return this.tasks.exec(s.task_id, complete);
            const r = await this.tasks.exec(s.task_id, this.startCommand(run), () => ({
              command: complete,
              undo: () => undefined,
            }));
            // The follow-up goes only with a fast-path append; otherwise the completion goes alone.
            return r.events.some((e) => e.type === 'TaskCompleted') ? r : this.tasks.exec(s.task_id, complete);
          });
        } catch (err) {
          // Only the store refusing the result itself (validation: it cannot be stored) fails the
          // task. Stopping, the partition gone to another dispatcher, a database down past the
          // retry budget: the task is recovered from the log; a conflict: it ended otherwise.
          if (this.opts.stopped() || !(isAppError(err) && err.code === 'validation')) {
            log.warn({ err: String(err) }, "recording the agent's result failed; the task is left to recovery");
            this.opts.unrecorded?.(s.task_id, false);
            return;
          }
          // Left as it was, the task stayed assigned for good, its deadline timer gone with the run.
          log.error({ err: String(err) }, "recording the agent's result failed; the task fails instead");
          const refused = new AppError(
            'validation',
            `the agent's result could not be recorded: ${err instanceof Error ? err.message : String(err)}`,
            // The agent's answer is at fault, not the caller's input (isCallerError).
            { reason: 'result_unrecordable' },
          );
          await untilRecorded(s.task_id, 'recording a failed attempt', log, this.opts.stopped, () =>
            this.tasks.exec(s.task_id, {
              type: 'FailTask',
              data: { assignment: s.assignment, error: toTaskError(refused), retryable: false },
              metadata: this.tasks.meta(s.task_id),
            }),
          ).catch((e: unknown) => this.endUnrecorded(s.task_id, log, 'recording a failed attempt failed', e, false));
          return;
        }
        log.debug({}, 'task completed');
      } catch (err) {
        if (run.done) return;
        if (this.takeStart(run))
          void this.tasks
            .exec(s.task_id, this.startCommand(run))
            .catch((e) => log.warn({ err: e }, 'recording a start failed'));
        this.finishRun(run);
        const failure = asAppError(err);
        await untilRecorded(s.task_id, 'recording a failed attempt', log, this.opts.stopped, () =>
          this.attemptFailed(s, inst, failure, log),
        ).catch((e: unknown) =>
          this.endUnrecorded(s.task_id, log, 'recording a failed attempt failed', e, failure.code === 'timeout'),
        );
      }
    })();
  }

  /**
   * Map an attempt's error to the decider: busy -> back to the queue (no attempt used, instance
   * not blamed); errors another attempt cannot fix -> fail; the rest -> retry elsewhere and
   * count against the instance's breaker.
   */
  private async attemptFailed(
    s: Extract<TaskState, { status: 'assigned' }>,
    inst: AgentInstance,
    e: AppError,
    log: Logger,
  ): Promise<void> {
    const base = { assignment: s.assignment, error: toTaskError(e) };
    if (e.code === 'unavailable' && e.details.reason === 'busy') {
      inst.reportedInFlight = inst.maxConcurrency; // full until its next probe says otherwise
      log.debug({}, 'instance busy; task back in the queue');
      await this.tasks.exec(s.task_id, {
        type: 'FailTask',
        data: { ...base, retryable: true, avoid_instance: false, count_attempt: false },
        metadata: this.tasks.meta(s.task_id),
      });
      return;
    }
    if (e.code === 'timeout') {
      await this.tasks.exec(s.task_id, {
        type: 'TimeOutTask',
        data: { assignment: s.assignment },
        metadata: this.tasks.meta(s.task_id),
      });
      return;
    }
    // The agent ran the task and its handler threw on this context: any instance would, and the
    // instance is not sick (see the agents' handlerError), so neither a retry nor its breaker.
    const handlerThrew = e.code === 'internal' && e.details.reason === 'handler_error';
    const fatal = FATAL.includes(e.code) || handlerThrew;
    if (!fatal) this.registry.recordFailure(inst, e.message);
    log.warn({ code: e.code, message: e.message, retryable: !fatal }, 'task attempt failed');
    await this.tasks.exec(s.task_id, {
      type: 'FailTask',
      data: { ...base, retryable: !fatal },
      metadata: this.tasks.meta(s.task_id),
    });
    // Nobody listening on the instance subject (the request helper's "no responders"): it is gone, not merely failing.
    if (e.code === 'unavailable' && inst.kind === 'nats' && e.message.startsWith('no service is listening'))
      this.registry.markDown(inst, e.message);
  }

  private async onDeadline(run: Run): Promise<void> {
    if (run.done) return;
    this.finishRun(run);
    this.log.warn(
      { correlationId: this.tasks.cid(run.taskId), taskId: run.taskId, instance: run.inst.instance },
      'task timed out',
    );
    await this.tasks
      .exec(run.taskId, {
        type: 'TimeOutTask',
        data: { assignment: run.assignment },
        metadata: this.tasks.meta(run.taskId),
      })
      .catch((err: unknown) => this.endUnrecorded(run.taskId, this.log, 'recording a timeout failed', err, true));
    void cancelOnInstance(this.opts.nats, run.inst, run.taskId, 'deadline');
  }

  /**
   * The agent's start notice. Recorded on the next turn of the event loop rather than at once: a
   * fast task's result often arrives in the same read from NATS, and then TaskStarted goes in the
   * completion's append (one write instead of two). Either way it is recorded once, in order.
   */
  private onStarted(taskId: string, assignment: number): void {
    const run = this.runs.get(taskId);
    if (!run || run.assignment !== assignment || run.done) return;
    run.started = true;
    run.noticedAt = new Date().toISOString();
    setImmediate(() => {
      // Ended meanwhile another way (deadline, cancel, instance lost): the decider would ignore a start after that end.
      if (run.done) run.startTaken = true;
      if (!this.takeStart(run)) return;
      void this.tasks
        .exec(taskId, this.startCommand(run))
        .catch((err) => this.log.warn({ err, taskId }, 'recording a start failed'));
    });
  }

  /** True once for a run whose start notice arrived and is not recorded yet: the caller records it. */
  private takeStart(run: Run): boolean {
    if (!run.started || run.startTaken) return false;
    run.startTaken = true;
    return true;
  }

  private startCommand(run: Run): TaskCommand {
    return {
      type: 'StartTask',
      data: { assignment: run.assignment },
      metadata: { ...this.tasks.meta(run.taskId), timestamp: run.noticedAt ?? new Date().toISOString() },
    };
  }

  /**
   * A NATS server restart can swallow an execute request sent around the outage: the agent never
   * gets it, and the task would sit `assigned` until its deadline and time out. So a little after
   * each reconnect, a run over NATS launched before it whose agent has not said it started goes
   * back to the queue (no attempt used); its instance is asked to cancel first, in case only the
   * best-effort start notice was lost.
   */
  private watchReconnects(): void {
    void (async () => {
      try {
        for await (const status of this.opts.nats.status()) {
          if (this.stopped) return;
          if (status.type !== 'reconnect') continue;
          const at = Date.now();
          setTimeout(() => void this.requeueUnstarted(at), LOST_DISPATCH_CHECK_MS).unref();
        }
      } catch (err) {
        this.log.warn({ err }, 'NATS status watch stopped');
      }
    })();
  }

  private async requeueUnstarted(reconnectedAt: number): Promise<void> {
    if (this.stopped) return;
    for (const run of [...this.runs.values()]) {
      if (run.done || run.started || run.inst.kind !== 'nats' || run.launchedAt > reconnectedAt) continue;
      this.finishRun(run);
      this.log.warn(
        { correlationId: this.tasks.cid(run.taskId), taskId: run.taskId, instance: run.inst.instance },
        'no start notice after a NATS reconnect: the task goes back to the queue',
      );
      await cancelOnInstance(this.opts.nats, run.inst, run.taskId, 'dispatch presumed lost in a NATS reconnect');
      await this.tasks
        .exec(run.taskId, {
          type: 'FailTask',
          data: {
            assignment: run.assignment,
            error: {
              code: 'unavailable',
              message: `no start notice from ${run.inst.instance} after a NATS reconnect; dispatched again`,
            },
            retryable: true,
            avoid_instance: false,
            count_attempt: false,
          },
          metadata: this.tasks.meta(run.taskId),
        })
        .catch((err: unknown) =>
          this.endUnrecorded(run.taskId, this.log, 'requeueing an unstarted task failed', err, false),
        );
    }
  }

  /** An instance stopped answering: its tasks go back to the queue (retry elsewhere). */
  instanceLost(inst: AgentInstance, reason: string): void {
    for (const run of [...this.runs.values()]) {
      if (run.inst !== inst || run.done) continue;
      this.finishRun(run);
      this.log.warn(
        { correlationId: this.tasks.cid(run.taskId), taskId: run.taskId, instance: inst.instance, reason },
        'instance lost mid-task; retrying elsewhere',
      );
      void this.tasks
        .exec(run.taskId, {
          type: 'FailTask',
          data: {
            assignment: run.assignment,
            error: { code: 'unavailable', message: `agent instance ${inst.instance} lost: ${reason}` },
            retryable: true,
          },
          metadata: this.tasks.meta(run.taskId),
        })
        .catch((err: unknown) =>
          this.endUnrecorded(run.taskId, this.log, 'recording a lost instance failed', err, false),
        );
    }
  }

  /** Recording how an attempt ended failed: log it, and have the task looked at again (RunPumpOptions.unrecorded). */
  private endUnrecorded(taskId: string, log: Logger, what: string, err: unknown, timedOut: boolean): void {
    log.error({ err, taskId }, `${what}; the task is looked at again shortly`);
    if (!this.stopped) this.opts.unrecorded?.(taskId, timedOut);
  }

  private finishRun(run: Run): void {
    if (run.done) return;
    run.done = true;
    clearTimeout(run.timer);
    if (this.runs.get(run.taskId) === run) this.runs.delete(run.taskId);
    this.registry.release(run.inst);
    void this.ownership.releaseSlot(run.taskId, run.assignment);
    run.controller.abort('finished');
    this.kick();
  }
}
