import type { NatsConnection } from '@nats-io/nats-core';
import { z } from 'zod';
import { AppError, isAppError } from '@switchyard/platform';
import { request, type RequestOptions } from '@switchyard/messaging';
import {
  ACTOR_PATTERN,
  CALL_SILENCE_MS,
  mcpCallToolSubject,
  mcpCancelCallSubject,
  TASKS_CANCEL_SUBJECT,
  TASKS_EXECUTE_SUBJECT,
  taskIdForIdempotencyKey,
} from '@switchyard/contracts';
import {
  AGENT_QUEUE_WAIT_BUDGET_MS,
  STEP_QUEUE_WAIT_BUDGET_MS,
  type DispatchAction,
  type StepError,
  type StopAction,
} from '@switchyard/domain';

/** Where units are sent; tests and benches use their own subjects to stay apart on a shared nats-server. */
export interface ExecutorSubjects {
  readonly mcpPrefix?: string;
  readonly tasks?: string;
  readonly tasksCancel?: string;
}

const callToolReply = z.looseObject({
  content: z.array(z.looseObject({ type: z.string() })).default([]),
  isError: z.boolean().optional(),
  structuredContent: z.record(z.string(), z.unknown()).optional(),
});
const taskReply = z.looseObject({
  task_id: z.string().optional(),
  agent: z.string().optional(),
  instance: z.string().optional(),
  status: z.string().optional(),
  result: z.unknown().optional(),
  error: z.unknown().optional(),
});

export type StepOutcome =
  { readonly ok: true; readonly output: unknown } | { readonly ok: false; readonly error: StepError };

/** An MCP result as a step output: structured content, else the JSON of a lone text block, else the content list. */
export function mcpOutput(reply: z.infer<typeof callToolReply>): unknown {
  if (reply.structuredContent) return reply.structuredContent;
  const texts = reply.content.filter((c) => c.type === 'text').map((c) => String((c as { text?: unknown }).text ?? ''));
  if (texts.length === 1) {
    try {
      return JSON.parse(texts[0]!);
    } catch {
      return { text: texts[0] };
    }
  }
  return { content: reply.content };
}

/** Any failure of a request as a StepError; the AppError's `retryable` says whether another attempt can help. */
export function toStepError(err: unknown): StepError {
  if (isAppError(err)) {
    const after = retryAfterMsOf(err.details);
    return {
      code: err.code,
      message: err.message,
      retryable: err.retryable,
      ...(after !== undefined && { retryAfterMs: after }),
    };
  }
  const e = err as { code?: unknown; message?: unknown; retryable?: unknown };
  return {
    code: typeof e?.code === 'string' ? e.code : 'internal',
    message: String(e?.message ?? err),
    retryable: e?.retryable === true,
  };
}

/** A worker's "not before" hint in an error's details (`retry_after_ms`, or the gateway's `retryAfterSeconds`), bounded to 5 min. */
function retryAfterMsOf(details: Record<string, unknown>): number | undefined {
  const ms =
    typeof details.retry_after_ms === 'number'
      ? details.retry_after_ms
      : typeof details.retryAfterSeconds === 'number'
        ? details.retryAfterSeconds * 1000
        : undefined;
  return ms !== undefined && Number.isFinite(ms) && ms > 0 ? Math.min(Math.round(ms), 300_000) : undefined;
}

/** How a caller follows its calls: workers send `queued` / `started` notices to `progressSubject`. */
export interface ExecuteOptions {
  readonly progressSubject?: string;
  /** How long the worker has said nothing of the call (since it was sent, or its last notice). */
  readonly silenceMs?: () => number;
  /** Called when the call is sent again because its worker fell silent. */
  readonly onResend?: () => void;
  /**
   * Whether the call is still wanted when it would be sent again (its attempt still in flight, its
   * execution not canceling): a re-send after the attempt timed out or a cancel ran the call's
   * effect after the compensation that undid it.
   */
  readonly stillWanted?: () => boolean | Promise<boolean>;
  /** How long a silence means the worker is gone (default CALL_SILENCE_MS). */
  readonly silenceLimitMs?: number;
}

/**
 * A request whose worker tells its caller of the call every heartbeat while it holds it: when it
 * goes silent for CALL_SILENCE_MS, it may have died with the call (queued or running), and the
 * same request is sent again under the same idempotency key (a live worker joins the call it
 * holds; another one takes it up). The first answer of the last request sent wins; earlier ones
 * are dropped. Re-sends stop at the request's own overall timeout.
 */
async function requestFollowingQueue<T>(
  nc: NatsConnection,
  subject: string,
  payload: unknown,
  ro: RequestOptions<T> & { timeoutMs: number },
  opts: ExecuteOptions,
): Promise<T> {
  const silence = opts.silenceMs;
  if (!silence) return request(nc, subject, payload, ro);
  const limit = opts.silenceLimitMs ?? CALL_SILENCE_MS;
  const until = Date.now() + ro.timeoutMs;
  for (;;) {
    const sent = request(nc, subject, payload, { ...ro, timeoutMs: Math.max(1_000, until - Date.now()) });
    let timer: NodeJS.Timeout | undefined;
    const silent = new Promise<'silent'>((resolve) => {
      const check = () => {
        const quiet = silence();
        if (quiet >= limit) resolve('silent');
        else timer = setTimeout(check, limit - quiet);
      };
      timer = setTimeout(check, limit);
    });
    try {
      const first = await Promise.race([
        sent.then(
          () => 'answered' as const,
          () => 'answered' as const,
        ),
        silent,
      ]);
      // Not sent again once nobody wants its answer: this request ends as it ends.
      if (first === 'answered' || Date.now() >= until || (await opts.stillWanted?.()) === false) return await sent;
    } finally {
      clearTimeout(timer);
    }
    sent.catch(() => undefined); // dropped: whatever it ends with
    opts.onResend?.();
  }
}

/**
 * Send one MCP or agent unit over NATS request-reply and wait for its outcome. The NATS
 * timeout is the step's own timeout plus a little: the durable timer is what records a
 * timeout, so a late local give-up never races it. With a `progressSubject` an MCP call may
 * wait up to STEP_QUEUE_WAIT_BUDGET_MS for a slot on a full server before it runs (its
 * connector says when it is queued and when it starts), an agent task up to
 * AGENT_QUEUE_WAIT_BUDGET_MS for an agent (the dispatcher says so), so the wait is added to the
 * NATS timeout.
 */
export async function executeRemote(
  nc: NatsConnection,
  a: DispatchAction,
  subjects: ExecutorSubjects = {},
  opts: ExecuteOptions = {},
): Promise<StepOutcome> {
  const timeoutMs = a.timeoutMs + 1_000;
  try {
    if (a.target.kind === 'mcp') {
      const args =
        a.input && typeof a.input === 'object' && !Array.isArray(a.input)
          ? (a.input as Record<string, unknown>)
          : { value: a.input };
      const progress = opts.progressSubject
        ? { queue_wait_ms: STEP_QUEUE_WAIT_BUDGET_MS, progress_subject: opts.progressSubject }
        : {};
      const reply = await requestFollowingQueue(
        nc,
        mcpCallToolSubject(a.target.server, subjects.mcpPrefix),
        // The engine is the caller of a step's tool: its events say so (the starter is on WorkflowStarted).
        {
          tool: a.target.tool,
          arguments: args,
          idempotency_key: a.idempotencyKey,
          timeout_ms: a.timeoutMs,
          actor: 'system:orchestrator',
          ...(a.startedBy && ACTOR_PATTERN.test(a.startedBy) ? { on_behalf_of: a.startedBy } : {}),
          ...progress,
        },
        {
          schema: callToolReply,
          timeoutMs: timeoutMs + (opts.progressSubject ? STEP_QUEUE_WAIT_BUDGET_MS : 0),
          correlationId: a.correlationId,
        },
        opts,
      );
      if (reply.isError) {
        const text = reply.content
          .map((c) => (c as { text?: unknown }).text)
          .filter((t) => typeof t === 'string')
          .join(' ');
        // The project's own servers say in structuredContent.error when another attempt may work
        // (its database restarting or cut off: unavailable); the step's retry policy then applies.
        const own = reply.structuredContent?.['error'] as { code?: unknown; retryable?: unknown } | undefined;
        if (own?.retryable === true && (own.code === 'unavailable' || own.code === 'timeout')) {
          return { ok: false, error: { code: own.code, message: text || 'tool unavailable', retryable: true } };
        }
        // Any other tool that answered with an error would answer the same again: not retryable.
        return {
          ok: false,
          error: { code: 'tool_error', message: text || 'tool returned an error', retryable: false },
        };
      }
      return { ok: true, output: mcpOutput(reply) };
    }
    if (a.target.kind === 'agent') {
      // The task may wait for an agent (the dispatcher says when it does and when it got one).
      const progress = opts.progressSubject ? { progress_subject: opts.progressSubject } : {};
      const reply = await requestFollowingQueue(
        nc,
        subjects.tasks ?? TASKS_EXECUTE_SUBJECT,
        {
          task_type: a.target.taskType,
          context: a.input ?? {},
          idempotency_key: a.idempotencyKey,
          timeout_ms: a.timeoutMs,
          correlation_id: a.correlationId,
          // The task is the starter's: the dispatcher's queue counts it against their share.
          ...(a.startedBy && ACTOR_PATTERN.test(a.startedBy) ? { on_behalf_of: a.startedBy } : {}),
          ...progress,
        },
        {
          schema: taskReply,
          timeoutMs: timeoutMs + (opts.progressSubject ? AGENT_QUEUE_WAIT_BUDGET_MS : 0),
          correlationId: a.correlationId,
        },
        opts,
      );
      if (reply.status && ['failed', 'error', 'canceled', 'cancelled'].includes(reply.status)) {
        const msg = typeof reply.error === 'string' ? reply.error : JSON.stringify(reply.error ?? reply.result ?? null);
        return { ok: false, error: { code: `task_${reply.status}`, message: msg, retryable: false } };
      }
      return { ok: true, output: reply.result ?? null };
    }
    throw new AppError('internal', `executeRemote cannot run ${a.uses}`);
  } catch (err) {
    const error = toStepError(err);
    // A unit that timed out elsewhere (a task the dispatcher timed out: its reply lost while NATS
    // restarted, say) is a timeout of this attempt like the engine's own: the step's retry policy
    // decides, as for the engine's own step timeouts.
    return { ok: false, error: error.code === 'timeout' ? { ...error, retryable: true } : error };
  }
}

/**
 * Ask whoever runs a unit to stop it (the execution is being canceled), by the unit's key: an
 * MCP call through a broadcast every connector hears, an agent task through the task service
 * (its id follows from the key). Best effort: a unit that does not stop ends by itself or by its
 * timeout, and the decider waits for it either way. Sub-workflows are canceled by the engine.
 */
export async function stopRemote(
  nc: NatsConnection,
  s: StopAction,
  actor: string,
  subjects: ExecutorSubjects = {},
): Promise<void> {
  if (s.target.kind === 'mcp') {
    nc.publish(
      mcpCancelCallSubject(s.target.server, subjects.mcpPrefix),
      JSON.stringify({ idempotency_key: s.idempotencyKey, reason: s.reason }),
    );
    return;
  }
  if (s.target.kind === 'agent') {
    try {
      await request(
        nc,
        subjects.tasksCancel ?? TASKS_CANCEL_SUBJECT,
        { task_id: taskIdForIdempotencyKey(s.idempotencyKey), reason: s.reason, actor },
        { schema: z.unknown(), timeoutMs: 5_000, correlationId: s.correlationId },
      );
    } catch (err) {
      // Not submitted yet, or already over: nothing to stop.
      if (isAppError(err) && (err.code === 'not_found' || err.code === 'illegal_state')) return;
      throw err;
    }
  }
}
