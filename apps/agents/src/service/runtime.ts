import type pg from 'pg';
import { AppError, type Logger } from '@switchyard/platform';
import { asAppError } from '@switchyard/messaging';
import { checkTaskContext, resolveTaskType } from '@switchyard/contracts';
import { agentCards, cardToJson, taskHandlers, type AgentCardJson } from '../registry.js';
import type { AgentCard, TaskDefinition } from '../types.js';
import type { LlmClient } from '../llm.js';
import { noopTask, NOOP_TASK_TYPE } from './noop.js';
import type { AgentExecuteReply, AgentLoadReply } from '@switchyard/contracts';

export interface AgentRuntimeOptions {
  /** Agent name from the capability cards (`data_analyst` ...). */
  readonly agent: string;
  readonly instanceId: string;
  /** The business database the handlers query. */
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** Overrides the card's maxConcurrency (tests use 1 to hold an agent busy). */
  readonly maxConcurrency?: number;
  /** Also serve the benchmark/test-only `noop` task type (see noop.ts). Default false. */
  readonly noop?: boolean;
  readonly llm?: LlmClient;
}

/** What a task run needs besides its context. */
export interface RunRequest {
  readonly task_id: string;
  readonly task_type: string;
  readonly context: unknown;
  readonly attempt: number;
  /** By the sender's clock: used only when `remaining_ms` is absent (an older sender). */
  readonly deadline?: string;
  /** The attempt's time left as sent, run from receipt on this process's monotonic clock. */
  readonly remaining_ms?: number;
  readonly correlationId: string;
}

/** setTimeout's longest delay: a longer one fires at once (Node clamps it to 1 ms). */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * How long the handler may run from receipt. The time left as sent, when given: a deadline is an
 * instant by the sender's clock, so on a host an hour ahead of the sender every task stopped at
 * once, and on one an hour behind none stopped itself.
 */
export function runTimeLeft(req: Pick<RunRequest, 'deadline' | 'remaining_ms'>): number | undefined {
  const left = req.remaining_ms ?? (req.deadline !== undefined ? Date.parse(req.deadline) - Date.now() : undefined);
  return left === undefined ? undefined : Math.min(MAX_TIMER_MS, Math.max(0, left));
}

interface Running {
  readonly controller: AbortController;
  readonly taskType: string;
  readonly startedAt: number;
  readonly attempt: number;
}

/** How many task ids the attempt guard remembers (oldest forgotten first). */
const SEEN_ATTEMPTS = 20_000;

/**
 * One agent instance's execution core, shared by its NATS service and its HTTP contract so
 * both count against the same concurrency limit. Beyond the limit a task is refused with
 * `unavailable` (busy): the dispatcher keeps the waiting line, not the agent.
 */
export class AgentRuntime {
  readonly agent: string;
  readonly instanceId: string;
  readonly card: AgentCard;
  readonly maxConcurrency: number;
  private readonly defs = new Map<string, TaskDefinition>();
  private readonly running = new Map<string, Running>();
  /**
   * The highest attempt (the dispatcher's assignment number) seen per task: the agent's side of
   * the fence. A dispatcher that lost its partition may still send an attempt it decided before;
   * an attempt lower than one seen is refused, and a higher one supersedes (aborts) a lower one
   * still running, so one task never runs twice here under two assignments.
   */
  private readonly seenAttempts = new Map<string, number>();
  private readonly log: Logger;
  private readonly startedAt = new Date().toISOString();
  private counters = { completed: 0, failed: 0, rejected: 0, canceled: 0 };

  constructor(private readonly opts: AgentRuntimeOptions) {
    const card = agentCards.find((c) => c.name === opts.agent);
    if (!card) throw new AppError('not_found', `unknown agent ${opts.agent}`, { known: agentCards.map((c) => c.name) });
    for (const def of Object.values(taskHandlers as Record<string, TaskDefinition>))
      if (def.agent === card.name) this.defs.set(def.taskType, def);
    const noop = opts.noop ? noopTask(card.name) : undefined;
    if (noop) this.defs.set(NOOP_TASK_TYPE, noop);
    this.agent = card.name;
    this.instanceId = opts.instanceId;
    this.maxConcurrency = opts.maxConcurrency ?? card.maxConcurrency;
    this.card = {
      ...card,
      maxConcurrency: this.maxConcurrency,
      taskTypes: noop
        ? [...card.taskTypes, { type: noop.taskType, description: noop.description, input: noop.input, aliases: [] }]
        : card.taskTypes,
    };
    this.log = opts.logger.child({ component: 'agent', agent: this.agent, instance: this.instanceId });
  }

  get taskTypes(): string[] {
    return [...this.defs.keys()];
  }

  cardJson(): AgentCardJson {
    return cardToJson(this.card);
  }

  /**
   * Run one task: 1. refuse when busy, 2. validate the context with the task type's schema
   * (400 naming each bad field), 3. run the handler under an AbortSignal that fires on cancel
   * or at the deadline. `onAdmitted` runs once the task holds a slot (the "started" notice).
   */
  async run(req: RunRequest, onAdmitted?: () => void): Promise<AgentExecuteReply> {
    const log = this.log.child({
      correlationId: req.correlationId,
      taskId: req.task_id,
      taskType: req.task_type,
      attempt: req.attempt,
    });
    // A caller of this agent's own contract (NATS, HTTP /execute) may name the task by an alias.
    const def = this.defs.get(resolveTaskType(req.task_type).taskType);
    if (!def) {
      this.counters.rejected++;
      throw new AppError(
        'validation',
        `agent ${this.agent} does not handle task type ${req.task_type}; valid: ${this.taskTypes.join(', ')}`,
        {
          task_type: req.task_type,
          valid_task_types: this.taskTypes,
          // Not the caller's input: the task was sent to the wrong agent (isCallerError).
          reason: 'unhandled_task_type',
        },
      );
    }
    const seen = this.seenAttempts.get(req.task_id);
    if (seen !== undefined && req.attempt < seen) {
      throw new AppError(
        'illegal_state',
        `attempt ${req.attempt} of task ${req.task_id} is superseded by attempt ${seen}`,
        { task_id: req.task_id, attempt: req.attempt, current: seen, reason: 'superseded' },
        false,
      );
    }
    const older = this.running.get(req.task_id);
    if (older && older.attempt < req.attempt) {
      older.controller.abort('superseded');
      this.running.delete(req.task_id);
    } else if (older)
      throw new AppError('illegal_state', `task ${req.task_id} is already running here`, {
        task_id: req.task_id,
        reason: 'already_running',
      });
    if (this.running.size >= this.maxConcurrency) {
      this.counters.rejected++;
      throw new AppError('unavailable', `agent ${this.agent} is busy`, {
        reason: 'busy',
        in_flight: this.running.size,
        max_concurrency: this.maxConcurrency,
      });
    }
    // The dispatcher checked it already; a caller of this agent's own subjects or HTTP edge was not.
    const parsed = checkTaskContext(req.task_type, def.input, req.context ?? {});
    if (!parsed.success) {
      this.counters.rejected++;
      throw new AppError('validation', parsed.message, { task_type: req.task_type, issues: parsed.issues }, false);
    }

    const controller = new AbortController();
    const entry: Running = { controller, taskType: req.task_type, startedAt: Date.now(), attempt: req.attempt };
    this.running.set(req.task_id, entry);
    this.seenAttempts.delete(req.task_id);
    this.seenAttempts.set(req.task_id, req.attempt);
    if (this.seenAttempts.size > SEEN_ATTEMPTS) this.seenAttempts.delete(this.seenAttempts.keys().next().value!);
    const timeLeft = runTimeLeft(req);
    const deadlineTimer = timeLeft === undefined ? undefined : setTimeout(() => controller.abort('deadline'), timeLeft);
    try {
      onAdmitted?.();
      const result = await def.handle(parsed.data, {
        pool: this.opts.pool,
        logger: log,
        signal: controller.signal,
        ...(this.opts.llm ? { llm: this.opts.llm } : {}),
      });
      if (controller.signal.reason === 'canceled')
        throw new AppError('illegal_state', 'task canceled', { task_id: req.task_id, reason: 'canceled' }, false);
      if (controller.signal.reason === 'superseded')
        throw new AppError(
          'illegal_state',
          `attempt ${req.attempt} superseded`,
          { task_id: req.task_id, reason: 'superseded' },
          false,
        );
      this.counters.completed++;
      const duration = Date.now() - entry.startedAt;
      log.debug({ ms: duration }, 'agent task completed'); // per task: debug, as logging is a measurable part of a short task's cost
      return { task_id: req.task_id, agent: this.agent, instance: this.instanceId, result, duration_ms: duration };
    } catch (err) {
      if (controller.signal.reason === 'canceled') {
        this.counters.canceled++;
        throw new AppError('illegal_state', 'task canceled', { task_id: req.task_id, reason: 'canceled' }, false);
      }
      if (controller.signal.reason === 'superseded')
        throw new AppError(
          'illegal_state',
          `attempt ${req.attempt} superseded`,
          { task_id: req.task_id, reason: 'superseded' },
          false,
        );
      this.counters.failed++;
      log.warn({ err }, 'agent task failed');
      // Stopped from here (the agent shutting down, its deadline): the handler's abort is not its verdict on the input.
      if (controller.signal.aborted) throw abortedError(req.task_id, controller.signal.reason);
      throw handlerError(req.task_type, err);
    } finally {
      clearTimeout(deadlineTimer);
      if (this.running.get(req.task_id) === entry) this.running.delete(req.task_id);
    }
  }

  /** Abort a running task's handler; false when it is not running here. */
  cancel(taskId: string, reason = 'canceled'): boolean {
    const r = this.running.get(taskId);
    if (!r) return false;
    this.log.info({ taskId, reason }, 'canceling task');
    r.controller.abort('canceled');
    return true;
  }

  /** Abort everything (shutdown). */
  abortAll(): void {
    for (const r of this.running.values()) r.controller.abort('shutdown');
  }

  load(): AgentLoadReply {
    return {
      agent: this.agent,
      instance: this.instanceId,
      in_flight: this.running.size,
      max_concurrency: this.maxConcurrency,
      queue_length: 0,
      ...this.counters,
      running: [...this.running.keys()],
      started_at: this.startedAt,
    };
  }
}

/**
 * A handler's own exception (not an AppError it meant, not a dependency down) is a bug this
 * context triggers: the same code fails the same way on every instance, so the error says so
 * (`reason: handler_error`, not retryable) and the dispatcher fails the task without counting it
 * against the instance's breaker, which one caller's inputs could otherwise hold open for everyone.
 */
export const HANDLER_ERROR = 'handler_error';
/** SQLSTATE classes of an unwell database: connection, transaction rollback, resources, object state, operator intervention, system, internal. */
const INFRASTRUCTURE_SQLSTATE = /^(08|40|53|55|57|58|XX)[0-9A-Z]{3}$/;
export function handlerError(taskType: string, err: unknown): AppError {
  const e = asAppError(err);
  if (err instanceof AppError || e.code !== 'internal') return e;
  // A database that is unwell (its connection, a deadlock, too many connections, a statement
  // timeout, a shutdown) says nothing about the input: it stays what it was. A data or syntax
  // error (class 22, 42, ...) is the input's, like any other exception of the handler.
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && INFRASTRUCTURE_SQLSTATE.test(code)) return e;
  const name = err instanceof Error ? err.name : typeof err;
  return new AppError(
    'internal',
    `${taskType} failed on this context (${name}); another attempt would fail the same way`,
    { reason: HANDLER_ERROR },
    false,
  );
}

/** A task this agent stopped itself: at its deadline (a timeout), or as the agent shuts down (another instance may run it). */
function abortedError(taskId: string, reason: unknown): AppError {
  return reason === 'deadline'
    ? new AppError('timeout', 'the task ran past its deadline', { task_id: taskId }, true)
    : new AppError('unavailable', `the agent stopped the task (${String(reason)})`, { task_id: taskId }, true);
}
