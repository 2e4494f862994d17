import { createHash, createHmac } from 'node:crypto';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { ExponentialBackoff, handleWhen, retry } from 'cockatiel';
import {
  AppError,
  canonicalJson,
  createPgClient,
  isAppError,
  newId,
  withTransaction,
  type Logger,
} from '@switchyard/platform';
import type { EgressGuard } from '../fetch/egress-guard.js';
import { keyScopeOf, storedKey } from '../common/idempotency.js';
import { safeHttpRequest, type SafeResponse } from '../fetch/http-client.js';
import { Mailer, type EmailMessage, type MailResult, type MailTransport } from './mail.js';
import {
  QUEUED_BODY_MAX_BYTES,
  queuedHeaders,
  type QueuedDelivery,
  type QueuedPayload,
  type QueueWebhookInput,
} from './queued.js';
import type { Clock } from './clock.js';
import type { WebhookTarget } from './webhooks.js';

export interface DeliveryResult {
  readonly delivery_id: string;
  readonly webhook: string;
  readonly event: string;
  readonly delivered: boolean;
  readonly status: number;
  readonly attempts: number;
  readonly response_body: string;
  /** True when this call sent nothing: the key's answer was already recorded (or being awaited in this process). */
  readonly deduplicated?: boolean;
}

export interface DeliveriesDeps {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** Egress policy for webhook targets (the fetch server's SSRF guard). */
  readonly guard: EgressGuard;
  readonly clock: Clock;
  /** A registered webhook with its secret, by name or id (not_found otherwise). */
  readonly webhookByRef: (ref: string) => Promise<WebhookTarget>;
  /** Webhook delivery: retries after the first attempt on 5xx/network errors, with exponential backoff. */
  readonly delivery?:
    { retries?: number; initialDelayMs?: number; maxDelayMs?: number; timeoutMs?: number } | undefined;
  /**
   * A scheduled webhook that got no answer is sent again later: after `firstRetryMs`, doubling up
   * to `maxRetryMs`, `maxAttempts` sends in all (defaults 30 s, 1 h, 10), then given up (logged).
   */
  readonly scheduledRetry?: { firstRetryMs?: number; maxRetryMs?: number; maxAttempts?: number } | undefined;
  /** Outgoing mail (`send_email`, e-mail schedule targets); without it they answer `unavailable`. */
  readonly mail?: { transport: MailTransport; from: string; retries?: number } | undefined;
}

/** `sha256=<hex>` HMAC of `<timestamp>.<body>`: binding the timestamp stops replays of old bodies. */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** What an idempotency key stands for: sha256 of the webhook id, the event and the canonical JSON of the payload. */
export function deliveryFingerprint(webhookId: string, event: string, payload: Record<string, unknown>): string {
  // The round trip normalises the payload exactly as the request body does (toJSON, undefined members).
  const normalised: unknown = JSON.parse(JSON.stringify(payload));
  return createHash('sha256')
    .update(canonicalJson([webhookId, event, normalised]))
    .digest('hex');
}

/**
 * `application_name` of the liveness connection. A delivery's owner is alive while a backend
 * with its pid AND this name is in pg_stat_activity; the name keeps a recycled pid of an
 * unrelated session from passing for a live sender.
 */
export const deliveryOwnerApplicationName = 'switchyard-automation-delivery-owner';

/** How often a call waiting for another process's send of the same key looks at the row again. */
const ownerPollMs = 100;

/**
 * One dedicated connection (not from the pool) whose backend pid names this process as the
 * owner of the deliveries it is sending. When the process dies its TCP connection closes,
 * Postgres ends the backend and the pid leaves pg_stat_activity: other processes then know
 * the send was cut off mid-request and may take it over.
 */
class DeliveryOwnerConnection {
  private client: pg.Client | undefined;
  private current: Promise<number> | undefined;
  private closed = false;
  /** Every pid this object has owned deliveries under; after a reconnect the older ones are dead. */
  readonly pids: number[] = [];

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly log: Logger,
    private readonly inFlightKeys: () => string[],
    private readonly inFlightMailKeys: () => string[] = () => [],
  ) {}

  /** This process's owner pid, connecting (again) when needed. */
  pid(): Promise<number> {
    if (this.closed) return Promise.reject(new AppError('unavailable', 'the automation service is closed', {}, false));
    this.current ??= this.connect().catch((e: unknown) => {
      this.current = undefined;
      throw e;
    });
    return this.current;
  }

  private async connect(): Promise<number> {
    const client = createPgClient(
      { ...this.config, application_name: deliveryOwnerApplicationName, keepAlive: true },
      { name: 'automation-delivery-owner' },
    );
    client.on('error', (err) => this.dropped(client, err));
    client.on('end', () => this.dropped(client));
    try {
      await client.connect();
      // An idle liveness connection must not keep the process alive on its own (a caller that forgets close()).
      (client.connection.stream as Partial<Socket>).unref?.();
      const pid = Number((await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
      if (this.closed) throw new AppError('unavailable', 'the automation service is closed', {}, false);
      const previous = [...this.pids];
      const keys = this.inFlightKeys();
      if (previous.length > 0 && keys.length > 0) {
        // Sends in flight carry on under the new pid. Another process that saw the old pid gone
        // before this update may already have taken one over: the at-least-once window.
        const r = await client.query(
          `UPDATE automation.deliveries SET owner_pid = $1 WHERE delivery_id = ANY($2) AND status = 'sending' AND owner_pid = ANY($3)`,
          [pid, keys, previous],
        );
        this.log.warn(
          { pid, previousPids: previous, adopted: r.rowCount },
          'delivery liveness connection re-established; in-flight deliveries moved to the new pid',
        );
      }
      const mailKeys = this.inFlightMailKeys();
      if (previous.length > 0 && mailKeys.length > 0) {
        await client.query(
          `UPDATE automation.mail_sends SET owner_pid = $1 WHERE idempotency_key = ANY($2) AND status = 'sending' AND owner_pid = ANY($3)`,
          [pid, mailKeys, previous],
        );
      }
      this.client = client;
      this.pids.push(pid);
      return pid;
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
  }

  private dropped(client: pg.Client, err?: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.current = undefined;
    if (this.closed) return;
    this.log.warn({ err, pid: this.pids.at(-1) }, 'delivery liveness connection dropped; reconnecting');
    // Reconnect at once only when sends are in flight (their rows must name a live pid); otherwise on next use.
    if (this.inFlightKeys().length > 0 || this.inFlightMailKeys().length > 0) {
      void this.pid().catch((e: unknown) =>
        this.log.error({ err: e }, 'delivery liveness connection could not be re-established'),
      );
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    this.current = undefined;
    await client?.end().catch(() => undefined);
  }
}

type DeliveryClaim =
  | { readonly kind: 'send' }
  /** The row vanished between the insert and the read (removed by hand): claim again. */
  | { readonly kind: 'absent' }
  | { readonly kind: 'answered'; readonly result: DeliveryResult }
  | { readonly kind: 'wait'; readonly ownerPid: number };

const keyReused = (key: string): AppError =>
  new AppError(
    'illegal_state',
    `idempotency key "${key}" was already used for a different webhook, event or payload`,
    { delivery_id: key },
    false,
  );

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

function toQueued(r: Record<string, unknown>): QueuedDelivery {
  return {
    delivery_id: r['delivery_id'] as string,
    format: r['channel'] as string,
    url: r['webhook'] as string,
    event: r['event'] as string,
    ordering_key: (r['ordering_key'] as string | null) ?? null,
    status: r['status'] as QueuedDelivery['status'],
    attempts: Number(r['attempts']),
    response_status: (r['response_status'] as number | null) ?? null,
    last_error: (r['last_error'] as string | null) ?? null,
    next_attempt_at: r['status'] === 'pending' ? iso(r['next_attempt_at'] as Date) : null,
    created_at: iso(r['created_at'] as Date)!,
    finished_at: iso((r['finished_at'] as Date | null) ?? null),
  };
}

/**
 * The URL as queue_webhook answers it: where it points, not its path or query, which can be its
 * own credential (an A2A push URL); the caller knows it, and the answer lands in the call's events.
 */
const originOf = (url: URL): string => `${url.origin}/…`;

/**
 * Scheduled and queued sends in flight in one process, to one target (a webhook, a URL, the mail
 * server), and for one owner (the person whose schedule fired or who queued the send). The owner's
 * share: one person with eight receivers that never answer would otherwise hold all 32 sends, and
 * every other person's schedules, e-mails and A2A notifications would wait behind theirs.
 */
const MAX_SENDS_IN_FLIGHT = 32;
const SENDS_PER_TARGET = 4;
const SENDS_PER_OWNER = 8;

/** Runs functions one at a time, in the order they came. */
class Turns {
  private last: Promise<unknown> = Promise.resolve();
  run<T>(f: () => Promise<T>): Promise<T> {
    const mine = this.last.then(f, f);
    this.last = mine.catch(() => undefined);
    return mine;
  }
}

/** A scheduled delivery as it is claimed for a send. */
interface ClaimedDelivery {
  readonly delivery_id: string;
  readonly schedule_id: string | null;
  readonly channel: string;
  readonly webhook: string;
  readonly event: string;
  readonly payload: Record<string, unknown>;
  readonly correlation_id: string;
  readonly attempts: number;
  readonly ordering_key: string | null;
  /** Whose schedule fired, or who queued it (`apikey:<id>`); null when not known. */
  readonly owner: string | null;
}

/**
 * Keyed webhook deliveries (automation.deliveries), e-mail sends, and the owed deliveries of
 * schedule occurrences and queue_webhook (automation.scheduled_deliveries), with their retries.
 * This is operational state, not events: see docs/automation-events.md. The object holds only
 * the sends it has in flight and the liveness connection that marks them as its own (`close()` ends it).
 */
export class Deliveries {
  private readonly clock: Clock;
  private readonly log: Logger;
  /** Keyed deliveries this object is sending now: a second call with the key joins the first. */
  private readonly inFlight = new Map<string, { fingerprint: string; result: Promise<DeliveryResult> }>();
  private readonly owner: DeliveryOwnerConnection;
  private readonly mailer: Mailer | undefined;

  /** Sends in flight: delivery id -> its target and owner (see claimDue). */
  private readonly sendsInFlight = new Map<string, { target: string; owner: string | null }>();
  /** Claims of this process, one at a time. */
  private readonly claimTurns = new Turns();
  /** An unordered kick's round waits for its claim (see kickQueued). */
  private unorderedKickPending = false;

  constructor(private readonly deps: DeliveriesDeps) {
    this.clock = deps.clock;
    this.log = deps.logger;
    this.owner = new DeliveryOwnerConnection(
      deps.pool.options,
      this.log,
      () => [...this.inFlight.keys()],
      () => this.mailer?.inFlightKeys() ?? [],
    );
    this.mailer = deps.mail
      ? new Mailer({
          pool: deps.pool,
          logger: this.log,
          transport: deps.mail.transport,
          from: deps.mail.from,
          owner: this.owner,
          ownerApplicationName: deliveryOwnerApplicationName,
          now: () => this.clock.now(),
          ...(deps.mail.retries !== undefined ? { retries: deps.mail.retries } : {}),
        })
      : undefined;
  }

  /**
   * Send an e-mail over the configured SMTP server. With an idempotency key a mail is sent at
   * most once per key, durably (see `Mailer`); a repeat returns the first result.
   */
  async sendEmail(
    input: EmailMessage & {
      idempotencyKey?: string | undefined;
      correlationId?: string | undefined;
      scope?: string | undefined;
    },
  ): Promise<MailResult> {
    if (!this.mailer)
      throw new AppError(
        'unavailable',
        'no mail server is configured: set SMTP_URL (the launcher runs a development mailbox when it is unset)',
        {},
        false,
      );
    return this.mailer.send(input);
  }

  /** True when a mail transport is configured (e-mail schedule targets need one). */
  get hasMail(): boolean {
    return this.mailer !== undefined;
  }

  /** Open the liveness connection now (otherwise the first keyed delivery opens it). */
  async start(): Promise<void> {
    await this.owner.pid();
  }

  /** Close the liveness connection; the pool belongs to the caller. */
  close(): Promise<void> {
    return this.owner.close();
  }

  private deliveryConfig(): { retries: number; initialDelayMs: number; maxDelayMs: number; timeoutMs: number } {
    return { retries: 3, initialDelayMs: 200, maxDelayMs: 5000, timeoutMs: 10_000, ...this.deps.delivery };
  }

  /**
   * POST `{ id, event, payload, timestamp }` to a registered webhook, signed with its
   * secret. 5xx and network errors are retried with backoff; every attempt carries the
   * same `Idempotency-Key` so the receiver can drop duplicates.
   *
   * With an idempotency key the key is honoured durably (automation.deliveries): once a
   * send of the key got an answer (any status below 500) that answer is returned with
   * `deduplicated: true` and nothing is POSTed again, by this process or any other. Only a
   * send whose sender died mid-request, or that ended without an answer (5xx after the
   * retries, network errors), is sent again under the same key.
   *
   * `scope`: the person the call is for (`_meta.actor`); their key is theirs alone, and the
   * delivery id the receiver gets (`Idempotency-Key`) is the scoped one (see common/idempotency.ts).
   */
  async sendWebhook(input: {
    webhook: string;
    event: string;
    payload: Record<string, unknown>;
    idempotencyKey?: string | undefined;
    correlationId?: string | undefined;
    scope?: string | undefined;
  }): Promise<DeliveryResult> {
    const hook = await this.deps.webhookByRef(input.webhook);
    if (hook.events.length > 0 && !hook.events.includes(input.event) && !hook.events.includes('*')) {
      throw new AppError('illegal_state', `webhook "${hook.name}" is not subscribed to event "${input.event}"`, {
        events: hook.events,
      });
    }
    const given = input.idempotencyKey;
    if (given === undefined) return { ...(await this.post(hook, input, newId())), deduplicated: false };
    const key = await storedKey(this.deps.pool, 'automation.deliveries', 'delivery_id', input.scope, given);
    const fingerprint = deliveryFingerprint(hook.id, input.event, input.payload);
    const running = this.inFlight.get(key);
    if (running) {
      if (running.fingerprint !== fingerprint) throw keyReused(given);
      return { ...(await running.result), deduplicated: true };
    }
    // Registered before the first await, so a concurrent call in this process always finds it.
    const result = this.sendKeyed(hook, input, { key, given, scope: keyScopeOf(input.scope) }, fingerprint);
    this.inFlight.set(key, { fingerprint, result });
    try {
      return await result;
    } finally {
      this.inFlight.delete(key);
    }
  }

  private async sendKeyed(
    hook: { id: string; name: string; url: string; secret: string },
    input: { event: string; payload: Record<string, unknown>; correlationId?: string | undefined },
    k: { key: string; given: string; scope: string },
    fingerprint: string,
  ): Promise<DeliveryResult> {
    const { key } = k;
    const cfg = this.deliveryConfig();
    const log = this.log.child({ correlationId: input.correlationId ?? key, webhook: hook.name, deliveryId: key });
    // Another process's send of this key ends within its own budget: every attempt timed out plus the backoff between them.
    const waitBudgetMs = (cfg.retries + 1) * cfg.timeoutMs + cfg.retries * cfg.maxDelayMs;
    const deadline = Date.now() + waitBudgetMs;
    let waiting = false;
    for (;;) {
      const claim = await this.claimDelivery(hook.id, input.event, k, fingerprint, log);
      if (claim.kind === 'answered') {
        log.info({ status: claim.result.status }, 'webhook delivery already answered; not sent again');
        return { ...claim.result, deduplicated: true };
      }
      if (claim.kind === 'send') break;
      if (claim.kind === 'absent') continue;
      if (Date.now() >= deadline) {
        throw new AppError(
          'timeout',
          `delivery "${key}" is still being sent by another process after ${waitBudgetMs} ms`,
          { delivery_id: key, owner_pid: claim.ownerPid },
          true,
        );
      }
      if (!waiting) log.info({ ownerPid: claim.ownerPid }, 'waiting for the live sender of this delivery');
      waiting = true;
      await sleep(ownerPollMs);
    }

    let result: DeliveryResult;
    try {
      result = await this.post(hook, input, key, () => this.countSend(key));
    } catch (e) {
      await this.finishDelivery(
        key,
        'failed',
        { error: isAppError(e) ? e.toJSON() : { code: 'internal', message: (e as Error).message } },
        log,
      );
      throw e;
    }
    await this.finishDelivery(key, 'answered', result, log);
    return { ...result, deduplicated: false };
  }

  /**
   * Decide what this call does with key K: send it (the row is new, its last sender gave
   * up, or its sender is dead), return the recorded answer, or wait for a live sender.
   */
  private async claimDelivery(
    webhookId: string,
    event: string,
    { key, given, scope }: { key: string; given: string; scope: string },
    fingerprint: string,
    log: Logger,
  ): Promise<DeliveryClaim> {
    const myPid = await this.owner.pid();
    const now = this.clock.now();
    const inserted = await this.deps.pool.query(
      `INSERT INTO automation.deliveries (delivery_id, webhook_id, event, request_fingerprint, status, owner_pid, started_at, key_scope)
       VALUES ($1, $2, $3, $4, 'sending', $5, $6, $7) ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id`,
      [key, webhookId, event, fingerprint, myPid, now, scope],
    );
    if (inserted.rowCount === 1) return { kind: 'send' };

    return withTransaction(this.deps.pool, async (c) => {
      // Liveness is read in the same statement as the locked row; pg_stat_activity is a per-transaction snapshot.
      const r = await c.query(
        `SELECT d.request_fingerprint, d.status, d.owner_pid, d.result,
                EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = d.owner_pid AND a.application_name = $2) AS owner_alive
           FROM automation.deliveries d WHERE d.delivery_id = $1 FOR UPDATE OF d`,
        [key, deliveryOwnerApplicationName],
      );
      const row = r.rows[0] as
        | {
            request_fingerprint: string;
            status: 'sending' | 'answered' | 'failed';
            owner_pid: number | null;
            result: DeliveryResult | null;
            owner_alive: boolean;
          }
        | undefined;
      let claim: DeliveryClaim;
      if (!row) {
        claim = { kind: 'absent' };
      } else if (row.request_fingerprint !== fingerprint) {
        throw keyReused(given);
      } else if (row.status === 'answered') {
        claim = { kind: 'answered', result: row.result! };
      } else if (row.status === 'failed') {
        await c.query(
          `UPDATE automation.deliveries SET status = 'sending', owner_pid = $2, result = NULL, started_at = $3, finished_at = NULL
            WHERE delivery_id = $1 AND status = 'failed'`,
          [key, myPid, now],
        );
        log.info({ previousOwnerPid: row.owner_pid }, 'sending again a delivery whose last sender got no answer');
        claim = { kind: 'send' };
      } else if (row.owner_alive && row.owner_pid !== myPid) {
        claim = { kind: 'wait', ownerPid: row.owner_pid! };
      } else {
        // Dead owner, or this very process left it 'sending' (its bookkeeping failed after the send began).
        const taken = await c.query(
          `UPDATE automation.deliveries SET owner_pid = $2, started_at = $3 WHERE delivery_id = $1 AND status = 'sending' AND owner_pid IS NOT DISTINCT FROM $4`,
          [key, myPid, now, row.owner_pid],
        );
        if (taken.rowCount === 1) {
          log.warn({ previousOwnerPid: row.owner_pid }, 'resending a delivery whose sender died mid-request');
          claim = { kind: 'send' };
        } else {
          claim = { kind: 'wait', ownerPid: row.owner_pid ?? 0 };
        }
      }
      return claim;
    });
  }

  /** Counted before the request leaves, so a sender killed mid-request still shows in `sends`. */
  private async countSend(key: string): Promise<void> {
    await this.deps.pool.query(`UPDATE automation.deliveries SET sends = sends + 1 WHERE delivery_id = $1`, [key]);
  }

  private async finishDelivery(
    key: string,
    status: 'answered' | 'failed',
    result: unknown,
    log: Logger,
  ): Promise<void> {
    try {
      const r =
        status === 'answered'
          ? // The first recorded answer stands; a second one only exists after a takeover of a sender wrongly thought dead.
            await this.deps.pool.query(
              `UPDATE automation.deliveries SET status = 'answered', result = $2, finished_at = $3 WHERE delivery_id = $1 AND status <> 'answered'`,
              [key, JSON.stringify(result), this.clock.now()],
            )
          : // Only while this process still owns the send: a failure must not release a send another process took over.
            await this.deps.pool.query(
              `UPDATE automation.deliveries SET status = 'failed', result = $2, finished_at = $3 WHERE delivery_id = $1 AND status = 'sending' AND owner_pid = ANY($4)`,
              [key, JSON.stringify(result), this.clock.now(), this.owner.pids],
            );
      if (r.rowCount === 0)
        log.warn(
          { status },
          'delivery outcome not recorded: another sender had already finished or taken over this key',
        );
    } catch (e) {
      // The request went out; the caller still gets its outcome. A later call with the key may send it again.
      log.error({ err: e, status }, 'could not record the delivery outcome');
    }
  }

  private async post(
    hook: { name: string; url: string; secret: string },
    input: { event: string; payload: Record<string, unknown>; correlationId?: string | undefined },
    deliveryId: string,
    beforeAttempt?: () => Promise<void>,
  ): Promise<DeliveryResult> {
    const cfg = this.deliveryConfig();
    const log = this.log.child({ correlationId: input.correlationId ?? deliveryId, webhook: hook.name, deliveryId });
    const policy = retry(
      handleWhen((e) => isAppError(e) && e.retryable).orWhenResult((r) => (r as SafeResponse).status >= 500),
      {
        maxAttempts: cfg.retries,
        backoff: new ExponentialBackoff({ initialDelay: cfg.initialDelayMs, maxDelay: cfg.maxDelayMs }),
      },
    );
    let attempts = 0;
    const sub = policy.onRetry((ev) =>
      log.warn(
        {
          attempt: ev.attempt,
          delayMs: ev.delay,
          ...('error' in ev ? { err: ev.error } : { status: (ev.value as SafeResponse).status }),
        },
        'webhook delivery failed, retrying',
      ),
    );
    try {
      const res = await policy.execute(async () => {
        await beforeAttempt?.();
        attempts += 1;
        const timestamp = Math.floor(this.clock.now().getTime() / 1000);
        const body = JSON.stringify({ id: deliveryId, event: input.event, payload: input.payload, timestamp });
        return safeHttpRequest(this.deps.guard, {
          method: 'POST',
          url: hook.url,
          headers: {
            'content-type': 'application/json',
            'x-switchyard-event': input.event,
            'x-switchyard-delivery': deliveryId,
            'idempotency-key': deliveryId,
            'x-switchyard-timestamp': String(timestamp),
            'x-switchyard-signature': signWebhook(hook.secret, timestamp, body),
          },
          body,
          timeoutMs: cfg.timeoutMs,
          maxBytes: 64 * 1024,
          // A webhook answers; it does not send us elsewhere.
          maxRedirects: 0,
        });
      });
      const result: DeliveryResult = {
        delivery_id: deliveryId,
        webhook: hook.name,
        event: input.event,
        delivered: res.status >= 200 && res.status < 300,
        status: res.status,
        attempts,
        response_body: res.body.toString('utf8').slice(0, 2048),
      };
      if (res.status >= 500) {
        throw new AppError(
          'unavailable',
          `webhook "${hook.name}" answered ${res.status} after ${attempts} attempts`,
          { ...result },
          true,
        );
      }
      log.info({ status: res.status, attempts }, 'webhook delivered');
      return result;
    } catch (e) {
      if (isAppError(e) && !('attempts' in e.details)) {
        throw new AppError(
          e.code,
          `${e.message} (webhook "${hook.name}", ${attempts} attempts)`,
          { ...e.details, attempts, delivery_id: deliveryId },
          e.retryable,
        );
      }
      throw e;
    } finally {
      sub.dispose();
    }
  }

  /**
   * Send the scheduled webhooks that are due. Each is claimed with SKIP LOCKED and its next
   * attempt pushed out first (a lease), so two schedulers never send one at once; the send
   * itself goes under the occurrence's idempotency key, which the delivery records honour.
   *
   * Sends go at once, side by side: at most MAX_SENDS_IN_FLIGHT in this process, at most
   * SENDS_PER_TARGET to one receiver (see claimDue). One after another, a receiver
   * that never answers held each send for its retries (about 40 s), and 50 of them held every
   * schedule, e-mail and retry of every user for half an hour; now it holds its own share, and
   * its failed sends wait their backoff behind the sends due now.
   */
  async sendScheduledDeliveries(batch = 50, orderingKey?: string): Promise<{ delivered: number; failed: number }> {
    // Claims take turns in this process: each counts what is in flight after the one before it.
    const claimed = await this.claimTurns.run(() => {
      if (orderingKey === undefined) this.unorderedKickPending = false;
      return this.claimDue(batch, orderingKey);
    });
    const retry = this.scheduledRetry();
    const outcomes = await Promise.all(
      claimed.map((d) => this.sendClaimed(d, retry).finally(() => this.sendsInFlight.delete(d.delivery_id))),
    );
    const delivered = outcomes.filter((o) => o === 'delivered').length;
    return { delivered, failed: outcomes.length - delivered };
  }

  /**
   * Claims due deliveries for this process's free sends, each target's share respected, and marks
   * them in flight. A target is the receiver's host (a webhook's URL, a queued delivery's URL; the
   * mail server for e-mails): eight webhooks or URL variants for one host share its share. Targets
   * at their share are left out before the candidates are limited, so a backlog for one receiver
   * never hides the deliveries of others.
   */
  private async claimDue(batch: number, orderingKey: string | undefined): Promise<ClaimedDelivery[]> {
    const room = Math.min(batch, MAX_SENDS_IN_FLIGHT - this.sendsInFlight.size);
    if (room <= 0) return [];
    const perTarget = new Map<string, number>();
    const perOwner = new Map<string, number>();
    for (const { target: t, owner: o } of this.sendsInFlight.values()) {
      perTarget.set(t, (perTarget.get(t) ?? 0) + 1);
      if (o !== null) perOwner.set(o, (perOwner.get(o) ?? 0) + 1);
    }
    const saturated = [...perTarget].filter(([, n]) => n >= SENDS_PER_TARGET).map(([t]) => t);
    const fullOwners = [...perOwner].filter(([, n]) => n >= SENDS_PER_OWNER).map(([o]) => o);
    const retry = this.scheduledRetry();
    const now = this.clock.now();
    // A claim is a lease on the row for one round of sends (with their own retries): a round may
    // outlast the scheduled retry delay, and must not be taken over by another process mid-round.
    const lease = new Date(now.getTime() + Math.max(retry.firstRetryMs, this.sendBudgetMs() + 5_000));
    const target = `lower(coalesce(substring(CASE WHEN s.channel = 'a2a' THEN s.webhook ELSE w.url END
                     FROM '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/?#]+)'), s.channel || ':' || s.webhook))`;
    // Within an ordering key only the oldest pending row may go; the rest wait until it is delivered or given up.
    // The sends of an owner whose key was revoked are not made (giveUpRevoked ends them).
    const r = await this.deps.pool.query<ClaimedDelivery & { target: string }>(
      `WITH picked AS (
         SELECT r.delivery_id, r.target FROM (
           SELECT c.delivery_id, c.target, c.owner, c.next_attempt_at, c.seq,
                  row_number() OVER (PARTITION BY c.target ORDER BY c.next_attempt_at, c.seq) AS n,
                  row_number() OVER (PARTITION BY c.owner ORDER BY c.next_attempt_at, c.seq) AS m
             FROM (SELECT s.delivery_id, ${target} AS target, s.owner, s.next_attempt_at, s.seq
                     FROM automation.scheduled_deliveries s
                     LEFT JOIN automation.webhooks w ON s.channel = 'webhook' AND (w.name = s.webhook OR w.id::text = s.webhook)
                    WHERE s.status = 'pending' AND s.next_attempt_at <= $1 AND ($4::text IS NULL OR s.ordering_key = $4)
                      AND (s.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM automation.scheduled_deliveries e
                            WHERE e.ordering_key = s.ordering_key AND e.status = 'pending' AND e.seq < s.seq))
                      AND s.delivery_id <> ALL($5::text[]) AND ${target} <> ALL($10::text[])
                      AND (s.owner IS NULL OR (s.owner <> ALL($11::text[])
                           AND NOT EXISTS (SELECT 1 FROM automation.revoked_actors ra WHERE ra.actor = s.owner)))
                    ORDER BY s.next_attempt_at, s.seq LIMIT $7 FOR UPDATE OF s SKIP LOCKED) c) r
          WHERE r.n <= $8 - coalesce((SELECT u.n FROM unnest($6::text[], $9::int[]) AS u(target, n) WHERE u.target = r.target), 0)
            AND (r.owner IS NULL OR
                 r.m <= $12 - coalesce((SELECT u.n FROM unnest($13::text[], $14::int[]) AS u(owner, n) WHERE u.owner = r.owner), 0))
          ORDER BY r.next_attempt_at, r.seq LIMIT $2)
       UPDATE automation.scheduled_deliveries d SET next_attempt_at = $3::timestamptz, attempts = d.attempts + 1
         FROM picked p WHERE d.delivery_id = p.delivery_id
       RETURNING d.delivery_id, d.schedule_id, d.channel, d.webhook, d.event, d.payload, d.correlation_id, d.attempts, d.ordering_key, d.owner, p.target`,
      [
        now,
        room,
        lease,
        orderingKey ?? null,
        [...this.sendsInFlight.keys()],
        [...perTarget.keys()],
        room * 10,
        SENDS_PER_TARGET,
        [...perTarget.values()],
        saturated,
        fullOwners,
        SENDS_PER_OWNER,
        [...perOwner.keys()],
        [...perOwner.values()],
      ],
    );
    for (const d of r.rows) this.sendsInFlight.set(d.delivery_id, { target: d.target, owner: d.owner ?? null });
    return r.rows;
  }

  /**
   * Pending sends whose owner's API key was revoked are given up (`gave_up`, saying why): a
   * revoked key's schedules stop firing, and what they (or its queued notifications) still owed
   * stops with them. One in flight here ends its round. Once per scheduler tick: claims already
   * leave such sends out, so this is their record, not a gate every send round needs.
   */
  async giveUpRevoked(): Promise<void> {
    const r = await this.deps.pool.query<{ delivery_id: string; ordering_key: string | null }>(
      `UPDATE automation.scheduled_deliveries d SET status = 'gave_up', finished_at = $1, last_error = 'not sent: its owner''s API key was revoked',
              payload = CASE WHEN channel = 'a2a' THEN payload - 'token' - 'authentication' ELSE payload END
        WHERE d.status = 'pending' AND d.owner IN (SELECT actor FROM automation.revoked_actors) AND d.delivery_id <> ALL($2::text[])
        RETURNING d.delivery_id, d.ordering_key`,
      [this.clock.now(), [...this.sendsInFlight.keys()]],
    );
    if (r.rows.length === 0) return;
    this.log.info({ deliveries: r.rows.length }, "scheduled deliveries given up: their owner's API key was revoked");
    for (const key of new Set(r.rows.map((x) => x.ordering_key))) if (key) this.kickQueued(key);
  }

  /** One claimed scheduled delivery sent, and its row updated: delivered, or pending again (retried later), or given up. */
  private async sendClaimed(
    d: ClaimedDelivery,
    retry: { firstRetryMs: number; maxRetryMs: number; maxAttempts: number },
  ): Promise<'delivered' | 'failed'> {
    const log = this.log.child({
      correlationId: d.correlation_id,
      scheduleId: d.schedule_id,
      deliveryId: d.delivery_id,
      attempt: d.attempts,
    });
    try {
      const result =
        d.channel === 'email'
          ? await this.sendEmail({
              ...(d.payload as EmailMessage),
              idempotencyKey: d.delivery_id,
              correlationId: d.correlation_id,
            }).then(() => ({ status: 250 }))
          : d.channel === 'a2a'
            ? await this.postQueued(d.webhook, d.payload as unknown as QueuedPayload, d.delivery_id, d.event, log)
            : await this.sendWebhook({
                webhook: d.webhook,
                event: d.event,
                payload: d.payload,
                idempotencyKey: d.delivery_id,
                correlationId: d.correlation_id,
              });
      // A queued delivery's token and credentials are not kept once it is done. An answer is
      // recorded even when another process has claimed the row since (its round is then moot).
      await this.deps.pool.query(
        `UPDATE automation.scheduled_deliveries SET status = 'delivered', finished_at = $2, last_error = NULL, response_status = $3::int,
                payload = CASE WHEN channel = 'a2a' THEN payload - 'token' - 'authentication' ELSE payload END
          WHERE delivery_id = $1 AND status <> 'delivered'`,
        [d.delivery_id, this.clock.now(), result.status],
      );
      if (d.attempts > 1) log.info({ status: result.status }, 'scheduled webhook delivered after a retry');
      if (d.ordering_key) this.kickQueued(d.ordering_key);
      return 'delivered';
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      // A refusal that will not change (no such webhook, not subscribed) is not retried.
      const final =
        d.attempts >= retry.maxAttempts ||
        (isAppError(e) && !e.retryable && e.code !== 'unavailable' && e.code !== 'timeout');
      const delay = Math.min(retry.maxRetryMs, retry.firstRetryMs * 2 ** (d.attempts - 1));
      const status = isAppError(e) && typeof e.details['status'] === 'number' ? e.details['status'] : null;
      // Only while this claim is the row's latest: a round that outlived its lease must not undo
      // the delivery of the process that claimed the row after it, nor move its retry.
      const recorded = await this.deps.pool.query(
        `UPDATE automation.scheduled_deliveries SET status = $2, next_attempt_at = $3, last_error = $4, finished_at = CASE WHEN $2 = 'gave_up' THEN $5::timestamptz END,
                response_status = coalesce($6::int, response_status),
                payload = CASE WHEN $2 = 'gave_up' AND channel = 'a2a' THEN payload - 'token' - 'authentication' ELSE payload END
          WHERE delivery_id = $1 AND status = 'pending' AND attempts = $7`,
        [
          d.delivery_id,
          final ? 'gave_up' : 'pending',
          new Date(this.clock.now().getTime() + delay),
          message.slice(0, 2000),
          this.clock.now(),
          status,
          d.attempts,
        ],
      );
      if (recorded.rowCount === 0) {
        log.warn(
          { err: message },
          'scheduled delivery failure not recorded: the row was claimed again or delivered since',
        );
        return 'failed';
      }
      if (final) log.error({ err: e }, 'scheduled webhook given up');
      else log.warn({ err: message, retryInMs: delay }, 'scheduled webhook not delivered; will retry');
      // The next of its ordering key may go now that this one is given up.
      if (final && d.ordering_key) this.kickQueued(d.ordering_key);
    }
    return 'failed';
  }

  /**
   * Queue a direct delivery (`queue_webhook`): recorded durably under its idempotency key, then
   * sent at once in the background (in order within `ordering_key`) and, while unanswered,
   * again by the scheduler (see `sendScheduledDeliveries`). The URL passes the egress guard
   * now and at every send. A repeat of a key records nothing and returns the first record.
   */
  async queueWebhook(
    input: QueueWebhookInput & { correlationId?: string | undefined; owner?: string | undefined },
  ): Promise<QueuedDelivery> {
    let url: URL;
    try {
      url = new URL(input.url);
    } catch {
      // The URL can be its own credential: errors are recorded in the event log, so they do not repeat it.
      throw new AppError('validation', 'not a valid URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new AppError('validation', `the URL must be http or https, got ${url.protocol}`);
    if (url.username || url.password)
      throw new AppError('validation', 'the URL must not carry credentials (use token or authentication)');
    const bytes = Buffer.byteLength(JSON.stringify(input.body));
    if (bytes > QUEUED_BODY_MAX_BYTES)
      throw new AppError('validation', `the body is ${bytes} bytes; at most ${QUEUED_BODY_MAX_BYTES}`, {
        bytes,
        max: QUEUED_BODY_MAX_BYTES,
      });
    this.deps.guard.checkUrl(url);
    await this.deps.guard.resolveChecked(url.hostname);
    const payload: QueuedPayload = {
      body: input.body,
      content_type: input.content_type,
      ...(input.token ? { token: input.token } : {}),
      ...(input.authentication ? { authentication: input.authentication } : {}),
    };
    const now = this.clock.now();
    // The owner's key is theirs alone (see common/idempotency.ts): another caller's delivery under
    // the same key neither suppresses this one nor is refused by it.
    const given = input.idempotency_key;
    const key = await storedKey(this.deps.pool, 'automation.scheduled_deliveries', 'delivery_id', input.owner, given);
    const inserted = await this.deps.pool.query(
      `INSERT INTO automation.scheduled_deliveries (delivery_id, channel, webhook, event, payload, correlation_id, next_attempt_at, created_at, ordering_key, owner, key_scope)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10) ON CONFLICT (delivery_id) DO NOTHING RETURNING *`,
      [
        key,
        input.format,
        url.toString(),
        input.event,
        JSON.stringify(payload),
        input.correlationId ?? key,
        now,
        input.ordering_key ?? null,
        input.owner ?? null,
        keyScopeOf(input.owner),
      ],
    );
    if (inserted.rowCount === 1) {
      this.log.info(
        {
          correlationId: input.correlationId ?? key,
          deliveryId: key,
          orderingKey: input.ordering_key,
          event: input.event,
        },
        'delivery queued',
      );
      this.kickQueued(input.ordering_key ?? null);
      return { ...toQueued(inserted.rows[0]), url: originOf(url), deduplicated: false };
    }
    const r = await this.deps.pool.query(`SELECT * FROM automation.scheduled_deliveries WHERE delivery_id = $1`, [key]);
    const row = r.rows[0] as Record<string, unknown> | undefined;
    if (!row)
      throw new AppError(
        'conflict',
        `delivery "${given}" vanished while it was queued; queue it again`,
        { delivery_id: given },
        true,
      );
    if (
      row['channel'] !== input.format ||
      row['webhook'] !== url.toString() ||
      (row['ordering_key'] ?? null) !== (input.ordering_key ?? null)
    ) {
      throw new AppError(
        'illegal_state',
        `idempotency key "${given}" was already used for a different delivery`,
        { delivery_id: given },
        false,
      );
    }
    return { ...toQueued(row), url: originOf(url), deduplicated: true };
  }

  /** Queued direct deliveries, newest first (no tokens or credentials). */
  async listQueued(q: {
    ordering_key?: string | undefined;
    status?: string | undefined;
    limit: number;
  }): Promise<QueuedDelivery[]> {
    const r = await this.deps.pool.query(
      `SELECT * FROM automation.scheduled_deliveries WHERE channel NOT IN ('webhook', 'email')
          AND ($1::text IS NULL OR ordering_key = $1) AND ($2::text IS NULL OR status = $2)
        ORDER BY seq DESC LIMIT $3`,
      [q.ordering_key ?? null, q.status ?? null, q.limit],
    );
    return r.rows.map(toQueued);
  }

  /** Keys being sent by this process now, with whether another kick came meanwhile. */
  private readonly kicking = new Map<string, { again: boolean }>();

  /** Send what is due of an ordering key (or any unordered due row) now, in the background. */
  private kickQueued(orderingKey: string | null): void {
    if (orderingKey === null) {
      // Unordered: a round of its own, not one after the rounds before it, which wait for their
      // sends (a receiver that never answers held every later notification behind its round).
      // The claims still take turns, and the sends in flight stay bounded; a round whose claim
      // has not run yet takes what is queued meanwhile, so a burst of calls starts one round.
      if (this.unorderedKickPending) return;
      this.unorderedKickPending = true;
      void this.sendScheduledDeliveries(10).catch((e: unknown) =>
        this.log.warn({ err: e }, 'sending queued deliveries failed; the scheduler will retry'),
      );
      return;
    }
    const k = orderingKey;
    const running = this.kicking.get(k);
    if (running) {
      running.again = true;
      return;
    }
    const state = { again: false };
    this.kicking.set(k, state);
    void (async () => {
      try {
        do {
          state.again = false;
          // Each success kicks the next of the key.
          await this.sendScheduledDeliveries(1, orderingKey);
        } while (state.again);
      } catch (e) {
        this.log.warn({ err: e, orderingKey }, 'sending queued deliveries failed; the scheduler will retry');
      } finally {
        this.kicking.delete(k);
      }
    })();
  }

  /** How scheduled deliveries are retried: 30 s doubling to 1 h, 10 sends (DeliveriesDeps.scheduledRetry overrides). */
  private scheduledRetry(): { firstRetryMs: number; maxRetryMs: number; maxAttempts: number } {
    return { firstRetryMs: 30_000, maxRetryMs: 3_600_000, maxAttempts: 10, ...this.deps.scheduledRetry };
  }

  /** Worst case of one round of sends: every attempt timed out, plus the backoff between them. */
  private sendBudgetMs(): number {
    const cfg = this.deliveryConfig();
    return (cfg.retries + 1) * cfg.timeoutMs + cfg.retries * cfg.maxDelayMs;
  }

  /**
   * One round of sends of a queued delivery: POST the body as it is, retried with backoff on
   * network errors, 5xx, 408 and 429. A 2xx is delivered; another answer is a final refusal.
   */
  private async postQueued(
    url: string,
    p: QueuedPayload,
    deliveryId: string,
    event: string,
    log: Logger,
  ): Promise<{ status: number }> {
    const cfg = this.deliveryConfig();
    const again = (s: number) => s >= 500 || s === 408 || s === 429;
    const policy = retry(
      handleWhen((e) => isAppError(e) && e.retryable).orWhenResult((r) => again((r as SafeResponse).status)),
      {
        maxAttempts: cfg.retries,
        backoff: new ExponentialBackoff({ initialDelay: cfg.initialDelayMs, maxDelay: cfg.maxDelayMs }),
      },
    );
    let sends = 0;
    const sub = policy.onRetry((ev) =>
      log.warn(
        {
          attempt: ev.attempt,
          delayMs: ev.delay,
          ...('error' in ev ? { err: ev.error } : { status: (ev.value as SafeResponse).status }),
        },
        'queued delivery failed, retrying',
      ),
    );
    try {
      const body = JSON.stringify(p.body);
      const res = await policy.execute(() => {
        sends += 1;
        return safeHttpRequest(this.deps.guard, {
          method: 'POST',
          url,
          headers: queuedHeaders(deliveryId, p),
          body,
          timeoutMs: cfg.timeoutMs,
          maxBytes: 64 * 1024,
          maxRedirects: 0,
        });
      });
      if (res.status >= 200 && res.status < 300) {
        log.info({ status: res.status, sends, event }, 'queued delivery delivered');
        return { status: res.status };
      }
      const retryable = again(res.status);
      throw new AppError(
        retryable ? 'unavailable' : 'illegal_state',
        `${originOf(new URL(url))} answered ${res.status} after ${sends} sends`,
        { status: res.status, sends, delivery_id: deliveryId },
        retryable,
      );
    } catch (e) {
      if (isAppError(e) && !('sends' in e.details))
        throw new AppError(
          e.code,
          `${e.message} (${sends} sends)`,
          { ...e.details, sends, delivery_id: deliveryId },
          e.retryable,
        );
      throw e;
    } finally {
      sub.dispose();
    }
  }
}
