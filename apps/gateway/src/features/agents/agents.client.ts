import { Inject, Injectable, Optional } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';

import {
  builtinTaskContext,
  resolveTaskType,
  serviceSubject,
  type TaskSubmitReply,
  agentHealthReply,
  agentHealthView,
  registerAgentReply,
  capabilitiesReply,
  performanceReply,
  TASKS_SERVICE,
  taskExecuteReply,
  taskSubmitReply,
  taskView,
  unregisterAgentReply,
  type ExternalAgent,
  taskIdForIdempotencyKey,
  taskEndError,
  taskViewOf,
  type TaskExecuteReply,
} from '@switchyard/contracts';
import { aggregateStream, handleCommand, type EventStore } from '@switchyard/event-store';
import { newInbox, request } from '@switchyard/messaging';
import { waitLeft } from '../../http/wait.js';
import { AppError, newId } from '@switchyard/platform';
import {
  isTerminal,
  submitTaskData,
  taskDelegationDecider,
  taskStreamId,
  type ExistingTaskState,
  type TaskPriority,
} from '@switchyard/domain';
import { currentActor } from '../../http/context.js';
import { backendKey } from '../../idempotency/keys.js';
import { EVENT_STORE, NATS_CONNECTION } from '../../tokens.js';

/** Options of the agents feature (`AgentsFeatureModule.withOptions`). */
export interface AgentsFeatureOptions {
  /** How long a delegation waits for the dispatcher's submit reply before it records the task itself. Default DELEGATE_SUBMIT_TIMEOUT_MS, else 5 000 ms. */
  readonly submitTimeoutMs?: number;
}
export const AGENTS_FEATURE_OPTIONS = Symbol.for('switchyard.gateway.agentsFeatureOptions');

/** DELEGATE_SUBMIT_TIMEOUT_MS (default 5 000); a bad value stops the start, naming the variable. */
function submitTimeoutFromEnv(env: NodeJS.ProcessEnv): number {
  const raw = env.DELEGATE_SUBMIT_TIMEOUT_MS;
  if (raw === undefined || raw === '') return 5_000;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 100 || n > 600_000)
    throw new Error(
      `DELEGATE_SUBMIT_TIMEOUT_MS: expected an integer of milliseconds from 100 to 600000, got ${JSON.stringify(raw)}`,
    );
  return n;
}

// The dispatcher's defaults, for a submission the gateway records itself (the same numbers as startDispatcher's).

export interface DelegateRequest {
  readonly task_type: string;
  readonly context: Record<string, unknown>;
  readonly priority: TaskPriority;
  readonly agent?: string;
  readonly timeout_ms?: number;
}

const subject = (endpoint: string) => serviceSubject(TASKS_SERVICE, endpoint);
/** A wait this long also looks at the task's stream (see AgentsClient.untilEnd). */
const LOG_WATCH_AFTER_MS = 2_000;
const LOG_WATCH_EVERY_MS = 2_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A task that ended failed on an error its agent did not expect: the request itself was fine, so
 * not a 500; the agent's message stays in its log (it may hold internals). Other errors as they are.
 */
function publicEndError(err: unknown): unknown {
  if (err instanceof AppError && err.code === 'internal' && typeof err.details.task_id === 'string') {
    const { task_id, status, agent, instance } = err.details;
    return new AppError(
      'illegal_state',
      `task ${task_id} failed on an internal error of its agent`,
      { task_id, status, agent, instance },
      false,
    );
  }
  return err;
}

/** An ended task as `execute` answers it: its completion, or the error for any other end. */
function completedOrThrow(s: ExistingTaskState): TaskExecuteReply {
  if (s.status !== 'completed') throw taskEndError(s);
  const v = taskViewOf(s);
  return {
    task_id: s.task_id,
    agent: v.agent ?? '',
    instance: v.instance ?? '',
    status: 'completed',
    result: s.result,
  };
}

/** Talks to the dispatcher's `tasks` service over NATS; the dispatcher's AppError codes come back unchanged. */
@Injectable()
export class AgentsClient {
  private readonly submitTimeoutMs: number;

  constructor(
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Optional() @Inject(AGENTS_FEATURE_OPTIONS) options?: AgentsFeatureOptions,
  ) {
    this.submitTimeoutMs = options?.submitTimeoutMs ?? submitTimeoutFromEnv(process.env);
  }

  /**
   * Submit; with `waitMs`, also wait for the end (same idempotency key -> same task) and return
   * the result, or the task as it is when the wait runs out (`done: false`).
   */
  async delegate(req: DelegateRequest, correlationId: string, opts: { idempotencyKey?: string; waitMs?: number } = {}) {
    const since = performance.now();
    // A client's key is prefixed, so it cannot name a task the workflow engine keyed; without one, a fresh key.
    const key = opts.idempotencyKey !== undefined ? backendKey(opts.idempotencyKey) : newId();
    // The request's actor (`apikey:<id>`) goes into the TaskSubmitted metadata (audit).
    const input = { ...req, idempotency_key: key, correlation_id: correlationId, actor: currentActor() ?? 'anonymous' };
    // Waiting, without a key of the caller's (so the task is new, never a duplicate): one request.
    if (opts.waitMs !== undefined && opts.idempotencyKey === undefined)
      return this.executeAtOnce(input, correlationId, opts.waitMs);
    let submitted: TaskSubmitReply;
    try {
      submitted = await request(this.nc, subject('submit'), input, {
        schema: taskSubmitReply,
        correlationId,
        timeoutMs: this.submitTimeoutMs,
      });
    } catch (err) {
      // No reply in time says nothing about whether the dispatcher recorded the task: never
      // answer "retry" for work that may exist. Settle it on the task's stream instead.
      if (!(err instanceof AppError && err.code === 'timeout' && err.details.subject === subject('submit'))) throw err;
      submitted = await this.recordSubmission(input, correlationId);
    }
    if (opts.waitMs === undefined) return { done: false as const, submitted };
    try {
      // The submission took some of the wait already.
      const r = await this.untilEnd(
        submitted.task_id,
        request(this.nc, subject('execute'), input, {
          schema: taskExecuteReply,
          correlationId,
          timeoutMs: waitLeft(opts.waitMs, since),
        }),
      );
      return { done: true as const, submitted, result: r };
    } catch (err) {
      // The wait ran out, not the task: answer with where it stands.
      if (err instanceof AppError && err.code === 'timeout' && err.details.task_id === undefined) {
        const stands = await this.standing(submitted.task_id).catch((e: unknown) => {
          throw publicEndError(e);
        });
        if (stands.ended) return { done: true as const, submitted, result: stands.ended };
        return { done: false as const, submitted: { ...submitted, ...stands.status } };
      }
      throw publicEndError(err);
    }
  }

  /**
   * `delegate` with a wait for a task of a fresh key: `execute` alone (it submits and waits for the
   * end), not `submit` then `execute`: one NATS round trip less, and no second look at a task that
   * may have ended meanwhile. The dispatcher's progress notice (`queued` or `started`, sent once
   * the submission is appended) stands for the submit reply: when neither it nor the answer came
   * within the submit timeout, the submission is settled on the task's stream, as for a late
   * submit reply, and the wait goes on.
   */
  private async executeAtOnce(
    input: DelegateRequest & { idempotency_key: string; correlation_id: string; actor: string },
    correlationId: string,
    waitMs: number,
  ) {
    const taskId = taskIdForIdempotencyKey(input.idempotency_key);
    const progressSubject = newInbox(this.nc);
    let recorded = false;
    const sub = this.nc.subscribe(progressSubject, { max: 1, callback: () => void (recorded = true) });
    let settling: Promise<unknown> | undefined;
    const settle = () => (settling ??= this.recordSubmission(input, correlationId));
    const timer = setTimeout(() => {
      if (!recorded) void settle().catch(() => undefined);
    }, this.submitTimeoutMs);
    try {
      const r = await this.untilEnd(
        taskId,
        request(
          this.nc,
          subject('execute'),
          // One notice is all this wait needs (it stands for the submit reply): no heartbeat to a closed subscription.
          { ...input, progress_subject: progressSubject, progress_first_only: true },
          { schema: taskExecuteReply, correlationId, timeoutMs: waitMs },
        ),
      );
      const submitted: TaskSubmitReply = {
        task_id: r.task_id,
        status: r.status,
        agent: r.agent,
        instance: r.instance,
        duplicate: false,
      };
      return { done: true as const, submitted, result: r };
    } catch (err) {
      // The wait ran out, not the task: make sure it is recorded, then answer with where it stands.
      if (err instanceof AppError && err.code === 'timeout' && err.details.task_id === undefined) {
        if (!recorded) await settle();
        const stands = await this.standing(taskId).catch((e: unknown) => {
          throw publicEndError(e);
        });
        const submitted: TaskSubmitReply = { task_id: taskId, duplicate: false, ...stands.status };
        if (stands.ended) return { done: true as const, submitted, result: stands.ended };
        return { done: false as const, submitted };
      }
      throw publicEndError(err);
    } finally {
      clearTimeout(timer);
      sub.unsubscribe();
      // A settlement under way finishes before the answer (its failure is the dispatcher's to see in the log).
      await settling?.catch(() => undefined);
    }
  }

  /**
   * The submission as the task's stream has it: the dispatcher's when it got there first (its
   * reply was only late), else this one, appended through the TaskDelegation decider on a new
   * stream (`no_stream`: of the gateway and a late dispatcher exactly one writes the first
   * events, the other finds them). The dispatcher takes over such a task from the log (it
   * watches TaskSubmitted), so the answer is 202 with the task id either way.
   */
  private async recordSubmission(
    input: DelegateRequest & { idempotency_key: string; actor: string },
    correlationId: string,
  ): Promise<TaskSubmitReply> {
    const taskId = taskIdForIdempotencyKey(input.idempotency_key);
    // Recorded as the dispatcher records it: the canonical type, the alias that named it, the
    // context's fields as the type's schema names them.
    const { taskType, alias } = resolveTaskType(input.task_type);
    const context = builtinTaskContext(taskType, input.context);
    const r = await handleCommand(this.store, taskStreamId(taskId), taskDelegationDecider, {
      type: 'SubmitTask',
      data: submitTaskData(taskId, taskType, alias, { ...input, context }),
      metadata: { timestamp: new Date().toISOString(), correlationId, actor: input.actor },
    });
    const state = r.state;
    if (state.status === 'initial')
      throw new AppError('internal', `task ${taskId} was not recorded`, { task_id: taskId });
    const view = taskViewOf(state);
    return {
      task_id: taskId,
      status: view.status,
      agent: view.agent,
      instance: view.instance,
      duplicate: r.events.length === 0,
    };
  }

  /**
   * The dispatcher's answer to `execute`, or the task's end as its stream has it, whichever comes
   * first. The answer comes from the one dispatcher that took the request: frozen (a paused VM, a
   * stall), it held the wait until it ran out while another dispatcher, which took its partitions
   * over, had ended the task seconds before. A wait past LOG_WATCH_AFTER_MS looks at the stream
   * every LOG_WATCH_EVERY_MS (one read each, only for the waits that last).
   */
  private async untilEnd(taskId: string, answer: Promise<TaskExecuteReply>): Promise<TaskExecuteReply> {
    let stop = false;
    const fromLog = (async (): Promise<TaskExecuteReply> => {
      await sleep(LOG_WATCH_AFTER_MS);
      while (!stop) {
        const ended = await this.endedInLog(taskId).catch(() => undefined);
        if (ended && !stop) return completedOrThrow(ended);
        await sleep(LOG_WATCH_EVERY_MS);
      }
      return new Promise<never>(() => undefined);
    })();
    try {
      return await Promise.race([answer, fromLog]);
    } finally {
      stop = true;
      // Whichever lost ends on its own; its outcome is not wanted.
      answer.catch(() => undefined);
      fromLog.catch(() => undefined);
    }
  }

  /** The task as its stream has it, when it has ended. */
  private async endedInLog(taskId: string): Promise<ExistingTaskState | undefined> {
    const state = await this.taskInLog(taskId);
    return state && isTerminal(state) ? state : undefined;
  }

  /** The task folded from its stream; undefined before its submission is recorded. */
  private async taskInLog(taskId: string): Promise<ExistingTaskState | undefined> {
    const { state } = await aggregateStream(this.store, taskStreamId(taskId), taskDelegationDecider);
    return state.status === 'initial' ? undefined : state;
  }

  /**
   * Where a task stands when a wait for it ran out, from its stream (not from a dispatcher, which
   * may be the one that held the wait): its end when it has ended (a completion, or the error a
   * caller of `execute` gets), else its status.
   */
  private async standing(
    taskId: string,
  ): Promise<{ ended?: TaskExecuteReply; status: Pick<TaskSubmitReply, 'status' | 'agent' | 'instance'> }> {
    const state = await this.taskInLog(taskId);
    if (!state) throw new AppError('internal', `task ${taskId} was not recorded`, { task_id: taskId });
    const v = taskViewOf(state);
    const status = { status: v.status, agent: v.agent, instance: v.instance };
    return isTerminal(state) ? { ended: completedOrThrow(state), status } : { status };
  }

  task(taskId: string, correlationId: string) {
    return request(this.nc, subject('get'), { task_id: taskId }, { schema: taskView, correlationId });
  }

  cancel(taskId: string, reason: string, actor: string, correlationId: string) {
    return request(this.nc, subject('cancel'), { task_id: taskId, reason, actor }, { schema: taskView, correlationId });
  }

  health(correlationId: string) {
    return request(this.nc, subject('agents'), undefined, { schema: agentHealthReply, correlationId });
  }

  agentHealth(agent: string, correlationId: string) {
    return request(this.nc, subject('agent'), { agent }, { schema: agentHealthView, correlationId });
  }

  capabilities(correlationId: string) {
    return request(this.nc, subject('capabilities'), undefined, { schema: capabilitiesReply, correlationId });
  }

  performance(correlationId: string) {
    return request(this.nc, subject('performance'), undefined, { schema: performanceReply, correlationId });
  }

  /** Store and use an external HTTP agent; the actor is recorded in ExternalAgentRegistered. */
  registerExternal(agent: ExternalAgent, actor: string, correlationId: string) {
    return request(
      this.nc,
      subject('register_agent'),
      { ...agent, actor },
      { schema: registerAgentReply, correlationId },
    );
  }

  unregisterExternal(name: string, actor: string, correlationId: string) {
    return request(
      this.nc,
      subject('unregister_agent'),
      { name, actor },
      { schema: unregisterAgentReply, correlationId },
    );
  }
}
