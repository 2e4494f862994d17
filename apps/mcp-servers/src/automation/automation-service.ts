import type pg from 'pg';
import type { AutomationCaps, ListingQuery } from './caps.js';
import type { z } from 'zod';
import type { EventStore } from '@switchyard/event-store';
import { backoffMs, redactSecretValues, type Logger } from '@switchyard/platform';
import type { EgressGuard } from '../fetch/egress-guard.js';
import { systemClock, type Clock } from './clock.js';
import { Deliveries, type DeliveryResult } from './deliveries.js';
import { AutomationEventLog } from './events.js';
import type { EmailMessage, MailResult, MailTransport } from './mail.js';
import { listMailbox, type mailboxQuerySchema, type MailboxMessage } from './mailbox.js';
import type { QueuedDelivery, QueueWebhookInput } from './queued.js';
import { migrateAutomation } from './schema.js';
import {
  Schedules,
  schedulesProjection,
  SCHEDULES_PROJECTION,
  type ClaimedFire,
  type Schedule,
  type ScheduleDeletion,
  type ScheduleTarget,
} from './schedules.js';
import { REVOKED_ACTORS_PROJECTION, revokedActorsProjection } from './revoked-actors.js';
import { ADMIN_ACTORS_PROJECTION, AdminActors, adminActorsProjection } from './admin-actors.js';
import { isNotOwner, type CommandCaller } from './webhooks.decider.js';
import { DEFAULT_RECORD_RETENTION_DAYS, RecordRetention } from './retention.js';
import { Triggers, type TriggerRecord } from './triggers.js';
import { Webhooks, webhooksProjection, WEBHOOKS_PROJECTION, type Webhook } from './webhooks.js';

export { systemClock, type Clock } from './clock.js';
export { signWebhook, deliveryFingerprint, deliveryOwnerApplicationName, type DeliveryResult } from './deliveries.js';
export {
  afterMs,
  nextFireAfter,
  scheduleTargetSchema,
  Scheduler,
  type Schedule,
  type ScheduleTarget,
} from './schedules.js';
export type { TriggerRecord } from './triggers.js';
export type { Webhook } from './webhooks.js';

export interface AutomationDeps {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** Egress policy for webhook targets (the fetch server's SSRF guard). */
  readonly guard: EgressGuard;
  readonly clock?: Clock;
  /**
   * Where webhook and schedule commands append their events; default: the PostgreSQL event
   * store on `pool` (schema `eventstore`). The read models are projected into `pool` either way.
   */
  readonly store?: EventStore;
  /** Called after a trigger is durably recorded (errors are logged, the record stays). */
  readonly onTrigger?: (trigger: TriggerRecord) => void | Promise<void>;
  /** Webhook delivery: retries after the first attempt on 5xx/network errors, with exponential backoff. */
  readonly delivery?: { retries?: number; initialDelayMs?: number; maxDelayMs?: number; timeoutMs?: number };
  /**
   * A scheduled webhook that got no answer is sent again later: after `firstRetryMs`, doubling up
   * to `maxRetryMs`, `maxAttempts` sends in all (defaults 30 s, 1 h, 10), then given up (logged).
   */
  readonly scheduledRetry?: { firstRetryMs?: number; maxRetryMs?: number; maxAttempts?: number };
  /** Outgoing mail (`send_email`, e-mail schedule targets); without it they answer `unavailable`. */
  readonly mail?: { transport: MailTransport; from: string; retries?: number };
  /** Most webhooks and schedules kept (default DEFAULT_AUTOMATION_CAPS). */
  readonly caps?: Partial<AutomationCaps>;
  /**
   * Days finished records are kept (fired one-shots, taken triggers, finished sends and their
   * idempotency records; see retention.ts); default DEFAULT_RECORD_RETENTION_DAYS, 0 keeps them all.
   */
  readonly recordRetentionDays?: number;
}

/**
 * The automation server's jobs put together: webhooks (webhooks.ts), keyed and owed deliveries
 * with their retries (deliveries.ts), schedules and their firing (schedules.ts), workflow
 * triggers (triggers.ts), and the event log their commands append to (events.ts). Shared by the
 * MCP server (any number of stateless instances) and the scheduler loop; all state is in the
 * database and the event store, so a restart loses nothing. `close()` ends what it opened.
 */
export class AutomationService {
  readonly clock: Clock;
  /** The event store and the projection runner of the webhooks and schedules read models. */
  readonly events: AutomationEventLog;
  private readonly log: Logger;
  private readonly webhooks: Webhooks;
  private readonly deliveries: Deliveries;
  private readonly schedules: Schedules;
  private readonly triggers: Triggers;
  private readonly admins: AdminActors;
  /** Purges finished records past their retention, a round every RECORD_PURGE_INTERVAL_MS of the scheduler's ticks. */
  readonly retention: RecordRetention;

  constructor(private readonly deps: AutomationDeps) {
    this.clock = deps.clock ?? systemClock;
    this.log = deps.logger.child({ component: 'automation' });
    const { pool } = deps;
    const clock = this.clock;
    this.events = new AutomationEventLog({
      pool,
      logger: this.log,
      clock,
      store: deps.store,
      projections: [webhooksProjection, schedulesProjection, revokedActorsProjection, adminActorsProjection],
      onStart: async () => {
        await this.webhooks.adoptLegacy();
        await this.schedules.adoptLegacy();
      },
    });
    this.webhooks = new Webhooks({
      pool,
      logger: this.log,
      guard: deps.guard,
      clock,
      events: this.events,
      ...(deps.caps?.maxWebhooks !== undefined ? { maxWebhooks: deps.caps.maxWebhooks } : {}),
    });
    const webhookByRef = (ref: string) => this.webhooks.byRef(ref);
    this.deliveries = new Deliveries({
      pool,
      logger: this.log,
      guard: deps.guard,
      clock,
      webhookByRef,
      delivery: deps.delivery,
      scheduledRetry: deps.scheduledRetry,
      mail: deps.mail,
    });
    this.schedules = new Schedules({
      pool,
      logger: this.log,
      clock,
      events: this.events,
      webhookByRef,
      hasMail: () => this.deliveries.hasMail,
      ...(deps.caps?.maxSchedules !== undefined ? { maxSchedules: deps.caps.maxSchedules } : {}),
      ...(deps.caps?.maxOneShots !== undefined ? { maxOneShots: deps.caps.maxOneShots } : {}),
    });
    this.triggers = new Triggers({ pool, logger: this.log, clock, onTrigger: deps.onTrigger });
    this.retention = new RecordRetention({
      pool,
      logger: this.log,
      retentionDays: deps.recordRetentionDays ?? DEFAULT_RECORD_RETENTION_DAYS,
      expiredOneShots: (cutoff, limit) => this.schedules.expiredOneShots(cutoff, limit),
      expireOneShot: (one) => this.schedules.expire(one),
    });
    this.admins = new AdminActors({
      pool,
      catchUp: () => this.events.runner.waitFor(undefined, ADMIN_ACTORS_PROJECTION, 3_000),
    });
  }

  /**
   * Run a change to something someone owns for `actor` (a webhook, a schedule): the decider lets
   * its owner, an admin or the system through. Whether `actor` is an admin is asked once more,
   * after the roles' projection has caught up, before a refusal stands (a key created a moment ago).
   */
  private async asCaller<T>(actor: string | undefined, run: (caller: CommandCaller) => Promise<T>): Promise<T> {
    const caller = { actor, admin: await this.admins.isAdmin(actor) };
    try {
      return await run(caller);
    } catch (e) {
      if (!isNotOwner(e) || caller.admin || !(await this.admins.isAdmin(actor, true))) throw e;
      return run({ actor, admin: true });
    }
  }

  migrate(): Promise<void> {
    return migrateAutomation(this.deps.pool);
  }

  /** Open the liveness connection and start the projections now (otherwise on first use). */
  async start(): Promise<void> {
    await this.deliveries.start();
    await this.events.start();
    await this.warnOfOwnerlessSchedules();
  }

  /**
   * Active schedules with no owner (made before owners were recorded, or by a direct call to the
   * server) are not paused when their creator's key is revoked: said at start, with the way out.
   */
  private async warnOfOwnerlessSchedules(): Promise<void> {
    const r = await this.deps.pool.query<{ name: string }>(
      `select name from automation.schedules where owner is null and enabled and not finished order by name limit 11`,
    );
    if (r.rows.length === 0) return;
    this.log.warn(
      { schedules: r.rows.slice(0, 10).map((x) => x.name), more: r.rows.length > 10 },
      "active schedules without an owner (made before owners were recorded, or by a direct call): revoking their creator's key does not pause them; pause and resume one to make whoever resumes it its owner",
    );
  }

  /** Delivery rounds the scheduler started and did not wait for. */
  private readonly rounds = new Set<Promise<unknown>>();

  private inBackground(round: Promise<unknown>): void {
    const tracked = round
      .catch((err: unknown) => this.log.error({ err }, 'scheduled deliveries failed'))
      .finally(() => this.rounds.delete(tracked));
    this.rounds.add(tracked);
  }

  /**
   * Close the liveness connection and stop the projections; the pool belongs to the caller.
   * Sends in flight get a few seconds to end; one still running then is sent again later (its
   * lease runs out), under the same idempotency key.
   */
  async close(): Promise<void> {
    await Promise.race([
      Promise.allSettled([...this.rounds, this.retention.settled()]),
      new Promise((r) => setTimeout(r, 5_000).unref()),
    ]);
    await this.deliveries.close();
    await this.events.close();
  }

  /** Empty the read models (webhooks, schedules, revoked owners, admins) and replay them from the event log. */
  async rebuildReadModels(): Promise<void> {
    await this.events.rebuild(WEBHOOKS_PROJECTION);
    await this.events.rebuild(SCHEDULES_PROJECTION);
    await this.events.rebuild(REVOKED_ACTORS_PROJECTION);
    await this.events.rebuild(ADMIN_ACTORS_PROJECTION);
  }

  // Webhooks (commands, events).
  registerWebhook(
    input: { name: string; url: string; secret: string; events: string[] },
    correlationId?: string,
    actor?: string,
  ): Promise<Webhook> {
    return this.webhooks.register(input, correlationId, actor);
  }
  updateWebhook(
    input: { webhook: string; url?: string | undefined; secret?: string | undefined; events?: string[] | undefined },
    correlationId?: string,
    actor?: string,
  ): Promise<Webhook> {
    return this.asCaller(actor, (caller) => this.webhooks.update(input, correlationId, actor, caller));
  }
  deleteWebhook(ref: string, correlationId?: string, actor?: string): Promise<{ deleted: string }> {
    return this.asCaller(actor, (caller) => this.webhooks.delete(ref, correlationId, actor, caller));
  }
  /**
   * The webhooks as `actor` may read them: anyone but an admin reads their URLs with the
   * credential-named query values masked (`?token=[redacted]`): many receivers take their key in
   * the query, and the listing is open to every operator.
   */
  async listWebhooks(
    q: ListingQuery & { webhook?: string | undefined } = {},
    actor?: string,
  ): Promise<{ webhooks: Webhook[]; next_cursor: string | null }> {
    const page = await this.webhooks.list(q);
    if (await this.admins.isAdmin(actor)) return page;
    return { ...page, webhooks: page.webhooks.map((w) => ({ ...w, url: redactSecretValues(w.url) })) };
  }

  // Deliveries (operational state).
  /** `scope`: the person the call is for; their idempotency key is theirs alone (see common/idempotency.ts). */
  sendWebhook(input: {
    webhook: string;
    event: string;
    payload: Record<string, unknown>;
    idempotencyKey?: string | undefined;
    correlationId?: string | undefined;
    scope?: string | undefined;
  }): Promise<DeliveryResult> {
    return this.deliveries.sendWebhook(input);
  }
  queueWebhook(
    input: QueueWebhookInput & { correlationId?: string | undefined; owner?: string | undefined },
  ): Promise<QueuedDelivery> {
    return this.deliveries.queueWebhook(input);
  }
  listQueued(q: {
    ordering_key?: string | undefined;
    status?: string | undefined;
    limit: number;
  }): Promise<QueuedDelivery[]> {
    return this.deliveries.listQueued(q);
  }
  sendScheduledDeliveries(batch = 50, orderingKey?: string): Promise<{ delivered: number; failed: number }> {
    return this.deliveries.sendScheduledDeliveries(batch, orderingKey);
  }
  sendEmail(
    input: EmailMessage & {
      idempotencyKey?: string | undefined;
      correlationId?: string | undefined;
      scope?: string | undefined;
    },
  ): Promise<MailResult> {
    return this.deliveries.sendEmail(input);
  }
  /** The embedded development mailbox's messages, newest first. */
  listMailbox(
    q: z.infer<typeof mailboxQuerySchema>,
  ): Promise<{ messages: MailboxMessage[]; next_cursor: string | null }> {
    return listMailbox(this.deps.pool, q);
  }

  // Schedules (commands, events; firing is operational).
  createSchedule(
    input: {
      name: string;
      cron?: string | undefined;
      after?: string | undefined;
      timezone: string;
      target: ScheduleTarget;
    },
    correlationId?: string,
    actor?: string,
  ): Promise<Schedule> {
    return this.schedules.create(input, correlationId, actor);
  }
  pauseSchedule(ref: string, correlationId?: string, actor?: string): Promise<Schedule> {
    return this.asCaller(actor, (caller) => this.schedules.pause(ref, correlationId, actor, caller));
  }
  resumeSchedule(ref: string, correlationId?: string, actor?: string): Promise<Schedule> {
    return this.asCaller(actor, (caller) => this.schedules.resume(ref, correlationId, actor, caller));
  }
  deleteSchedule(ref: string, correlationId?: string, actor?: string, missingOk = false): Promise<ScheduleDeletion> {
    return this.asCaller(actor, (caller) => this.schedules.delete(ref, correlationId, actor, caller, missingOk));
  }
  listSchedules(
    q: ListingQuery & { owner?: string | undefined } = {},
  ): Promise<{ schedules: Schedule[]; next_cursor: string | null }> {
    return this.schedules.list(q);
  }

  // Triggers (operational hand-over to the workflow engine).
  triggerWorkflow(input: {
    templateId: string;
    input: Record<string, unknown>;
    correlationId?: string;
    onBehalfOf?: string | undefined;
  }): Promise<TriggerRecord> {
    return this.triggers.triggerWorkflow(input);
  }
  getTrigger(id: string): Promise<TriggerRecord> {
    return this.triggers.getTrigger(id);
  }
  listTriggers(limit = 100): Promise<TriggerRecord[]> {
    return this.triggers.listTriggers(limit);
  }

  /**
   * Fire every schedule that is due at `clock.now()`. Each fire is claimed under
   * `FOR UPDATE SKIP LOCKED` with a re-check of its due time, and advanced in the same
   * transaction (with the trigger row for workflow targets), so two schedulers never
   * fire the same occurrence twice. Missed occurrences (scheduler down) collapse into
   * one catch-up fire. Returns the number of fires this call claimed.
   */
  async fireDue(batch = 50, waitForDeliveries = true): Promise<number> {
    const now = this.clock.now();
    const monotonicMs = performance.now();
    let fired = 0;
    await this.schedules.pauseRevokedOwners(batch);
    await this.schedules.pauseMissingTargets(batch);
    await this.deliveries.giveUpRevoked();
    await this.schedules.replanAfterClockStepBack(now, monotonicMs);
    for (const id of await this.schedules.due(now, batch, this.failingSchedules(now.getTime()))) {
      let claimed: ClaimedFire | undefined;
      try {
        claimed = await this.schedules.claim(id, now);
      } catch (err) {
        // One schedule that cannot be claimed must not hold every other one behind it (it stays
        // first in the due order): it waits, longer each time, while the others fire.
        this.scheduleFailed(id, now.getTime(), err);
        continue;
      }
      this.failing.delete(id);
      if (!claimed) continue;
      fired += 1;
      const { schedule, fireAt, trigger } = claimed;
      if (claimed.stuck)
        await this.schedules
          .pauseStuck({ id: schedule.id, name: schedule.name, scope: claimed.scope })
          .catch((err: unknown) =>
            this.log.error({ err, scheduleId: schedule.id }, 'could not pause a schedule with no next fire'),
          );
      const correlationId = trigger?.correlation_id ?? `${schedule.id}:${fireAt.toISOString()}`;
      this.log.info(
        { correlationId, scheduleId: schedule.id, fireAt: fireAt.toISOString(), target: schedule.target.kind },
        'schedule fired',
      );
      if (trigger) await this.triggers.notify(trigger);
    }
    // Webhooks owed by occurrences (claimed just now, or earlier and not answered yet). The
    // scheduler does not wait for them: a receiver that takes long must not hold the next fires.
    const round = this.deliveries.sendScheduledDeliveries(batch);
    if (waitForDeliveries) await round;
    else this.inBackground(round);
    return fired;
  }

  /** Schedules whose claim failed, and when the scheduler tries them again (doubling from 1 s to 5 min). */
  private readonly failing = new Map<string, { readonly retryAt: number; readonly failures: number }>();

  private failingSchedules(now: number): string[] {
    return [...this.failing].filter(([, f]) => f.retryAt > now).map(([id]) => id);
  }

  private scheduleFailed(id: string, now: number, err: unknown): void {
    const failures = (this.failing.get(id)?.failures ?? 0) + 1;
    const delayMs = backoffMs(failures - 1, { initialMs: 1_000, maxMs: 300_000 });
    this.failing.set(id, { retryAt: now + delayMs, failures });
    this.log.error({ err, scheduleId: id, retryInMs: delayMs }, 'claiming a due schedule failed; the others go on');
  }

  /** Start a purge round of finished records in the background when one is due (the scheduler's ticks). */
  purgeRecordsWhenDue(): void {
    this.retention.maybePurge(this.clock.now());
  }
}
