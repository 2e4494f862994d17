import { resolveTaskType, taskIdForIdempotencyKey, taskViewOf, type TaskSubmitReply } from '@switchyard/contracts';
import { handleCommand, type CommandResult, type EventStore } from '@switchyard/event-store';
import { AppError, newId, type Logger } from '@switchyard/platform';
import {
  submitTaskData,
  TASK_SUBMIT_DEFAULTS,
  taskDelegationDecider,
  taskStreamId,
  type ExistingTaskState,
  type TaskEvent,
  type TaskPriority,
  type TaskState,
} from '@switchyard/domain';
import type { FollowUp } from './task-commands.js';
import type { AgentInstance, InstanceRegistry } from './instances.js';
import type { Ownership } from './ownership.js';
import type { RunPump } from './run-pump.js';
import { contextBytes, type TaskStates } from './task-state.js';
import type { AgentCatalog } from './agent-catalog.js';
import { OwnerTally } from './owner-tally.js';

export interface SubmitRequest {
  readonly task_type: string;
  readonly context: Record<string, unknown>;
  readonly priority: TaskPriority;
  readonly agent?: string;
  readonly idempotency_key?: string;
  readonly timeout_ms?: number;
  readonly max_attempts?: number;
  /** Who asked; recorded in the TaskSubmitted metadata (default `system:dispatcher`). */
  readonly actor?: string;
  /** Whom it is for when the actor is the system (a workflow's starter); recorded as `onBehalfOf`. */
  readonly on_behalf_of?: string;
}

/** Whose share of the queue a task counts against: whom it is for, else who asked. */
export const ownerOfSubmission = (req: Pick<SubmitRequest, 'actor' | 'on_behalf_of'>): string =>
  req.on_behalf_of ?? req.actor ?? 'system:dispatcher';

/**
 * Past this fraction of the queue's bound (tasks or bytes), a key that holds a quarter of the
 * bound already is refused: the rest stays open to the others, so one key's backlog (a caller
 * that submits faster than the agents work, or tasks for an agent that is down) does not shut
 * the queue for everyone. One key alone may still fill three quarters of it.
 */
const SHARED_FROM = 0.75;
const SHARE_PER_KEY = 0.25;

export interface SubmissionsOptions {
  readonly store: EventStore;
  readonly logger: Logger;
  readonly registry: Pick<InstanceRegistry, 'reserve' | 'release'>;
  readonly tasks: Pick<
    TaskStates,
    | 'activeState'
    | 'addWaiter'
    | 'exec'
    | 'isKnown'
    | 'load'
    | 'meta'
    | 'queuedCount'
    | 'queuedContextBytes'
    | 'queuedOf'
    | 'setCorrelation'
    | 'settleOwner'
  >;
  readonly ownership: Pick<Ownership, 'accepting' | 'partitioned' | 'partitionOf' | 'releaseSlot' | 'reserveSlot'>;
  readonly pump: Pick<RunPump, 'assigningCount' | 'launch' | 'placeSoon' | 'select'>;
  readonly catalog: Pick<AgentCatalog, 'check'>;
  readonly defaultTimeoutMs?: number;
  readonly defaultMaxAttempts?: number;
  /** Most tasks queued in this dispatcher before a new submission is refused (see DispatcherOptions.maxQueued). */
  readonly maxQueued?: number;
  /** Most bytes of JSON of queued tasks' contexts before a new submission is refused (DISPATCHER_MAX_QUEUED_BYTES). */
  readonly maxQueuedBytes?: number;
  readonly stopped: () => boolean;
}

/** DispatcherOptions.maxQueued when none is given. */
export const DEFAULT_MAX_QUEUED = 10_000;
/**
 * DispatcherOptions.maxQueuedBytes when none is given: a queued task's context is held in memory
 * until it is placed, and 4,535 tasks of 900 KB (under the count bound) ran the launcher out of heap.
 */
export const DEFAULT_MAX_QUEUED_BYTES = 256 * 1024 * 1024;

type SubmitResult = TaskSubmitReply & { state: ExistingTaskState };

/**
 * Submitting a task: checked against the catalog, recorded, and placed at once when it can be
 * (with the submission's append) or by a brief queue pass; a task of a partition another
 * dispatcher holds is recorded for its owner.
 */
export class Submissions {
  private readonly log: Logger;
  private readonly registry: SubmissionsOptions['registry'];
  private readonly tasks: SubmissionsOptions['tasks'];
  private readonly ownership: SubmissionsOptions['ownership'];
  private readonly pump: SubmissionsOptions['pump'];
  /** Limits of a submission that names none: the dispatcher's options, else the domain's. */
  private readonly submitDefaults: { readonly max_attempts: number; readonly timeout_ms: number };
  /**
   * Submissions past the queue's checks whose append has not ended: counted with the queue, so a
   * burst of one key's submissions, checked before any of them is queued, cannot all pass together.
   */
  private readonly submitting = new OwnerTally();

  constructor(private readonly opts: SubmissionsOptions) {
    this.log = opts.logger;
    this.registry = opts.registry;
    this.tasks = opts.tasks;
    this.ownership = opts.ownership;
    this.pump = opts.pump;
    this.submitDefaults = {
      max_attempts: opts.defaultMaxAttempts ?? TASK_SUBMIT_DEFAULTS.max_attempts,
      timeout_ms: opts.defaultTimeoutMs ?? TASK_SUBMIT_DEFAULTS.timeout_ms,
    };
  }

  private get stopped(): boolean {
    return this.opts.stopped();
  }

  /**
   * Validate and submit a task, then try to place it at once. Idempotent on the key: the same
   * key returns the task created first (its id is derived from the key).
   */
  async submit(asked: SubmitRequest, correlationId: string): Promise<SubmitResult> {
    if (this.stopped) throw new AppError('unavailable', 'dispatcher is stopping');
    // 1. An alias names its canonical type (recorded as requested_task_type); the type must be
    // known, and the context must fit its schema (recorded with its fields as the schema names them).
    const { taskType, alias } = resolveTaskType(asked.task_type);
    const context = this.opts.catalog.check(taskType, asked.context, asked.agent) ?? asked.context;
    const req: SubmitRequest = { ...asked, context };
    // 2. Submit (a duplicate submit decides nothing and returns the existing state).
    const taskId = req.idempotency_key ? taskIdForIdempotencyKey(req.idempotency_key) : newId();
    // A full queue refuses new work (a repeat of a task held here still gets its task): queued
    // tasks cost memory here, a row in the read model and a place in every queue pass, and a
    // caller that submits faster than the agents work would otherwise grow them without end.
    const maxQueued = this.opts.maxQueued ?? DEFAULT_MAX_QUEUED;
    const queued = this.tasks.queuedCount() + this.submitting.count;
    if (queued >= maxQueued && !this.tasks.isKnown(taskId))
      throw new AppError(
        'rate_limited',
        `the task queue is full (${queued} tasks wait for an agent, the most DISPATCHER_MAX_QUEUED allows); try again later`,
        { queued, max_queued: maxQueued, retry_after_ms: 1_000 },
        true,
      );
    const maxBytes = this.opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    const queuedBytes = this.tasks.queuedContextBytes() + this.submitting.bytes;
    const owner = ownerOfSubmission(req);
    const bytes = contextBytes(req);
    if (queuedBytes > 0 && !this.tasks.isKnown(taskId)) {
      if (queuedBytes + bytes > maxBytes)
        throw new AppError(
          'rate_limited',
          `the task queue is full (its tasks' contexts take ${queuedBytes} bytes, this one ${bytes}, the most DISPATCHER_MAX_QUEUED_BYTES allows ${maxBytes}); try again later`,
          { queued_bytes: queuedBytes, bytes, max_queued_bytes: maxBytes, retry_after_ms: 1_000 },
          true,
        );
      const [held, pending] = [this.tasks.queuedOf(owner), this.submitting.of(owner)];
      const mine = { count: held.count + pending.count, bytes: held.bytes + pending.bytes };
      // A caller with nothing queued always gets in (up to the bound); the system's own callers
      // (no key behind them) are not a key whose share could run out.
      const crowded =
        mine.count > 0 &&
        !owner.startsWith('system:') &&
        ((queued + 1 > maxQueued * SHARED_FROM && mine.count + 1 > maxQueued * SHARE_PER_KEY) ||
          (queuedBytes + bytes > maxBytes * SHARED_FROM && mine.bytes + bytes > maxBytes * SHARE_PER_KEY));
      if (crowded)
        throw new AppError(
          'rate_limited',
          `the task queue is three quarters full and ${mine.count} of its tasks (${mine.bytes} bytes) are this caller's, a quarter of what it holds or more: the rest is kept for others; try again later`,
          {
            queued,
            queued_bytes: queuedBytes,
            caller_queued: mine.count,
            caller_queued_bytes: mine.bytes,
            max_queued: maxQueued,
            max_queued_bytes: maxBytes,
            retry_after_ms: 1_000,
          },
          true,
        );
    }
    const unsubmit = this.countSubmitting(owner, bytes);
    try {
      // Another dispatcher owns the task's partition: record the submission; the owner takes it from the log.
      if (!this.ownership.accepting(taskId))
        return await this.submitForeign(taskId, taskType, alias, req, correlationId);
      this.tasks.setCorrelation(taskId, correlationId, owner);
      // A fast task may end before this reply is made (a queue pass placed it, it ran): its end state is kept here, not read back.
      let ended: ExistingTaskState | undefined;
      const endWatch = { resolve: (s: ExistingTaskState) => void (ended = s), reject: () => undefined };
      const unwatch = this.tasks.addWaiter(taskId, endWatch);
      try {
        return await this.submitOwn(taskId, taskType, alias, req, correlationId, () => ended, unsubmit);
      } finally {
        unwatch();
        // Not appended (refused, failed): the owner kept for it goes.
        this.tasks.settleOwner(taskId);
      }
    } finally {
      unsubmit();
    }
  }

  /** Count a submission as queued while its append runs (see `submitting`); returns the uncount. */
  private countSubmitting(owner: string, bytes: number): () => void {
    this.submitting.add(owner, 1, bytes);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.submitting.add(owner, -1, -bytes);
    };
  }

  private async submitOwn(
    taskId: string,
    taskType: string,
    alias: string | undefined,
    req: SubmitRequest,
    correlationId: string,
    ended: () => ExistingTaskState | undefined,
    /** The append ended: the task now counts in the queue itself (if it waits), not as a submission. */
    appended: () => void,
  ): Promise<SubmitResult> {
    // 3a. When nothing else is waiting (so no task is overtaken) and an instance is free, the
    // assignment is decided with the submission and appended with it: one write instead of two.
    // Working by partitions, the instance's shared slot is reserved first (it needs a round trip).
    let pre: AgentInstance | undefined;
    if (
      this.ownership.partitioned &&
      !this.stopped &&
      this.pump.assigningCount === 0 &&
      this.tasks.queuedCount() === 0 &&
      !this.tasks.isKnown(taskId)
    ) {
      const inst = this.pump.select({ task_type: taskType, agent: req.agent, failed_instances: [] });
      if (inst) {
        this.registry.reserve(inst);
        if ((await this.ownership.reserveSlot(taskId, inst, 1)) === 'ok') pre = inst;
        else this.registry.release(inst);
      }
    }
    let placed: AgentInstance | undefined;
    const assignNow: FollowUp = (s) => {
      if (s.status !== 'queued' || this.stopped) return undefined;
      let inst = pre;
      if (!this.ownership.partitioned) {
        if (this.pump.assigningCount > 0 || this.tasks.queuedCount() > 0) return undefined;
        inst = this.pump.select(s);
        if (inst) this.registry.reserve(inst);
      }
      if (!inst) return undefined;
      placed = inst;
      return {
        command: {
          type: 'AssignTask',
          data: { agent: inst.agent, instance: inst.instance },
          metadata: this.tasks.meta(taskId),
        },
        undo: () => {
          if (!this.ownership.partitioned) this.registry.release(inst);
          placed = undefined;
        },
      };
    };
    const unreserve = () => {
      if (!pre || placed === pre) return;
      this.registry.release(pre);
      void this.ownership.releaseSlot(taskId, 1);
    };
    let r: CommandResult<TaskEvent, TaskState>;
    try {
      r = await this.tasks.exec(
        taskId,
        {
          type: 'SubmitTask',
          data: submitTaskData(taskId, taskType, alias, req, this.submitDefaults),
          metadata: { ...this.tasks.meta(taskId, req.actor), ...onBehalfOf(req) },
        },
        assignNow,
      );
    } catch (err) {
      placed = undefined;
      unreserve();
      throw err;
    } finally {
      appended();
    }
    if (placed && r.state.status !== 'assigned') placed = undefined;
    unreserve();
    const duplicate = r.events.length === 0;
    if (!duplicate)
      this.log.debug(
        { correlationId, taskId, taskType, ...(alias !== undefined ? { alias } : {}), priority: req.priority },
        'task submitted',
      );
    if (placed && r.state.status === 'assigned') this.pump.launch(r.state, placed);
    // 3b. Otherwise a pass over the queue may place it, so the answer can name the agent; but
    // the reply waits for it only briefly: under load a pass (and the passes it coalesces with)
    // can take longer than the caller waits, and the task is recorded already.
    else if (!duplicate) await this.pump.placeSoon();
    const state = (this.tasks.activeState(taskId) ?? ended() ?? (await this.tasks.load(taskId))) as ExistingTaskState;
    const view = taskViewOf(state);
    return { task_id: taskId, status: view.status, agent: view.agent, instance: view.instance, duplicate, state };
  }

  /** A SubmitTask's data with this dispatcher's defaults: the same whether this process or the partition's owner drives the task. */
  /**
   * The submission of a task whose partition another dispatcher holds: checked here, appended
   * like a caller's own submission (decided on the stream, `no_stream`, no fence: of this and
   * any other submitter exactly one writes the first events), then left to the owner, which
   * takes it over from the log. The reply says `queued` (or the state a duplicate found).
   */
  private async submitForeign(
    taskId: string,
    taskType: string,
    alias: string | undefined,
    req: SubmitRequest,
    correlationId: string,
  ): Promise<SubmitResult> {
    const r = await handleCommand(this.opts.store, taskStreamId(taskId), taskDelegationDecider, {
      type: 'SubmitTask',
      data: submitTaskData(taskId, taskType, alias, req, this.submitDefaults),
      metadata: {
        timestamp: new Date().toISOString(),
        correlationId,
        actor: req.actor ?? 'system:dispatcher',
        ...onBehalfOf(req),
      },
    });
    const state = r.state as ExistingTaskState;
    const duplicate = r.events.length === 0;
    if (!duplicate)
      this.log.info(
        { correlationId, taskId, taskType, partition: this.ownership.partitionOf(taskId) },
        'task submitted for the partition owner',
      );
    const view = taskViewOf(state);
    return { task_id: taskId, status: view.status, agent: view.agent, instance: view.instance, duplicate, state };
  }
}

const onBehalfOf = (req: SubmitRequest) => (req.on_behalf_of !== undefined ? { onBehalfOf: req.on_behalf_of } : {});
