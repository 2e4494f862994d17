import { createHash } from 'node:crypto';
import type { StreamResponse, Task, TaskPushNotificationConfig } from '@a2a-js/sdk';
import {
  V1PushNotificationSerializer,
  type PushNotificationSender,
  type PushNotificationSerializer,
  type ServerCallContext,
} from '@a2a-js/sdk/server';
import { V03PushNotificationSerializer } from '@a2a-js/sdk/compat/v0_3/server';
import { z } from 'zod';
import { isAppError, newId, urlOrigin, type Logger } from '@switchyard/platform';
import type { PgPushNotificationStore } from './store.js';

/** The header A2A names for a config's `token` (the client checks it to trust the notification). */
export const NOTIFICATION_TOKEN_HEADER = 'X-A2A-Notification-Token';

/** The MCP server (connector name) whose `queue_webhook` tool delivers push notifications. */
export const PUSH_DELIVERY_SERVER = 'automation';
export const PUSH_DELIVERY_TOOL = 'queue_webhook';

/** What the delivery needs of the MCP client: one tool call (the gateway's McpGatewayClient). */
export interface ToolCaller {
  call(
    server: string,
    tool: string,
    args: Record<string, unknown>,
    correlationId: string,
    timeoutMs?: number,
    /** The key the call is for (the config's owner); the arguments its events do not show. */
    opts?: { actor?: string; privateArguments?: readonly string[] },
  ): Promise<{ result: unknown }>;
}

export interface PushDeliveryOptions {
  /** Hand-offs to the automation server per notification, the first included. Default 6. */
  readonly attempts?: number;
  /** First wait between hand-offs; doubles each time. Default 500 ms. */
  readonly backoffMs?: number;
  /** Per hand-off (the tool only records the delivery). Default 10 000 ms. */
  readonly timeoutMs?: number;
  /** Longest wait for hand-offs still under way when the gateway stops. Default 10 000 ms. */
  readonly drainMs?: number;
  /** MCP server name of the automation server. Default `automation`. */
  readonly server?: string;
}

/** The `queue_webhook` arguments one notification becomes (the automation server validates them again). */
export const pushHandoffSchema = z.object({
  format: z.literal('a2a'),
  url: z.string().url(),
  event: z.string().min(1).max(100),
  body: z.record(z.string(), z.unknown()),
  content_type: z.enum(['application/json', 'application/a2a+json']),
  token: z.string().min(1).optional(),
  authentication: z.object({ scheme: z.string().min(1), credentials: z.string() }).optional(),
  idempotency_key: z.string().min(1).max(200),
  ordering_key: z.string().min(1).max(200),
});
export type PushHandoff = z.infer<typeof pushHandoffSchema>;

/** What the tool answers (its `delivery`). */
const queuedReplySchema = z.object({
  delivery: z
    .object({ delivery_id: z.string(), status: z.string(), deduplicated: z.boolean().optional() })
    .passthrough(),
});

/** A config id as a key part: kept when short and plain, else its hash (the whole key must stay within 200 characters). */
const keyPart = (s: string) =>
  /^[A-Za-z0-9_.-]{1,64}$/.test(s) ? s : createHash('sha256').update(s).digest('hex').slice(0, 32);

const STATE_NAMES: Record<number, string> = {
  1: 'submitted',
  2: 'working',
  3: 'completed',
  4: 'failed',
  5: 'canceled',
  6: 'input-required',
  7: 'rejected',
  8: 'auth-required',
};
const stateName = (n: number | undefined) => STATE_NAMES[n ?? 0] ?? String(n ?? 0);

/**
 * What one event is, for its idempotency key: the same event of a task published again (an
 * executor that runs twice, a retried hand-off, a read that brings the task up to date) gets
 * the same key and is delivered once.
 */
export function eventKeyOf(sr: StreamResponse): { event: string; key: string } | undefined {
  const p = sr.payload;
  if (!p) return undefined;
  switch (p.$case) {
    case 'task':
      return { event: 'a2a.task', key: `task:${stateName(p.value.status?.state)}` };
    case 'statusUpdate':
      return { event: 'a2a.status-update', key: `status:${stateName(p.value.status?.state)}` };
    case 'artifactUpdate':
      return { event: 'a2a.artifact-update', key: `artifact:${keyPart(p.value.artifact?.artifactId ?? '')}` };
    case 'message':
      return { event: 'a2a.message', key: `message:${keyPart(p.value.messageId)}` };
    default:
      return undefined;
  }
}

/** The hand-off of one notification to one config: the body and content type as the SDK serializes them for the config's wire version. */
export function handoffFor(
  taskId: string,
  config: TaskPushNotificationConfig,
  sr: StreamResponse,
  task: Task | undefined,
  serializer: PushNotificationSerializer,
): PushHandoff | undefined {
  const ev = eventKeyOf(sr);
  if (!ev) return undefined;
  const { body, contentType } = serializer.serialize(sr, task);
  const configId = keyPart(config.id || config.url);
  const ordering = `a2a:${keyPart(taskId)}:${configId}`;
  const auth = config.authentication;
  return pushHandoffSchema.parse({
    format: 'a2a',
    url: config.url,
    event: ev.event,
    body: JSON.parse(body) as Record<string, unknown>,
    content_type: contentType === 'application/a2a+json' ? 'application/a2a+json' : 'application/json',
    ...(config.token ? { token: config.token } : {}),
    // As the SDK's own sender: Authorization only when both scheme and credentials are set.
    ...(auth?.scheme && auth.credentials
      ? { authentication: { scheme: auth.scheme, credentials: auth.credentials } }
      : {}),
    idempotency_key: `${ordering}:${ev.key}`,
    ordering_key: ordering,
  });
}

/** Notifications of one task that may wait for the hand-off under way (see PushDelivery.send). */
export const MAX_WAITING_PER_TASK = 64;

/**
 * Delivers A2A push notifications through the automation server: every task, status and
 * artifact event of a task with push configs becomes one `queue_webhook` call per config
 * (format `a2a`: the body the SDK serializes for the config's wire version, 0.3 or 1.0, with
 * `X-A2A-Notification-Token` and `Authorization` from the config), keyed by (task, config,
 * event) and ordered by (task, config). Once the call has answered, the delivery is recorded
 * in PostgreSQL and the automation server sends and retries it whatever becomes of this
 * process. The hand-offs of one task go in order; a failed hand-off (the automation server
 * unreachable) is retried here with backoff, and the gateway waits for those under way when
 * it stops (`drain`).
 */
export class PushDelivery implements PushNotificationSender {
  private readonly serializers: Record<string, PushNotificationSerializer> = {
    '1.0': new V1PushNotificationSerializer(),
    '0.3': new V03PushNotificationSerializer(),
  };
  /** Per task: the hand-offs under way, and the notifications waiting for them (see send). */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly waiting = new Map<string, { sr: StreamResponse; task: Task | undefined }[]>();
  /** Notifications dropped because too many of one task waited (a hand-off that does not answer). */
  dropped = 0;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly timeoutMs: number;
  private readonly drainMs: number;
  private readonly server: string;
  private stopping = false;

  constructor(
    private readonly store: PgPushNotificationStore,
    private readonly mcp: ToolCaller,
    private readonly log: Logger,
    o: PushDeliveryOptions = {},
  ) {
    this.attempts = o.attempts ?? 6;
    this.backoffMs = o.backoffMs ?? 500;
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.drainMs = o.drainMs ?? 10_000;
    this.server = o.server ?? PUSH_DELIVERY_SERVER;
  }

  send(streamResponse: StreamResponse, _context: ServerCallContext, task?: Task): Promise<void> {
    const p = streamResponse.payload;
    const taskId = !p ? '' : p.$case === 'task' ? p.value.id : p.value.taskId;
    if (!taskId) return Promise.resolve();
    let waiting = this.waiting.get(taskId);
    if (!waiting) this.waiting.set(taskId, (waiting = []));
    waiting.push({ sr: streamResponse, task });
    // While the automation server does not answer, one hand-off can take a minute and every later
    // event of the task waits behind it, each holding the task and its artifacts: past the bound
    // the oldest waiting one goes (the newest, with the task's latest state, always stays).
    if (waiting.length > MAX_WAITING_PER_TASK) {
      waiting.shift();
      this.dropped++;
      this.log.warn(
        { a2aTaskId: taskId, waiting: MAX_WAITING_PER_TASK, dropped: this.dropped },
        'push notifications of a task pile up behind a hand-off that does not answer; dropping the oldest waiting one',
      );
    }
    if (!this.chains.has(taskId)) this.chains.set(taskId, this.pump(taskId));
    // Delivery must not hold up the task's own stream.
    return Promise.resolve();
  }

  /**
   * Hand off a task's waiting notifications one after the other, in order, until none waits.
   * It lets go of the task in the same synchronous step that finds nothing waiting, so a send
   * right after never finds a pump that is about to end (its notification would wait for good).
   */
  private async pump(taskId: string): Promise<void> {
    for (;;) {
      const waiting = this.waiting.get(taskId);
      const next = waiting?.shift();
      if (!next) {
        this.waiting.delete(taskId);
        this.chains.delete(taskId);
        return;
      }
      await this.handOffAll(taskId, next.sr, next.task).catch((err: unknown) =>
        this.log.error({ err, a2aTaskId: taskId }, 'push notification hand-off failed'),
      );
    }
  }

  /** Resolves when every notification queued so far was handed off or given up, or after `drainMs` (shutdown, tests). */
  async drain(): Promise<void> {
    this.stopping = true;
    let timer: NodeJS.Timeout | undefined;
    const all = Promise.all([...this.chains.values()]).then(() => true);
    const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), this.drainMs)));
    const done = await Promise.race([all, late]);
    clearTimeout(timer);
    if (!done)
      this.log.warn(
        { tasks: this.chains.size, waitedMs: this.drainMs },
        'push notifications not handed off before the gateway stopped',
      );
  }

  private async handOffAll(taskId: string, sr: StreamResponse, task?: Task): Promise<void> {
    const configs = await this.store.loadWithMetadata(taskId);
    for (const { config, wireVersion, owner } of configs) {
      const serializer = this.serializers[wireVersion] ?? this.serializers['1.0']!;
      const h = handoffFor(taskId, config, sr, task, serializer);
      if (h) await this.handOff(h, taskId, owner);
    }
  }

  /** `owner`: the key that set the config; the automation server gives each owner a share of its sends. */
  private async handOff(h: PushHandoff, taskId: string, owner: string): Promise<void> {
    const correlationId = newId();
    const log = this.log.child({ correlationId, a2aTaskId: taskId, deliveryId: h.idempotency_key });
    let wait = this.backoffMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const r = queuedReplySchema.parse(
          (
            await this.mcp.call(this.server, PUSH_DELIVERY_TOOL, h, correlationId, this.timeoutMs, {
              actor: owner,
              // The URL can be its own credential: other keys read it cut to its origin, the event log too.
              privateArguments: ['url'],
            })
          ).result,
        );
        log.debug(
          { status: r.delivery.status, deduplicated: r.delivery.deduplicated },
          'push notification handed to the automation server',
        );
        return;
      } catch (err) {
        // A refusal (egress guard, bad input, key reused) will not change by asking again.
        const final = isAppError(err) && !err.retryable && !['unavailable', 'timeout', 'not_found'].includes(err.code);
        if (final || attempt >= this.attempts || (this.stopping && attempt >= 2)) {
          log.warn(
            // The URL can be its own credential: the log shows its origin, as other keys see it.
            { err, url: urlOrigin(h.url), attempts: attempt },
            final ? 'push notification refused by the automation server' : 'push notification hand-off given up',
          );
          return;
        }
        log.warn(
          { err: (err as Error).message, attempt, retryInMs: wait },
          'push notification hand-off failed; retrying',
        );
      }
      await new Promise((r) => setTimeout(r, wait));
      wait *= 2;
    }
  }
}
