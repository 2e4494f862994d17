import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentCard, Message, Part, Task } from '@a2a-js/sdk';
import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
  type Client,
} from '@a2a-js/sdk/client';
import {
  AppError,
  checkPeerJsonDepth,
  guardedFetch,
  isAppError,
  urlOrigin,
  type EgressGuard,
} from '@switchyard/platform';

/**
 * External A2A agents: the card read at registration and by every health probe, and a
 * delegated task sent with `message/send` by the A2A SDK's client. Every connection (card and
 * JSON-RPC) goes through the egress guard.
 */

/** What a registration takes from an A2A agent's card. */
export interface A2aCardInfo {
  readonly card: AgentCard;
  /** The JSON-RPC endpoint (absolute). */
  readonly url: string;
  /** The skill ids: the task types the agent takes. */
  readonly skills: string[];
  readonly description: string;
}

const CARD_MAX_BYTES = 256 * 1024;
type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';

/**
 * `details.reason` of an external agent's answer that cannot be used (over the size bound, nested
 * past any sense): with `unavailable`, the agent's fault, retried and counted against it, where
 * `payload_too_large` or `validation` told the caller to fix a request that was fine.
 */
export const AGENT_ANSWER_UNUSABLE = 'agent_answer_unusable';

/**
 * An agent's answer refused for its size or depth (`payload_too_large`, or `validation` from
 * checkPeerJsonDepth), as the agent's failure (see AGENT_ANSWER_UNUSABLE); `what` names the answer.
 */
export function agentAnswerUnusable(err: AppError, what: string): AppError {
  return new AppError(
    'unavailable',
    err.code === 'payload_too_large' ? `${what} is too large: ${err.message}` : err.message,
    { ...err.details, reason: AGENT_ANSWER_UNUSABLE },
    true,
  );
}

/**
 * A `fetch` for the SDK that connects only where the egress guard allows, with the agent's bearer
 * token; an answer is read whole up to `maxBytes` and refused when its JSON nests past any sense
 * (the SDK parses it, and what it parses is stored and walked: see checkPeerJsonDepth). Either
 * refusal is the agent's failure (agentAnswerUnusable).
 */
export function egressFetch(
  guard: EgressGuard,
  token: string | undefined,
  timeoutMs: number,
  maxBytes = A2A_ANSWER_MAX_BYTES,
): typeof fetch {
  return async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.toString() : input.url;
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => (headers[k] = v));
    if (token) headers.authorization = `Bearer ${token}`;
    const body = typeof init?.body === 'string' ? init.body : undefined;
    const res = await guardedFetch(guard, url, {
      method: (init?.method ?? 'GET').toUpperCase() as HttpMethod,
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(init?.signal ? { signal: init.signal } : {}),
      timeoutMs,
      maxBytes,
    }).catch((err: unknown) => {
      // Our request is small: what is over the bound is the agent's answer. A refused address stays `forbidden`.
      throw isAppError(err) && err.code === 'payload_too_large'
        ? agentAnswerUnusable(err, "the A2A agent's answer")
        : err;
    });
    if (!res.body) return res;
    const text = await res.text();
    try {
      // The depth alone: the SDK parses the text itself.
      checkPeerJsonDepth(text, "the A2A agent's answer");
    } catch (err) {
      throw agentAnswerUnusable(err as AppError, "the A2A agent's answer");
    }
    return new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/** Most bytes of one answer of an A2A agent (its task with artifacts, a `tasks/get`). */
const A2A_ANSWER_MAX_BYTES = 1024 * 1024;
/** The poll of a task still working: from `pollMs`, doubling up to this. */
const POLL_MAX_MS = 5_000;

/** Fetch and read an A2A agent card (0.3 or 1.0 shape). `validation` when it is not a usable card, `unavailable` when it cannot be fetched. */
export async function fetchA2aCard(guard: EgressGuard, cardUrl: string, timeoutMs = 10_000): Promise<A2aCardInfo> {
  // Errors name the card by its origin: its path or query can carry a credential.
  const shownUrl = urlOrigin(cardUrl);
  let res: Response;
  try {
    // 1.0 preferred; a 0.3 agent ignores the header and its card is read by the compat layer.
    res = await guardedFetch(guard, cardUrl, {
      headers: { accept: 'application/json', 'a2a-version': '1.0' },
      timeoutMs,
      maxBytes: CARD_MAX_BYTES,
    });
  } catch (err) {
    if (isAppError(err) && (err.code === 'forbidden' || err.code === 'payload_too_large')) throw err;
    throw new AppError(
      'unavailable',
      `the A2A agent card at ${shownUrl} cannot be fetched: ${(err as Error).message}`,
      {
        a2a_card_url: shownUrl,
      },
    );
  }
  if (!res.ok)
    throw new AppError('unavailable', `the A2A agent card at ${shownUrl} answered ${res.status}`, {
      a2a_card_url: shownUrl,
      status: res.status,
    });
  let card: AgentCard;
  try {
    card = new DefaultAgentCardResolver({ legacyCompat: { enabled: true } }).normalizeAgentCard(await res.json());
  } catch (err) {
    throw new AppError(
      'validation',
      `${shownUrl} is not an A2A agent card: ${(err as Error).message}`,
      { a2a_card_url: shownUrl },
      false,
    );
  }
  const iface = card.supportedInterfaces?.find((i) => i.protocolBinding === 'JSONRPC');
  if (!iface?.url)
    throw new AppError(
      'validation',
      `the A2A agent at ${shownUrl} offers no JSON-RPC interface`,
      { a2a_card_url: shownUrl },
      false,
    );
  // Skill ids become task types: names in logs, events, the console, the CLI and /mcp tools
  // (agent__<type>, MCP's name syntax). A card's are kept only when plain names, at most MAX_SKILLS.
  const skills = [
    ...new Set(
      (card.skills ?? []).map((s) => s.id).filter((id): id is string => typeof id === 'string' && SKILL_ID.test(id)),
    ),
  ].slice(0, MAX_SKILLS);
  if (skills.length === 0)
    throw new AppError(
      'validation',
      `the A2A agent card at ${shownUrl} lists no usable skills (they become its task types: 1-100 of A-Z a-z 0-9 _ . -)`,
      { a2a_card_url: shownUrl },
      false,
    );
  const description = (card.description ?? '').replace(CONTROL_CHARACTERS, ' ').slice(0, MAX_DESCRIPTION_CHARS);
  return { card, url: new URL(iface.url, cardUrl).toString(), skills, description };
}

/** A skill id a card may give as a task type. */
const SKILL_ID = /^[A-Za-z0-9_.-]{1,100}$/;
const MAX_SKILLS = 100;
const MAX_DESCRIPTION_CHARS = 1_000;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const dataPart = (value: unknown): Part => ({
  content: { $case: 'data', value },
  mediaType: 'application/json',
  filename: '',
  metadata: undefined,
});

/** A result from parts: the one data part's value; several: their values; none: the text. */
function resultOfParts(parts: readonly Part[]): unknown {
  const data = parts.flatMap((p) => (p.content?.$case === 'data' ? [p.content.value] : []));
  if (data.length === 1) return data[0];
  if (data.length > 1) return data;
  const text = parts.flatMap((p) => (p.content?.$case === 'text' ? [p.content.value] : [])).join('\n');
  return { text };
}

const FINAL = new Set([3, 4, 5, 7]); // completed, failed, canceled, rejected
const ASKS = new Set([6, 8]); // input required, auth required

const textOf = (m: Message | undefined) =>
  (m?.parts ?? [])
    .flatMap((p) => (p.content?.$case === 'text' ? [p.content.value] : []))
    .join(' ')
    .slice(0, 500);

function taskOutcome(t: Task): unknown {
  const state = t.status?.state;
  if (state === 3)
    return resultOfParts(
      t.artifacts.flatMap((a) => a.parts).length > 0
        ? t.artifacts.flatMap((a) => a.parts)
        : (t.status?.message?.parts ?? []),
    );
  const why = textOf(t.status?.message);
  const name =
    state === 4
      ? 'failed'
      : state === 5
        ? 'canceled'
        : state === 7
          ? 'rejected'
          : state === 6
            ? 'input required'
            : 'auth required';
  // The agent decided; another attempt would ask it the same thing. Only a rejection or a question
  // back is about the input: a failure, a cancel or wanting credentials is the agent's (isCallerError).
  const agents = state === 4 || state === 5 || state === 8;
  throw new AppError(
    'illegal_state',
    `the A2A agent's task ${t.id} ended ${name}${why ? `: ${why}` : ''}`,
    { a2a_task_id: t.id, a2a_state: name, ...(agents ? { reason: 'agent_ended_task' } : {}) },
    false,
  );
}

/** How long the best-effort `tasks/cancel` to an agent may take. */
const CANCEL_TIMEOUT_MS = 10_000;

/**
 * Run one task on an A2A agent: `message/send` with a data part `{ task_type, input }` (and the
 * task type as `metadata.skill`), then, when the agent answers before the task ended, `tasks/get`
 * until it does. The result is the completed task's artifact data. An abort (our cancel or
 * deadline) sends `tasks/cancel` to the agent, best effort.
 */
export async function runOnA2aAgent(
  guard: EgressGuard,
  agent: { readonly card: AgentCard; readonly token?: string | undefined },
  task: { readonly task_id: string; readonly task_type: string; readonly context: unknown },
  signal: AbortSignal,
  pollMs = 500,
  pollMaxMs = POLL_MAX_MS,
): Promise<unknown> {
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [
        new JsonRpcTransportFactory({
          fetchImpl: egressFetch(guard, agent.token, 24 * 3_600_000),
          legacyCompat: { enabled: true },
        }),
      ],
    }),
  );
  let client: Client;
  try {
    client = await factory.createFromAgentCard(agent.card);
  } catch (err) {
    throw new AppError(
      'validation',
      `the A2A agent's card cannot be used: ${(err as Error).message}`,
      { reason: 'unusable_card' },
      false,
    );
  }
  let a2aTaskId: string | undefined;
  try {
    const message: Message = {
      messageId: randomUUID(),
      contextId: '',
      taskId: '',
      role: 1,
      parts: [dataPart({ task_type: task.task_type, input: task.context ?? {} })],
      metadata: { skill: task.task_type, switchyard_task_id: task.task_id },
      extensions: [],
      referenceTaskIds: [],
    };
    const first = await client.sendMessage(
      {
        tenant: '',
        message,
        configuration: { acceptedOutputModes: [], taskPushNotificationConfig: undefined, returnImmediately: false },
        metadata: undefined,
      },
      { signal },
    );
    if (!('status' in first)) return resultOfParts(first.parts);
    let t = first;
    a2aTaskId = t.id;
    let wait = pollMs;
    while (!FINAL.has(t.status?.state ?? 0) && !ASKS.has(t.status?.state ?? 0)) {
      // The timers' own abortable wait: a listener added on every poll and never removed (the
      // timer firing first) piled up on the attempt's signal, 7,200 an hour at the default pace.
      await sleep(wait, undefined, { signal });
      // A long task is asked less and less often: each answer is parsed in full (up to 1 MiB).
      wait = Math.min(wait * 2, Math.max(pollMs, pollMaxMs));
      t = await client.getTask({ tenant: '', id: t.id, historyLength: 0 }, { signal });
    }
    return taskOutcome(t);
  } catch (err) {
    if (signal.aborted && a2aTaskId)
      // Bounded: the transport's own deadline is the attempt's (up to a day), and a hung agent would hold a socket that long.
      void client
        .cancelTask(
          { tenant: '', id: a2aTaskId, metadata: undefined },
          { signal: AbortSignal.timeout(CANCEL_TIMEOUT_MS) },
        )
        .catch(() => undefined);
    if (isAppError(err)) throw err;
    const code = (err as { code?: unknown }).code;
    // JSON-RPC -32602 (bad params) and -32601 (no such method): asking again will not help.
    if (code === -32602 || code === -32601)
      throw new AppError(
        'validation',
        `the A2A agent refused the task: ${(err as Error).message}`,
        { a2a_error_code: code },
        false,
      );
    throw new AppError('unavailable', `the A2A agent did not answer: ${(err as Error).message}`, {}, true);
  }
}
