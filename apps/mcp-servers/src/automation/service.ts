import { createHmac } from 'node:crypto';
import type pg from 'pg';
import { z } from 'zod';
import { CronExpressionParser } from 'cron-parser';
import { ExponentialBackoff, handleWhen, retry } from 'cockatiel';
import { AppError, isAppError, newId, type Logger } from '@switchyard/platform';
import type { EgressGuard } from '../fetch/egress-guard.js';
import { safeHttpRequest, type SafeResponse } from '../fetch/http-client.js';
import { migrateAutomation } from './schema.js';

/** Where "now" comes from; injected so tests can move time by hand. */
export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };

export const scheduleTargetSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('webhook'),
    webhook: z.string().min(1).describe('name or id of a registered webhook'),
    event: z.string().min(1).default('schedule.fired'),
    payload: z.record(z.string(), z.unknown()).default({}),
  }),
  z.object({
    kind: z.literal('workflow'),
    template_id: z.string().min(1),
    input: z.record(z.string(), z.unknown()).default({}),
  }),
]);
export type ScheduleTarget = z.infer<typeof scheduleTargetSchema>;

export interface Webhook {
  readonly id: string;
  readonly name: string;
  readonly url: string;
  readonly events: string[];
  readonly created_at: string;
}

export interface Schedule {
  readonly id: string;
  readonly name: string;
  readonly cron: string;
  readonly timezone: string;
  readonly target: ScheduleTarget;
  readonly enabled: boolean;
  readonly next_fire_at: string;
  readonly last_fired_at: string | null;
  readonly fire_count: number;
}

/** A recorded request to start a workflow; the workflow engine consumes `pending` ones. */
export interface TriggerRecord {
  readonly id: string;
  readonly template_id: string;
  readonly input: Record<string, unknown>;
  readonly source: 'tool' | 'schedule';
  readonly schedule_id: string | null;
  readonly fire_at: string | null;
  readonly correlation_id: string;
  readonly status: string;
  readonly created_at: string;
}

export interface DeliveryResult {
  readonly delivery_id: string;
  readonly webhook: string;
  readonly event: string;
  readonly delivered: boolean;
  readonly status: number;
  readonly attempts: number;
  readonly response_body: string;
}

export interface AutomationDeps {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** Egress policy for webhook targets (the fetch server's SSRF guard). */
  readonly guard: EgressGuard;
  readonly clock?: Clock;
  /** Called after a trigger is durably recorded (errors are logged, the record stays). */
  readonly onTrigger?: (trigger: TriggerRecord) => void | Promise<void>;
  /** Webhook delivery: retries after the first attempt on 5xx/network errors, with exponential backoff. */
  readonly delivery?: { retries?: number; initialDelayMs?: number; maxDelayMs?: number; timeoutMs?: number };
}

/** `sha256=<hex>` HMAC of `<timestamp>.<body>`: binding the timestamp stops replays of old bodies. */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

function assertTimezone(tz: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new AppError('validation', `unknown time zone: ${tz}`, { timezone: tz });
  }
}

/** Next fire strictly after `after`, or a validation error naming what is wrong with the expression. */
export function nextFireAfter(cron: string, timezone: string, after: Date): Date {
  assertTimezone(timezone);
  try {
    return CronExpressionParser.parse(cron, { tz: timezone, currentDate: after }).next().toDate();
  } catch (e) {
    throw new AppError('validation', `invalid cron expression "${cron}": ${(e as Error).message}`, { cron });
  }
}

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

function toSchedule(r: Record<string, unknown>): Schedule {
  return {
    id: r['id'] as string,
    name: r['name'] as string,
    cron: r['cron'] as string,
    timezone: r['timezone'] as string,
    target: r['target'] as ScheduleTarget,
    enabled: r['enabled'] as boolean,
    next_fire_at: iso(r['next_fire_at'] as Date)!,
    last_fired_at: iso(r['last_fired_at'] as Date | null),
    fire_count: Number(r['fire_count']),
  };
}

function toTrigger(r: Record<string, unknown>): TriggerRecord {
  return {
    id: r['id'] as string,
    template_id: r['template_id'] as string,
    input: r['input'] as Record<string, unknown>,
    source: r['source'] as 'tool' | 'schedule',
    schedule_id: (r['schedule_id'] as string | null) ?? null,
    fire_at: iso(r['fire_at'] as Date | null),
    correlation_id: r['correlation_id'] as string,
    status: r['status'] as string,
    created_at: iso(r['created_at'] as Date)!,
  };
}

const uuidLike = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Webhooks, durable cron schedules and workflow triggers, all in Postgres schema
 * `automation`. Shared by the MCP server (any number of stateless instances) and the
 * scheduler loop; no state lives in the object, so a restart loses nothing.
 */
export class AutomationService {
  readonly clock: Clock;
  private readonly log: Logger;

  constructor(private readonly deps: AutomationDeps) {
    this.clock = deps.clock ?? systemClock;
    this.log = deps.logger.child({ component: 'automation' });
  }

  migrate(): Promise<void> {
    return migrateAutomation(this.deps.pool);
  }

  private async unique<T>(work: () => Promise<T>, what: string): Promise<T> {
    try {
      return await work();
    } catch (e) {
      if ((e as { code?: string }).code === '23505') throw new AppError('illegal_state', `${what} already exists`, { name: what });
      throw e;
    }
  }

  async registerWebhook(input: { name: string; url: string; secret: string; events: string[] }): Promise<Webhook> {
    let url: URL;
    try {
      url = new URL(input.url);
    } catch {
      throw new AppError('validation', `not a valid URL: ${input.url}`);
    }
    // Early feedback; every delivery is checked again because DNS can change.
    this.deps.guard.checkUrl(url);
    await this.deps.guard.resolveChecked(url.hostname);
    const r = await this.unique(
      () =>
        this.deps.pool.query(
          `INSERT INTO automation.webhooks (id, name, url, secret, events, created_at) VALUES ($1,$2,$3,$4,$5,$6)
           RETURNING id, name, url, events, created_at`,
          [newId(), input.name, url.toString(), input.secret, input.events, this.clock.now()],
        ),
      `webhook "${input.name}"`,
    );
    const row = r.rows[0];
    return { ...row, created_at: iso(row.created_at)! };
  }

  async listWebhooks(): Promise<Webhook[]> {
    // The secret never leaves the server after registration.
    const r = await this.deps.pool.query(`SELECT id, name, url, events, created_at FROM automation.webhooks ORDER BY name`);
    return r.rows.map((w) => ({ ...w, created_at: iso(w.created_at)! }));
  }

  async deleteWebhook(ref: string): Promise<{ deleted: string }> {
    const r = await this.deps.pool.query(
      `DELETE FROM automation.webhooks WHERE name = $1 OR ($2::uuid IS NOT NULL AND id = $2::uuid) RETURNING name`,
      [ref, uuidLike.test(ref) ? ref : null],
    );
    if (r.rowCount === 0) throw new AppError('not_found', `no webhook named or with id "${ref}"`, { webhook: ref });
    return { deleted: r.rows[0].name };
  }

  private async webhookByRef(ref: string): Promise<{ id: string; name: string; url: string; secret: string; events: string[] }> {
    const r = await this.deps.pool.query(
      `SELECT id, name, url, secret, events FROM automation.webhooks WHERE name = $1 OR ($2::uuid IS NOT NULL AND id = $2::uuid)`,
      [ref, uuidLike.test(ref) ? ref : null],
    );
    if (r.rowCount === 0) throw new AppError('not_found', `no webhook named or with id "${ref}"`, { webhook: ref });
    return r.rows[0];
  }

  /**
   * POST `{ id, event, payload, timestamp }` to a registered webhook, signed with its
   * secret. 5xx and network errors are retried with backoff; every attempt carries the
   * same `Idempotency-Key` so the receiver can drop duplicates.
   */
  async sendWebhook(input: { webhook: string; event: string; payload: Record<string, unknown>; idempotencyKey?: string; correlationId?: string }): Promise<DeliveryResult> {
    const hook = await this.webhookByRef(input.webhook);
    if (hook.events.length > 0 && !hook.events.includes(input.event) && !hook.events.includes('*')) {
      throw new AppError('illegal_state', `webhook "${hook.name}" is not subscribed to event "${input.event}"`, { events: hook.events });
    }
    const deliveryId = input.idempotencyKey ?? newId();
    const cfg = { retries: 3, initialDelayMs: 200, maxDelayMs: 5000, timeoutMs: 10_000, ...this.deps.delivery };
    const log = this.log.child({ correlationId: input.correlationId ?? deliveryId, webhook: hook.name, deliveryId });
    const policy = retry(
      handleWhen((e) => isAppError(e) && e.retryable).orWhenResult((r) => (r as SafeResponse).status >= 500),
      { maxAttempts: cfg.retries, backoff: new ExponentialBackoff({ initialDelay: cfg.initialDelayMs, maxDelay: cfg.maxDelayMs }) },
    );
    let attempts = 0;
    const sub = policy.onRetry((ev) => log.warn({ attempt: ev.attempt, delayMs: ev.delay, ...('error' in ev ? { err: ev.error } : { status: (ev.value as SafeResponse).status }) }, 'webhook delivery failed, retrying'));
    try {
      const res = await policy.execute(async () => {
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
        throw new AppError('unavailable', `webhook "${hook.name}" answered ${res.status} after ${attempts} attempts`, { ...result }, true);
      }
      log.info({ status: res.status, attempts }, 'webhook delivered');
      return result;
    } catch (e) {
      if (isAppError(e) && !('attempts' in e.details)) {
        throw new AppError(e.code, `${e.message} (webhook "${hook.name}", ${attempts} attempts)`, { ...e.details, attempts, delivery_id: deliveryId }, e.retryable);
      }
      throw e;
    } finally {
      sub.dispose();
    }
  }

  async createSchedule(input: { name: string; cron: string; timezone: string; target: ScheduleTarget }): Promise<Schedule> {
    const next = nextFireAfter(input.cron, input.timezone, this.clock.now());
    if (input.target.kind === 'webhook') await this.webhookByRef(input.target.webhook);
    const r = await this.unique(
      () =>
        this.deps.pool.query(
          `INSERT INTO automation.schedules (id, name, cron, timezone, target, next_fire_at, created_at)
           VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING *`,
          [newId(), input.name, input.cron, input.timezone, JSON.stringify(input.target), next, this.clock.now()],
        ),
      `schedule "${input.name}"`,
    );
    return toSchedule(r.rows[0]);
  }

  async listSchedules(): Promise<Schedule[]> {
    const r = await this.deps.pool.query(`SELECT * FROM automation.schedules ORDER BY name`);
    return r.rows.map(toSchedule);
  }

  async deleteSchedule(ref: string): Promise<{ deleted: string }> {
    const r = await this.deps.pool.query(
      `DELETE FROM automation.schedules WHERE name = $1 OR ($2::uuid IS NOT NULL AND id = $2::uuid) RETURNING name`,
      [ref, uuidLike.test(ref) ? ref : null],
    );
    if (r.rowCount === 0) throw new AppError('not_found', `no schedule named or with id "${ref}"`, { schedule: ref });
    return { deleted: r.rows[0].name };
  }

  private async notify(trigger: TriggerRecord): Promise<void> {
    if (!this.deps.onTrigger) return;
    try {
      await this.deps.onTrigger(trigger);
    } catch (e) {
      this.log.error({ correlationId: trigger.correlation_id, triggerId: trigger.id, err: e }, 'onTrigger callback failed; the trigger stays recorded');
    }
  }

  /** Record a request to start a workflow (status `pending`) and tell `onTrigger`. */
  async triggerWorkflow(input: { templateId: string; input: Record<string, unknown>; correlationId?: string }): Promise<TriggerRecord> {
    const r = await this.deps.pool.query(
      `INSERT INTO automation.triggers (id, template_id, input, source, correlation_id, created_at)
       VALUES ($1,$2,$3,'tool',$4,$5) RETURNING *`,
      [newId(), input.templateId, JSON.stringify(input.input), input.correlationId ?? newId(), this.clock.now()],
    );
    const trigger = toTrigger(r.rows[0]);
    await this.notify(trigger);
    return trigger;
  }

  async listTriggers(limit = 100): Promise<TriggerRecord[]> {
    const r = await this.deps.pool.query(`SELECT * FROM automation.triggers ORDER BY created_at, id LIMIT $1`, [limit]);
    return r.rows.map(toTrigger);
  }

  /**
   * Fire every schedule that is due at `clock.now()`. Each fire is claimed under
   * `FOR UPDATE SKIP LOCKED` with a re-check of `next_fire_at`, and advanced in the same
   * transaction (with the trigger row for workflow targets), so two schedulers never
   * fire the same occurrence twice. Missed occurrences (scheduler down) collapse into
   * one catch-up fire. Returns the number of fires this call claimed.
   */
  async fireDue(batch = 50): Promise<number> {
    const now = this.clock.now();
    const due = await this.deps.pool.query(
      `SELECT id FROM automation.schedules WHERE enabled AND next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2`,
      [now, batch],
    );
    let fired = 0;
    for (const { id } of due.rows as { id: string }[]) {
      const claimed = await this.claim(id, now);
      if (!claimed) continue;
      fired += 1;
      const { schedule, fireAt, trigger } = claimed;
      const correlationId = trigger?.correlation_id ?? `${schedule.id}:${fireAt.toISOString()}`;
      this.log.info({ correlationId, scheduleId: schedule.id, fireAt: fireAt.toISOString(), target: schedule.target.kind }, 'schedule fired');
      if (trigger) await this.notify(trigger);
      if (schedule.target.kind === 'webhook') {
        // Claimed before delivery: at most once per occurrence (a crash here loses this one delivery).
        await this.sendWebhook({
          webhook: schedule.target.webhook,
          event: schedule.target.event,
          payload: { ...schedule.target.payload, schedule: schedule.name, schedule_id: schedule.id, fire_at: fireAt.toISOString() },
          idempotencyKey: `${schedule.id}:${fireAt.toISOString()}`,
          correlationId,
        }).catch((e: unknown) => this.log.error({ correlationId, scheduleId: schedule.id, err: e }, 'scheduled webhook delivery failed'));
      }
    }
    return fired;
  }

  private async claim(id: string, now: Date): Promise<{ schedule: Schedule; fireAt: Date; trigger?: TriggerRecord } | undefined> {
    const c = await this.deps.pool.connect();
    try {
      await c.query('BEGIN');
      const r = await c.query(
        `SELECT * FROM automation.schedules WHERE id = $1 AND enabled AND next_fire_at <= $2 FOR UPDATE SKIP LOCKED`,
        [id, now],
      );
      if (r.rowCount === 0) {
        await c.query('COMMIT');
        return undefined;
      }
      const schedule = toSchedule(r.rows[0]);
      const fireAt = r.rows[0].next_fire_at as Date;
      const after = fireAt > now ? fireAt : now;
      const next = nextFireAfter(schedule.cron, schedule.timezone, after);
      await c.query(
        `UPDATE automation.schedules SET next_fire_at = $2, last_fired_at = $3, fire_count = fire_count + 1 WHERE id = $1`,
        [id, next, fireAt],
      );
      let trigger: TriggerRecord | undefined;
      if (schedule.target.kind === 'workflow') {
        const t = await c.query(
          `INSERT INTO automation.triggers (id, template_id, input, source, schedule_id, fire_at, correlation_id, created_at)
           VALUES ($1,$2,$3,'schedule',$4,$5,$6,$7) ON CONFLICT (schedule_id, fire_at) DO NOTHING RETURNING *`,
          [newId(), schedule.target.template_id, JSON.stringify(schedule.target.input), id, fireAt, newId(), now],
        );
        trigger = t.rows[0] ? toTrigger(t.rows[0]) : undefined;
      }
      await c.query('COMMIT');
      return { schedule, fireAt, ...(trigger ? { trigger } : {}) };
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }
}

/**
 * Runs `fireDue` every `intervalMs` until stopped. Any number of schedulers may run
 * against one database (see `fireDue`); a failed tick is logged and the loop goes on.
 */
export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly service: AutomationService,
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = (): void => {
      if (this.stopped) return;
      this.running = this.service
        .fireDue()
        .then(() => undefined)
        .catch((e: unknown) => this.logger.error({ err: e }, 'scheduler tick failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(loop, this.intervalMs);
        });
    };
    loop();
  }

  /** Stop the loop and wait for a tick in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
