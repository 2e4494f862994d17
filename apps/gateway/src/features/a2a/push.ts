import type { StreamResponse, Task } from '@a2a-js/sdk';
import { V1PushNotificationSerializer, type PushNotificationSender, type PushNotificationSerializer, type ServerCallContext } from '@a2a-js/sdk/server';
import { V03PushNotificationSerializer } from '@a2a-js/sdk/compat/v0_3/server';
import { EgressGuard, guardedFetch, type Logger } from '@switchyard/platform';
import type { PgPushNotificationStore } from './store.js';

/** The header A2A names for a config's `token` (the client checks it to trust the notification). */
export const NOTIFICATION_TOKEN_HEADER = 'X-A2A-Notification-Token';

export interface PushDeliveryOptions {
  /** Sends per notification, the first included. Default 6. */
  readonly attempts?: number;
  /** First wait between sends; doubles each time. Default 500 ms. */
  readonly backoffMs?: number;
  /** Per send. Default 5 000 ms. */
  readonly timeoutMs?: number;
}

/**
 * Delivers A2A push notifications: every task, status and artifact event of a task with push
 * configs is POSTed to each config's URL, in the body shape of the protocol version the config
 * was registered over (0.3 or 1.0), with `X-A2A-Notification-Token` when the config has a token
 * and `Authorization: <scheme> <credentials>` when it has authentication. The URL goes through
 * the egress guard (EGRESS_ALLOW_HOSTS / EGRESS_ALLOW_CIDRS for internal receivers), and a send
 * that fails (network error, 5xx, 429) is retried with backoff; the events of one task go out
 * in order. Retries live in this process: a gateway that stops drops the undelivered ones
 * (a client re-reads with tasks/get).
 */
export class PushDelivery implements PushNotificationSender {
  private readonly serializers: Record<string, PushNotificationSerializer> = { '1.0': new V1PushNotificationSerializer(), '0.3': new V03PushNotificationSerializer() };
  private readonly chains = new Map<string, Promise<void>>();
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly store: PgPushNotificationStore,
    private readonly guard: EgressGuard,
    private readonly log: Logger,
    o: PushDeliveryOptions = {},
  ) {
    this.attempts = o.attempts ?? 6;
    this.backoffMs = o.backoffMs ?? 500;
    this.timeoutMs = o.timeoutMs ?? 5_000;
  }

  send(streamResponse: StreamResponse, _context: ServerCallContext, task?: Task): Promise<void> {
    const p = streamResponse.payload;
    const taskId = !p ? '' : p.$case === 'task' ? p.value.id : p.value.taskId;
    if (!taskId) return Promise.resolve();
    const prev = this.chains.get(taskId) ?? Promise.resolve();
    const next = prev.then(() => this.deliverAll(taskId, streamResponse, task)).catch((err: unknown) => this.log.error({ err, a2aTaskId: taskId }, 'push notification delivery failed'));
    this.chains.set(taskId, next);
    void next.finally(() => {
      if (this.chains.get(taskId) === next) this.chains.delete(taskId);
    });
    // Delivery must not hold up the task's own stream.
    return Promise.resolve();
  }

  /** Resolves when every notification queued so far has been delivered or given up (tests, shutdown). */
  async drain(): Promise<void> {
    await Promise.all([...this.chains.values()]);
  }

  private async deliverAll(taskId: string, sr: StreamResponse, task?: Task): Promise<void> {
    const configs = await this.store.loadWithMetadata(taskId);
    await Promise.all(
      configs.map(async ({ config, wireVersion }) => {
        const serializer = this.serializers[wireVersion] ?? this.serializers['1.0']!;
        const { body, contentType } = serializer.serialize(sr, task);
        const headers: Record<string, string> = { 'content-type': contentType };
        if (config.authentication?.scheme) headers.authorization = `${config.authentication.scheme} ${config.authentication.credentials}`;
        if (config.token) headers[NOTIFICATION_TOKEN_HEADER.toLowerCase()] = config.token;
        await this.deliver(config.url, headers, body, taskId);
      }),
    );
  }

  private async deliver(url: string, headers: Record<string, string>, body: string, taskId: string): Promise<void> {
    let wait = this.backoffMs;
    for (let attempt = 1; ; attempt++) {
      let why: string;
      try {
        const res = await guardedFetch(this.guard, url, { method: 'POST', headers, body, timeoutMs: this.timeoutMs, maxBytes: 64 * 1024 });
        await res.body?.cancel().catch(() => undefined);
        if (res.ok) return;
        // A 4xx other than 408/429 will not change by sending again.
        if (res.status < 500 && res.status !== 408 && res.status !== 429) {
          this.log.warn({ a2aTaskId: taskId, url, status: res.status }, 'push notification refused by its receiver');
          return;
        }
        why = `status ${res.status}`;
      } catch (err) {
        if ((err as { code?: string }).code === 'forbidden') {
          this.log.warn({ a2aTaskId: taskId, url, err }, 'push notification URL refused by the egress guard');
          return;
        }
        why = String((err as Error).message ?? err);
      }
      if (attempt >= this.attempts) {
        this.log.warn({ a2aTaskId: taskId, url, attempts: attempt, why }, 'push notification given up');
        return;
      }
      await new Promise((r) => setTimeout(r, wait));
      wait *= 2;
    }
  }
}
