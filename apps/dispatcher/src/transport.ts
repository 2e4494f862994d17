/**
 * How the dispatcher reaches an agent instance for one attempt: a NATS request to one of our
 * agents, `message/send` to an A2A agent, or the HTTP agent contract (POST <url>/execute); and
 * the NATS cancel of a running attempt. No state here: the Dispatcher decides what to call.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { codeOfStatus } from '@switchyard/contracts';
import { request } from '@switchyard/messaging';
import {
  AppError,
  guardedFetch,
  isAppError,
  isErrorCode,
  parsePeerJson,
  redactSecretValues,
  urlOrigin,
  type EgressGuard,
} from '@switchyard/platform';
import type { TaskState } from '@switchyard/domain';
import {
  agentCancelReply,
  agentExecuteReply,
  agentInstanceSubject,
  httpErrorBody,
  httpExecuteReply,
} from '@switchyard/contracts';
import { agentAnswerUnusable, fetchA2aCard, runOnA2aAgent } from './a2a-agents.js';
import type { AgentInstance } from './instances.js';

export type AssignedTask = Extract<TaskState, { status: 'assigned' }>;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
const bearerOf = (token: string | undefined): Record<string, string> =>
  token ? { authorization: `Bearer ${token}` } : {};
function onLoopback(url: string | undefined): boolean {
  try {
    return url !== undefined && LOOPBACK_HOSTS.has(new URL(url).hostname);
  } catch {
    return false;
  }
}

/**
 * The attempt's time left as an agent is sent it (whole ms, rounded up): the agent runs it from
 * receipt on its own monotonic clock, as its host's wall clock may disagree with this one's by
 * any amount; `deadline` stays in the request for an agent from before this field.
 */
const sentTimeLeft = (remainingMs: number): number => Math.ceil(Math.max(0, remainingMs));

/** One attempt on one of our agents over NATS; the reply's result. */
export async function callNats(
  nats: NatsConnection,
  s: AssignedTask,
  inst: AgentInstance,
  remainingMs: number,
  o: { notifySubject: string; correlationId: string },
): Promise<unknown> {
  const reply = await request(
    nats,
    agentInstanceSubject(inst.agent, inst.instance, 'execute'),
    {
      task_id: s.task_id,
      task_type: s.task_type,
      context: s.context,
      attempt: s.assignment,
      deadline: s.deadline,
      remaining_ms: sentTimeLeft(remainingMs),
      notify_subject: o.notifySubject,
    },
    // A little longer than the deadline: the deadline timer decides, not the request timeout.
    { schema: agentExecuteReply, timeoutMs: remainingMs + 2_000, correlationId: o.correlationId },
  );
  return reply.result;
}

/** An external A2A agent: `message/send` through the A2A client (the card as the last probe read it). */
export async function callA2a(
  egress: EgressGuard,
  s: AssignedTask,
  inst: AgentInstance,
  signal: AbortSignal,
): Promise<unknown> {
  if (!inst.a2aCard) {
    try {
      inst.a2aCard = (await fetchA2aCard(egress, inst.a2aCardUrl!)).card;
    } catch (err) {
      // A card the agent serves badly at task time (no probe has read it yet) is the agent's
      // failure, as its answers are: the task's context was fine. A refused address stays `forbidden`.
      throw isAppError(err) && (err.code === 'validation' || err.code === 'payload_too_large')
        ? agentAnswerUnusable(err, "the A2A agent's card")
        : err;
    }
  }
  return runOnA2aAgent(egress, { card: inst.a2aCard, token: inst.token }, s, signal);
}

/**
 * Most bytes of an external agent's answer (HTTP contract or A2A): a result is an event of the
 * task and the answer of `tasks.v1.get` over NATS (1 MiB a message), so a larger one could not be
 * kept anyway; reading and parsing 10 MB took seconds of the dispatcher's one thread.
 */
export const AGENT_ANSWER_MAX_BYTES = 1024 * 1024;

/**
 * An external agent over the HTTP agent contract. The bearer: the agent's own token; else, on
 * loopback only, this system's agents' token; else AI_AGENT_AUTH_TOKEN as the operator set it.
 */
export async function callHttp(
  egress: EgressGuard,
  s: AssignedTask,
  inst: AgentInstance,
  signal: AbortSignal,
  o: {
    correlationId: string;
    remainingMs: number;
    agentToken?: string | undefined;
    externalAgentToken?: string | undefined;
  },
): Promise<unknown> {
  let res: Response;
  try {
    res = await guardedFetch(egress, `${inst.url}/execute`, {
      method: 'POST',
      signal,
      timeoutMs: 24 * 3_600_000, // the task's deadline (signal) governs
      maxBytes: AGENT_ANSWER_MAX_BYTES,
      headers: {
        'content-type': 'application/json',
        'x-correlation-id': o.correlationId,
        ...bearerOf(inst.token ?? (onLoopback(inst.url) ? o.agentToken : o.externalAgentToken)),
      },
      body: JSON.stringify({
        task_id: s.task_id,
        task_type: s.task_type,
        context: s.context,
        deadline: s.deadline,
        remaining_ms: sentTimeLeft(o.remainingMs),
      }),
    });
  } catch (err) {
    // A refused address is not the agent being down: say so, and do not retry elsewhere for it.
    if (err instanceof AppError && err.code === 'forbidden') throw err;
    // An answer over the bound (AGENT_ANSWER_MAX_BYTES) is the agent's failure, not the caller's.
    if (err instanceof AppError && err.code === 'payload_too_large')
      throw agentAnswerUnusable(err, `agent ${inst.agent}'s answer`);
    throw new AppError('unavailable', `agent ${inst.agent} at ${urlOrigin(inst.url ?? '')} is unreachable`, {
      cause: redactSecretValues(String(err)),
    });
  }
  // Not JSON is handled below as an answer outside the contract; nested past any sense is refused,
  // as the agent's failure.
  let body: unknown;
  try {
    body = parsePeerJson(await res.text(), `agent ${inst.agent}'s answer`);
  } catch (err) {
    throw agentAnswerUnusable(err as AppError, `agent ${inst.agent}'s answer`);
  }
  if (!res.ok) {
    const e = httpErrorBody.safeParse(body);
    const code = e.success && isErrorCode(e.data.error.code) ? e.data.error.code : codeOfStatus(res.status);
    throw new AppError(
      code,
      e.success ? e.data.error.message : `agent answered ${res.status}`,
      e.success ? (e.data.error.details ?? {}) : {},
    );
  }
  const ok = httpExecuteReply.safeParse(body);
  if (!ok.success)
    throw new AppError(
      'internal',
      `agent ${inst.agent} answered outside the HTTP agent contract`,
      { issues: ok.error.issues },
      true,
    );
  return ok.data.result;
}

/** Ask a NATS instance to stop an attempt (best effort); HTTP attempts are aborted with their fetch. */
export async function cancelOnInstance(
  nats: NatsConnection,
  inst: AgentInstance,
  taskId: string,
  reason: string,
): Promise<void> {
  if (inst.kind !== 'nats') return; // HTTP attempts are aborted with their fetch
  await request(
    nats,
    agentInstanceSubject(inst.agent, inst.instance, 'cancel'),
    { task_id: taskId, reason },
    { schema: agentCancelReply, timeoutMs: 1_000 },
  ).catch(() => undefined);
}
