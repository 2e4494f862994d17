import { randomUUID } from 'node:crypto';
import type { Artifact, Message, Part, TaskStatus } from '@a2a-js/sdk';
import { AgentEvent, type AgentExecutor, type ExecutionEventBus, type RequestContext } from '@a2a-js/sdk/server';
import { TaskNotCancelableError } from '@a2a-js/sdk/errors';
import { AppError, type Logger } from '@switchyard/platform';
import { currentCorrelationId } from '../../http/context.js';
import type { NextEventWatch } from '../../events/stream-fanout.js';
import type { WorkRequest } from './message.js';

/** A2A task states as the SDK numbers them (TaskState of the A2A 1.0 schema). */
export const A2A_STATE = { submitted: 1, working: 2, completed: 3, failed: 4, canceled: 5 } as const;
export type WorkState = keyof typeof A2A_STATE;
export const isFinal = (s: WorkState) => s === 'completed' || s === 'failed' || s === 'canceled';

/** Where a piece of Switchyard work stands, in A2A's terms. */
export interface WorkStatus {
  readonly state: WorkState;
  readonly result?: unknown;
  readonly error?: { readonly code: string; readonly message: string } | null;
}

/** The Switchyard side of an endpoint: a delegation to one agent, or a workflow start. */
export interface Backend {
  readonly kind: 'task' | 'workflow';
  /**
   * Refuse (RequestMalformedError, JSON-RPC -32602) an input the skill does not take, as the
   * REST start of the same work would (400), before the A2A task exists: a start refused later
   * left a task `failed` for a caller's mistake.
   */
  check(req: WorkRequest): Promise<void>;
  /** Start the work for A2A task `a2aTaskId` (idempotent on it); the id of our task or execution and metadata for the A2A task. */
  start(
    req: WorkRequest,
    a2aTaskId: string,
  ): Promise<{ readonly id: string; readonly metadata: Record<string, unknown> }>;
  status(id: string): Promise<WorkStatus>;
  /** Cancel it; the status after. Throws AppError `illegal_state` when it already ended. */
  cancel(id: string): Promise<WorkStatus>;
  /**
   * Listen for the work's next move (picked up, ended) on the gateway's shared subscription to
   * the event log; `next(ms)` is true once it moved, false after `ms`. Read the status after
   * this resolves: nothing that happens after the read is missed.
   */
  watch(id: string): Promise<NextEventWatch>;
  /** The skill a name stands for among `skills` (aliases included), undefined when this endpoint has none. */
  resolveSkill(name: string, skills: readonly string[]): string | undefined;
  /** The endpoint's skills, from a copy a few seconds old at most; `fresh`: read again (a name just registered is found). */
  skills(o?: { fresh?: boolean }): Promise<string[]>;
}

/** Most A2A tasks one gateway follows at once (see WorkExecutor). */
export const MAX_FOLLOWED_TASKS = 10_000;

const part = (content: Part['content'], mediaType: string): Part => ({
  content,
  mediaType,
  filename: '',
  metadata: undefined,
});
export const dataPart = (value: unknown): Part => part({ $case: 'data', value }, 'application/json');
export const textPart = (value: string): Part => part({ $case: 'text', value }, 'text/plain');

export function agentMessage(taskId: string, contextId: string, parts: Part[]): Message {
  return {
    messageId: randomUUID(),
    contextId,
    taskId,
    role: 2 /* ROLE_AGENT */,
    parts,
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}

/** The A2A status of a Switchyard status: failures carry a message with the error (text and data). */
export function statusOf(taskId: string, contextId: string, w: WorkStatus, at = new Date().toISOString()): TaskStatus {
  const err = w.error ?? undefined;
  const message =
    w.state === 'failed' && err
      ? agentMessage(taskId, contextId, [textPart(`${err.code}: ${err.message}`), dataPart({ error: err })])
      : w.state === 'canceled'
        ? agentMessage(taskId, contextId, [textPart('canceled')])
        : undefined;
  return { state: A2A_STATE[w.state], message, timestamp: at };
}

/** The result as an artifact: one data part holding the result JSON. */
export const resultArtifact = (result: unknown): Artifact => ({
  artifactId: 'result',
  name: 'result',
  description: 'The result JSON of the Switchyard task or workflow execution',
  parts: [dataPart(result ?? null)],
  metadata: undefined,
  extensions: [],
});

/** Status reads after a move before the follower waits for the next move again (50 ms to 1 s apart: about 3 s). */
const SETTLING_READS = 6;

interface Run {
  readonly backendId: string;
  readonly contextId: string;
  canceled: boolean;
}

/**
 * Runs one A2A task as Switchyard work and publishes its lifecycle:
 * 1. start the work (idempotent on the A2A task id), publish the task `submitted` with the
 *    link to our task or execution in its metadata (`switchyard_task_id` / `switchyard_execution_id`);
 * 2. follow the work until it ends, publishing `working` once it was picked up: its status is
 *    read (over NATS / from the read model) when it moves, as the gateway's one subscription to
 *    the event log tells (`Backend.watch`), a few times right after a move while the read
 *    catches up (50 ms, backing off), and every `recheckMs` while nothing moves; never on a
 *    timer per task, which would cost a read per running task per second;
 * 3. publish the result artifact and `completed`, or `failed` with the error, or `canceled`.
 * A cancel over A2A cancels the work in Switchyard first and publishes `canceled`.
 * What following costs is bounded: the rechecks of all followed tasks add up to at most
 * `recheckShare` per `recheckMs` (each task's recheck stretches as more are followed), and at
 * most `maxFollowed` tasks are followed at once; one started past it is published `submitted`
 * and left to the work itself: a later read (`tasks/get`, `resubscribe`, `cancel`) brings it up
 * to date and sends its push notifications, as for a task a stopped gateway left running.
 */
export class WorkExecutor implements AgentExecutor {
  private readonly runs = new Map<string, Run>();
  private stopped = false;
  private unfollowed = 0;
  private readonly recheckShare: number;
  private readonly maxFollowed: number;

  constructor(
    private readonly backend: Backend,
    private readonly parse: (ctx: RequestContext) => Promise<WorkRequest>,
    private readonly log: Logger,
    private readonly pollMaxMs = 1_000,
    private readonly recheckMs = 30_000,
    bounds: { readonly recheckShare?: number; readonly maxFollowed?: number } = {},
  ) {
    this.recheckShare = bounds.recheckShare ?? 1_000;
    this.maxFollowed = bounds.maxFollowed ?? MAX_FOLLOWED_TASKS;
  }

  execute = async (ctx: RequestContext, bus: ExecutionEventBus): Promise<void> => {
    const { taskId, contextId } = ctx;
    const req = await this.parse(ctx);
    const started = await this.backend.start(req, taskId);
    const run: Run = { backendId: started.id, contextId, canceled: false };
    const follow = this.runs.size < this.maxFollowed;
    if (follow) this.runs.set(taskId, run);
    const log = this.log.child({
      correlationId: currentCorrelationId(),
      a2aTaskId: taskId,
      [this.backend.kind === 'task' ? 'taskId' : 'executionId']: started.id,
    });
    log.info({ skill: req.skill }, 'a2a task started');
    try {
      bus.publish(
        AgentEvent.task({
          id: taskId,
          contextId,
          status: statusOf(taskId, contextId, { state: 'submitted' }),
          artifacts: [],
          history: ctx.userMessage ? [ctx.userMessage] : [],
          metadata: { ...started.metadata, skill: req.skill },
        }),
      );
      if (!follow) {
        if (this.unfollowed++ % 1_000 === 0)
          log.warn(
            { following: this.runs.size, unfollowed: this.unfollowed },
            'a2a: too many tasks followed at once; this one is brought up to date when it is read',
          );
        return;
      }
      let working = false;
      // Reads after a move (the status may come from a read model a little behind the log).
      let settlingReads = 0;
      let wait = 50;
      for (;;) {
        if (run.canceled) return; // cancelTask published `canceled`
        // The gateway is closing: the work goes on in Switchyard; a later read brings the A2A task up to date.
        if (this.stopped) return;
        // Listening before the read: a move after it wakes the wait below.
        const watch =
          settlingReads === 0
            ? await this.backend.watch(started.id).catch((err: unknown) => {
                log.warn({ err }, 'listening for the work to move failed; reading its status on a timer');
                return undefined;
              })
            : undefined;
        try {
          const w = await this.backend.status(started.id).catch((err: unknown) => {
            log.warn({ err }, 'reading the work status failed; retrying');
            return undefined;
          });
          if (run.canceled) return;
          if (w && w.state !== 'submitted' && !working) {
            working = true;
            bus.publish(
              AgentEvent.statusUpdate({
                taskId,
                contextId,
                status: statusOf(taskId, contextId, { state: 'working' }),
                metadata: undefined,
              }),
            );
          }
          if (w && isFinal(w.state)) {
            if (w.state === 'completed')
              bus.publish(
                AgentEvent.artifactUpdate({
                  taskId,
                  contextId,
                  artifact: resultArtifact(w.result),
                  append: false,
                  lastChunk: true,
                  metadata: undefined,
                }),
              );
            bus.publish(
              AgentEvent.statusUpdate({
                taskId,
                contextId,
                status: statusOf(taskId, contextId, w),
                metadata: undefined,
              }),
            );
            log.info({ state: w.state }, 'a2a task ended');
            return;
          }
          if (watch && w) {
            // Quiet until it moves, or for the recheck (then one more read, in case a move was missed).
            if (await watch.next(this.recheckMs * Math.max(1, this.runs.size / this.recheckShare))) {
              settlingReads = SETTLING_READS;
              wait = 50;
            }
            continue;
          }
        } finally {
          watch?.stop();
        }
        // Right after a move, or without a watch or a status: read again soon, backing off.
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(this.pollMaxMs, wait * 2);
        if (settlingReads > 0) settlingReads--;
      }
    } finally {
      if (this.runs.get(taskId) === run) this.runs.delete(taskId);
    }
  };

  cancelTask = async (taskId: string, bus: ExecutionEventBus): Promise<void> => {
    const run = this.runs.get(taskId);
    if (!run) throw new TaskNotCancelableError(`task ${taskId} is not running here`);
    const w = await cancelWork(this.backend, run.backendId, taskId);
    run.canceled = true;
    const { contextId } = run;
    bus.publish(
      AgentEvent.statusUpdate({ taskId, contextId, status: statusOf(taskId, contextId, w), metadata: undefined }),
    );
  };

  /** Stop following tasks (gateway shutdown). */
  stop(): void {
    this.stopped = true;
  }

  /** Whether this process follows the A2A task now (else a read refreshes it from the backend). */
  isRunning(taskId: string): boolean {
    return this.runs.has(taskId);
  }
}

/** Cancel the work behind an A2A task; TaskNotCancelableError when it ended already. */
export async function cancelWork(backend: Backend, backendId: string, a2aTaskId: string): Promise<WorkStatus> {
  try {
    const w = await backend.cancel(backendId);
    if (w.state !== 'canceled')
      throw new TaskNotCancelableError(`task ${a2aTaskId} ended ${w.state} before it could be canceled`);
    return w;
  } catch (err) {
    if (err instanceof AppError && (err.code === 'illegal_state' || err.code === 'conflict'))
      throw new TaskNotCancelableError(`task ${a2aTaskId}: ${err.message}`);
    throw err;
  }
}
