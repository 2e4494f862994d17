import { AsyncLocalStorage } from 'node:async_hooks';
import { ExponentialBackoff, handleWhen, retry, type RetryPolicy } from 'cockatiel';
import type { NatsConnection } from '@switchyard/messaging';
import type { EventStore } from '@switchyard/event-store';
import {
  AppError,
  EgressGuard,
  guardedFetch,
  newId,
  urlOrigin,
  type EgressPolicy,
  type Logger,
} from '@switchyard/platform';
import { shouldNotify, type AlertingEvent } from '../domain/alerts.js';
import { actorOf, alertingEventTypes, streamOf, type MonitorEvent, type MonitorEventRecord } from '../events.js';
import { ALERTS_SUBJECT_PREFIX, alertSubject, type AlertEnvelope, type AlertWebhook } from '@switchyard/contracts';

export { MONITOR_ACTOR, actorOf, streamOf } from '../events.js';

/** Who asked, for events caused by a request to the monitor service (manual resolve, silences, rules). */
interface CommandScope {
  readonly correlationId: string;
  readonly causationId?: string;
}
const scope = new AsyncLocalStorage<CommandScope>();

/**
 * Run `fn` so that the events it causes carry this correlation id. The Monitor stamps its own
 * correlation id on events; a request's id is what lets an operator follow "who resolved this".
 */
export const withCommandScope = <T>(s: CommandScope, fn: () => Promise<T>): Promise<T> => scope.run(s, fn);

/** The request scope of the running code, if a request to the monitor service caused it. */
export const currentCommandScope = (): CommandScope | undefined => scope.getStore();

/**
 * The metadata of an event the Monitor appends: who caused it (a person for a manual resolve or
 * a silence) and the correlation / causation ids of the request behind it, if any.
 */
export function monitorEventMetadata(e: MonitorEvent): { correlationId?: string; causationId?: string; actor: string } {
  const s = scope.getStore();
  return {
    ...(s ? { correlationId: s.correlationId } : {}),
    ...(s?.causationId ? { causationId: s.causationId } : {}),
    actor: actorOf(e),
  };
}

const alertingTypes: ReadonlySet<string> = new Set<string>(alertingEventTypes);
export const isAlertingEvent = (e: MonitorEvent): e is AlertingEvent => alertingTypes.has(e.type);

/** The webhook body of a notifying event, or undefined for events that do not notify. */
export function webhookBody(e: AlertingEvent, eventId: string): AlertWebhook | undefined {
  if (!shouldNotify(e) || e.type === 'SilenceAdded' || e.type === 'SilenceExpired') return undefined;
  const d = e.data;
  const resolved = e.type === 'AlertResolved';
  return {
    version: '1',
    status: resolved ? 'resolved' : 'firing',
    event: e.type,
    eventId,
    at: new Date(e.metadata.at).toISOString(),
    alert: {
      fingerprint: d.fingerprint,
      ruleId: d.ruleId,
      name: d.name,
      severity: d.severity,
      labels: { ...d.labels },
      value: d.value ?? null,
      threshold: d.threshold ?? null,
      how: resolved ? e.data.how : null,
      actor: resolved ? e.data.actor : null,
      reason: resolved ? e.data.reason : null,
    },
  };
}

class WebhookError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export interface PublisherOptions {
  /**
   * Only for events handed over without their records (a caller other than the Monitor, which
   * appends its events itself): they are appended here first.
   */
  readonly eventStore?: EventStore;
  readonly nats: NatsConnection;
  readonly logger: Logger;
  readonly webhooks?: readonly string[];
  readonly webhookMaxAttempts?: number;
  readonly webhookTimeoutMs?: number;
  /** First retry delay of a webhook (default 250 ms, doubling up to 30 s). */
  readonly webhookInitialDelayMs?: number;
  /** Subject prefix of published alert events (default `switchyard.alerts`). */
  readonly alertsPrefix?: string;
  /**
   * Exceptions to the SSRF guard every webhook POST goes through (checked at connect time).
   * Default none: only public addresses. The wiring passes EGRESS_ALLOW_HOSTS / EGRESS_ALLOW_CIDRS.
   */
  readonly egress?: EgressPolicy;
}

/**
 * The Monitor's `publish`, for events already in the event store (the Monitor appends them),
 * in order:
 * 1. publish alerting events on `switchyard.alerts.<type>` (the envelope, with its position),
 * 2. POST notifications (firing / resolved) to each webhook in the background, retried with
 *    exponential backoff; deliveries of one alert to one URL keep their order.
 * Never throws: a failed publish is logged and the rest goes on.
 */
export class MonitorEventPublisher {
  private readonly deliveries = new Map<string, Promise<void>>();
  private readonly webhookPolicy: RetryPolicy;
  private readonly log: Logger;
  private readonly egress: EgressGuard;

  constructor(private readonly opts: PublisherOptions) {
    this.log = opts.logger.child({ component: 'monitor-publisher' });
    this.egress = new EgressGuard(opts.egress ?? {});
    this.webhookPolicy = retry(
      handleWhen((err) => !(err instanceof WebhookError) || err.retryable),
      {
        maxAttempts: Math.max(0, (opts.webhookMaxAttempts ?? 5) - 1),
        backoff: new ExponentialBackoff({ initialDelay: opts.webhookInitialDelayMs ?? 250, maxDelay: 30_000 }),
      },
    );
  }

  readonly publish = async (
    events: readonly MonitorEvent[],
    records?: readonly MonitorEventRecord[],
  ): Promise<void> => {
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      this.one(e, records?.[i] ?? (await this.append(e)));
    }
  };

  // An event that arrives without its record: append it (best effort, as it is published anyway).
  private async append(e: MonitorEvent): Promise<MonitorEventRecord> {
    const id = newId();
    const streamId = streamOf(e);
    const m = monitorEventMetadata(e);
    const metadata = {
      correlationId: m.correlationId ?? e.metadata.correlationId ?? 'monitor',
      ...(m.causationId ? { causationId: m.causationId } : {}),
      actor: m.actor,
      timestamp: new Date(e.metadata.at).toISOString(),
    };
    let revision: number | null = null;
    let position: number | null = null;
    if (this.opts.eventStore) {
      try {
        const r = await this.opts.eventStore.append(streamId, [{ id, type: e.type, data: e.data, metadata }]);
        revision = r.nextExpectedRevision;
        position = r.position;
      } catch (err) {
        this.log.error(
          { err, streamId, type: e.type, correlationId: metadata.correlationId },
          'could not append a monitor event',
        );
      }
    }
    return { id, streamId, metadata, revision, position };
  }

  private one(e: MonitorEvent, r: MonitorEventRecord): void {
    if (!isAlertingEvent(e)) return;
    const { id, streamId, metadata, revision, position } = r;
    const envelope: AlertEnvelope = {
      id,
      streamId,
      type: e.type,
      data: e.data,
      metadata,
      revision,
      position,
      notify: shouldNotify(e),
    };
    try {
      this.opts.nats.publish(
        alertSubject(e.type, this.opts.alertsPrefix ?? ALERTS_SUBJECT_PREFIX),
        JSON.stringify(envelope),
      );
    } catch (err) {
      this.log.error(
        { err, streamId, type: e.type, correlationId: metadata.correlationId },
        'could not publish an alert event',
      );
    }
    const body = webhookBody(e, id);
    if (body) for (const url of this.opts.webhooks ?? []) this.deliver(url, body, metadata.correlationId);
  }

  private deliver(url: string, body: AlertWebhook, correlationId: string): void {
    const key = `${url} ${body.alert.fingerprint}`;
    const prev = this.deliveries.get(key) ?? Promise.resolve();
    const timeoutMs = this.opts.webhookTimeoutMs ?? 5_000;
    // Logged by its origin: a webhook URL can be its own credential.
    const shownUrl = urlOrigin(url);
    const next = prev.then(async () => {
      try {
        await this.webhookPolicy.execute(async ({ attempt }) => {
          let res: Response;
          try {
            res = await guardedFetch(this.egress, url, {
              method: 'POST',
              headers: {
                'content-type': 'application/json',
                'x-correlation-id': correlationId,
                'idempotency-key': body.eventId,
              },
              body: JSON.stringify(body),
              timeoutMs,
              maxBytes: 64 * 1024,
            });
          } catch (err) {
            // A refused address stays refused: no retries.
            if (err instanceof AppError && err.code === 'forbidden') {
              this.log.error(
                { url: shownUrl, event: body.event, correlationId, reason: err.message },
                'alert webhook refused by the egress guard',
              );
              throw new WebhookError(err.message, false);
            }
            this.log.warn({ err, url: shownUrl, attempt, event: body.event, correlationId }, 'alert webhook failed');
            throw err;
          }
          await res.arrayBuffer().catch(() => undefined);
          if (!res.ok) {
            // A 4xx other than 408/429 will not get better by sending it again.
            const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
            this.log.warn(
              { url: shownUrl, status: res.status, attempt, event: body.event, correlationId },
              'alert webhook refused',
            );
            throw new WebhookError(`webhook answered ${res.status}`, retryable);
          }
        });
      } catch (err) {
        this.log.error(
          { err, url: shownUrl, event: body.event, fingerprint: body.alert.fingerprint, correlationId },
          'alert webhook given up',
        );
      }
    });
    this.deliveries.set(key, next);
    void next.then(() => {
      if (this.deliveries.get(key) === next) this.deliveries.delete(key);
    });
  }

  /** Wait for webhook deliveries (at shutdown). */
  async flush(): Promise<void> {
    await Promise.all([...this.deliveries.values()]);
  }
}
