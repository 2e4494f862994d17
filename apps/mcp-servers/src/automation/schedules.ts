/**
 * Schedules: creating, pausing, resuming and deleting one are commands decided by
 * `scheduleDecider` and appended to the event store; `automation.schedules` is their read model
 * (`schedulesProjection`). Firing is the scheduler's operational state (automation.schedule_runs),
 * claimed row by row so that any number of schedulers fire each occurrence once.
 */
import type pg from 'pg';
import { z } from 'zod';
import {
  AppError,
  byteBoundedSql,
  canonicalJson,
  isAppError,
  newId,
  WallClockWatch,
  withTransaction,
  type Logger,
} from '@switchyard/platform';
import type { RecordedEvent } from '@switchyard/event-store';
import type { Projection } from '@switchyard/read-models';
import {
  DEFAULT_AUTOMATION_CAPS,
  DEFAULT_LISTING_LIMIT,
  LISTING_PAGE_BYTES,
  MAX_SCHEDULE_TARGET_BYTES,
  nextCursor,
  underCap,
  type ListingQuery,
} from './caps.js';
import type { Clock } from './clock.js';
import { AUTOMATION_ACTOR, type AutomationEventLog } from './events.js';
import { assertBody, emailMessageShape } from './mail.js';
import {
  nextFireAfter,
  planSchedule,
  SCHEDULE_EVENT_TYPES,
  SCHEDULE_STREAM_PREFIX,
  PAUSED_NO_NEXT_FIRE,
  PAUSED_OWNER_REVOKED,
  PAUSED_TARGET_MISSING,
  type SystemPauseReason,
  scheduleCreatedSchema,
  scheduleDecider,
  scheduleDeletedSchema,
  SCHEDULE_EXPIRED,
  schedulePausedSchema,
  scheduleResumedSchema,
  scheduleStream,
  type ScheduleCommand,
  type ScheduleEvent,
  type ScheduleState,
} from './schedules.decider.js';
import { insertScheduleTrigger, type TriggerRecord } from './triggers.js';
import { iso, uuidLike, type WebhookTarget } from './webhooks.js';
import type { CommandCaller } from './webhooks.decider.js';

export { afterMs, nextFireAfter } from './schedules.decider.js';

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
  z
    .object({ kind: z.literal('email'), ...emailMessageShape })
    .describe('send this e-mail (send_email) when the schedule fires'),
]);
export type ScheduleTarget = z.infer<typeof scheduleTargetSchema>;

export interface Schedule {
  readonly id: string;
  readonly name: string;
  /** Null for a one-shot schedule (`run_once`). */
  readonly cron: string | null;
  readonly run_once: boolean;
  readonly timezone: string;
  readonly target: ScheduleTarget;
  /** False while paused, and for a one-shot schedule once it has fired. */
  readonly enabled: boolean;
  readonly next_fire_at: string;
  readonly last_fired_at: string | null;
  readonly fire_count: number;
  /** Who the schedule answers to (`apikey:<id>`, `token:<name>`): who created it, then who last resumed it; null when not known. */
  readonly owner: string | null;
  /**
   * Why the system paused it, null when it did not: `owner_revoked` (its owner's key was revoked),
   * `no_next_fire` (its next fire could not be computed), `target_missing` (its workflow template
   * was deleted: a fire failed for that).
   */
  readonly paused_reason: string | null;
  /**
   * A workflow target's last fire as the engine took it (listings only): `pending`, `started` with
   * its execution, or `failed` with why.
   */
  readonly last_start?: {
    readonly status: string;
    readonly execution_id: string | null;
    readonly error: string | null;
  };
}

export const SCHEDULES_PROJECTION = 'automation-schedules';

/**
 * A schedule as the scheduler sees it: the definition (read model) joined with what the
 * scheduler did (schedule_runs). The runs row's next fire holds while it was planned under the
 * definition's latest plan; a newer plan (a resume) takes over. A fired one-shot stays done.
 */
const SCHEDULE_SELECT = `
  SELECT s.id, s.name, s.scope, s.cron, s.run_once, s.timezone, s.target, s.enabled AS active, s.plan_revision, s.owner, s.paused_reason,
         EXISTS (SELECT 1 FROM automation.revoked_actors ra WHERE ra.actor = s.owner) AS owner_revoked,
         CASE WHEN r.schedule_id IS NULL OR r.plan_revision < s.plan_revision THEN s.next_fire_at ELSE r.next_fire_at END AS next_fire_at,
         (r.done IS TRUE AND (s.run_once OR r.plan_revision >= s.plan_revision)) AS done,
         r.last_fired_at, coalesce(r.fire_count, 0) AS fire_count
    FROM automation.schedules s LEFT JOIN automation.schedule_runs r ON r.schedule_id = s.id`;

/**
 * The ids of the schedules due at $1, at most $2, earliest first, but those in $3 (waiting after a
 * failed claim): of the schedules not finished only (schedules_live), so what fired once and stays
 * listed costs a tick nothing.
 */
export const DUE_SCHEDULES_SQL = `
  SELECT id FROM (${SCHEDULE_SELECT} WHERE s.enabled AND NOT s.finished AND s.id <> ALL($3::uuid[])) x
   WHERE x.active AND NOT x.done AND NOT x.owner_revoked AND x.next_fire_at <= $1
   ORDER BY x.next_fire_at LIMIT $2`;

/**
 * What the clock-step check reads of a live schedule: SCHEDULE_SELECT's row with the definition's
 * creation time and first planned fire (a one-shot's delay is their difference).
 */
const REPLAN_SELECT = `
  SELECT x.*, d.created_at, d.next_fire_at AS planned_fire_at
    FROM (${SCHEDULE_SELECT} WHERE s.enabled AND NOT s.finished) x JOIN automation.schedules d ON d.id = x.id`;

/**
 * A step back of the wall clock smaller than this is not looked for: a schedule planned by it
 * fires at most this late.
 */
export const CLOCK_STEP_BACK_MS = 1_000;

/**
 * Where a schedule planned by a clock that was ahead of `now` should fire instead, or undefined
 * when its plan holds. A cron schedule: its next occurrence after `now`, when that comes before
 * its planned fire (the plan was made after an occurrence and from a time at or after it, so an
 * occurrence between now and the plan means the clock read later when it planned). A one-shot
 * (`after`) created at a time still to come: its delay from now, when that comes before its
 * planned fire. A cron whose next occurrence cannot be computed is left to the claim.
 */
export function replannedFire(
  s: {
    readonly cron: string | null;
    readonly run_once: boolean;
    readonly timezone: string;
    readonly next_fire_at: Date;
    readonly planned_fire_at: Date;
    readonly created_at: Date;
  },
  now: Date,
): Date | undefined {
  let to: Date;
  if (s.run_once || s.cron === null) {
    if (s.created_at <= now) return undefined;
    to = new Date(now.getTime() + Math.max(0, s.planned_fire_at.getTime() - s.created_at.getTime()));
  } else {
    try {
      to = nextFireAfter(s.cron, s.timezone, now);
    } catch {
      return undefined;
    }
  }
  return to < s.next_fire_at ? to : undefined;
}

function toSchedule(r: Record<string, unknown>): Schedule {
  return {
    id: r['id'] as string,
    name: r['name'] as string,
    cron: (r['cron'] as string | null) ?? null,
    run_once: r['run_once'] === true,
    timezone: r['timezone'] as string,
    target: r['target'] as ScheduleTarget,
    enabled: r['active'] === true && r['done'] !== true,
    next_fire_at: iso(r['next_fire_at'] as Date)!,
    last_fired_at: iso((r['last_fired_at'] as Date | null) ?? null),
    fire_count: Number(r['fire_count']),
    owner: (r['owner'] as string | null) ?? null,
    paused_reason: (r['paused_reason'] as string | null) ?? null,
    ...(typeof r['last_start_status'] === 'string'
      ? {
          last_start: {
            status: r['last_start_status'],
            execution_id: (r['last_start_execution'] as string | null) ?? null,
            error: (r['last_start_error'] as string | null) ?? null,
          },
        }
      : {}),
  };
}

/** automation.schedules from the schedule events. Deleting a schedule also drops its runs row. */
export const schedulesProjection: Projection = {
  name: SCHEDULES_PROJECTION,
  handles: SCHEDULE_EVENT_TYPES,
  streamPrefixes: [SCHEDULE_STREAM_PREFIX],
  // The table is created by migrateAutomation (the owner's migration phase, or the server's start).
  async setup() {},
  async apply(c: pg.PoolClient, e: RecordedEvent): Promise<void> {
    switch (e.type as ScheduleEvent['type']) {
      case 'ScheduleCreated': {
        const d = scheduleCreatedSchema.parse(e.data);
        await c.query(
          `INSERT INTO automation.schedules (id, name, cron, run_once, timezone, target, enabled, next_fire_at, plan_revision, created_at, position, owner, paused_reason, scope, finished)
           VALUES ($1,$2,$3,$4,$5,$6,true,$7,$8,$9,$10,$11,NULL,$12,
                   -- A replay of a one-shot that already fired (the runs outlive a rebuild).
                   $4::boolean AND EXISTS (SELECT 1 FROM automation.schedule_runs r WHERE r.schedule_id = $1 AND r.done))
           ON CONFLICT (id) DO UPDATE SET name = excluded.name, scope = excluded.scope, cron = excluded.cron, run_once = excluded.run_once, timezone = excluded.timezone,
                  target = excluded.target, enabled = true, next_fire_at = excluded.next_fire_at, plan_revision = excluded.plan_revision,
                  created_at = excluded.created_at, position = excluded.position, owner = excluded.owner, paused_reason = NULL,
                  finished = excluded.finished,
                  -- An adopted row's run columns from before the events (now in schedule_runs) are emptied, as a replay has them.
                  last_fired_at = NULL, fire_count = 0`,
          [
            d.id,
            d.name,
            d.cron,
            d.run_once,
            d.timezone,
            JSON.stringify(d.target),
            d.next_fire_at,
            e.revision,
            d.created_at,
            e.position,
            d.owner ?? null,
            d.scope ?? null,
          ],
        );
        return;
      }
      case 'SchedulePaused': {
        const d = schedulePausedSchema.parse(e.data);
        await c.query(
          `UPDATE automation.schedules SET enabled = false, paused_reason = $3, position = $2 WHERE id = $1`,
          [d.id, e.position, d.reason ?? null],
        );
        return;
      }
      case 'ScheduleResumed': {
        const d = scheduleResumedSchema.parse(e.data);
        await c.query(
          `UPDATE automation.schedules SET enabled = true, next_fire_at = $2, plan_revision = $3, position = $4,
                  owner = coalesce($5, owner), paused_reason = NULL WHERE id = $1`,
          [d.id, d.next_fire_at, e.revision, e.position, d.owner ?? null],
        );
        return;
      }
      case 'ScheduleDeleted': {
        const d = scheduleDeletedSchema.parse(e.data);
        await c.query(`DELETE FROM automation.schedules WHERE id = $1`, [d.id]);
        await c.query(`DELETE FROM automation.schedule_runs WHERE schedule_id = $1`, [d.id]);
        return;
      }
    }
  },
  async reset(c: pg.PoolClient): Promise<void> {
    // The runs stay: they are the scheduler's, keyed by schedule id, and still hold after the replay.
    await c.query(`DELETE FROM automation.schedules`);
  },
};

export interface SchedulesDeps {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly events: AutomationEventLog;
  readonly webhookByRef: (ref: string) => Promise<WebhookTarget>;
  readonly hasMail: () => boolean;
  /** Most repeating schedules kept (AUTOMATION_MAX_SCHEDULES). */
  readonly maxSchedules?: number;
  /** Most one-shot schedules not fired yet (AUTOMATION_MAX_ONE_SHOTS). */
  readonly maxOneShots?: number;
}

export interface ClaimedFire {
  readonly schedule: Schedule;
  readonly fireAt: Date;
  readonly trigger?: TriggerRecord;
  /** Its next fire could not be computed: it fired, and is to be paused (Schedules.pauseStuck). */
  readonly stuck?: boolean;
  /** The namespace of its name (its stream). */
  readonly scope: string | null;
}

/** What delete_schedule answers: the name deleted, or (asked with missing_ok) that there was none. */
export type ScheduleDeletion =
  { readonly deleted: string } | { readonly deleted: false; readonly missing: true; readonly schedule: string };

/** Which schedule a command is for: its stream (name and scope), and the id the caller meant. */
interface Target {
  readonly name: string;
  readonly id?: string;
  readonly scope?: string | undefined;
}

/** A schedule row as resolve() weighs it. */
interface Candidate {
  readonly id: string;
  readonly name: string;
  readonly scope: string | null;
  readonly owner: string | null;
}

export class Schedules {
  constructor(private readonly deps: SchedulesDeps) {}

  /** The wall clock against the monotonic one from tick to tick (no reading yet: look at the first). */
  private readonly clockWatch = new WallClockWatch();
  /** A look for plans made by a clock that was ahead is owed (the first tick, a step back seen, a look left unfinished). */
  private replanOwed = true;

  private command(command: ScheduleCommand, scope: string | undefined) {
    return this.deps.events.run(
      scheduleStream(command.data.name, scope),
      scheduleDecider,
      command,
      SCHEDULES_PROJECTION,
    );
  }

  /**
   * CreateSchedule: a cron schedule, or with `after` (e.g. `30s`, `7d`) a one-shot one: it fires
   * once, that long from now, and is then disabled. Its name is taken in its creator's scope (the
   * caller, `actor`): another person's schedule of that name neither refuses nor stands for it.
   */
  async create(
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
    const metadata = this.deps.events.metadata(correlationId, actor);
    // The decider checks these too; first here so a bad expression is reported before a missing webhook.
    planSchedule(input, new Date(metadata.timestamp));
    // Each fire copies it (a delivery's payload, a workflow's input), and every listing carries it.
    const targetBytes = Buffer.byteLength(JSON.stringify(input.target));
    if (targetBytes > MAX_SCHEDULE_TARGET_BYTES)
      throw new AppError(
        'validation',
        `the target is ${targetBytes} bytes of JSON; a schedule's target may take at most ${MAX_SCHEDULE_TARGET_BYTES}`,
        { bytes: targetBytes, max: MAX_SCHEDULE_TARGET_BYTES },
      );
    if (input.target.kind === 'webhook') await this.deps.webhookByRef(input.target.webhook);
    if (input.target.kind === 'email') {
      assertBody(input.target);
      if (!this.deps.hasMail())
        throw new AppError('unavailable', 'an e-mail schedule needs a mail server: set SMTP_URL', {}, false);
    }
    const cap =
      input.after !== undefined
        ? {
            kind: 'one_shots' as const,
            max: this.deps.maxOneShots ?? DEFAULT_AUTOMATION_CAPS.maxOneShots,
            setting: 'AUTOMATION_MAX_ONE_SHOTS',
          }
        : {
            kind: 'schedules' as const,
            max: this.deps.maxSchedules ?? DEFAULT_AUTOMATION_CAPS.maxSchedules,
            setting: 'AUTOMATION_MAX_SCHEDULES',
          };
    let r: Awaited<ReturnType<typeof this.command>>;
    try {
      r = await underCap(this.deps.pool, cap, () =>
        this.command(
          {
            type: 'CreateSchedule',
            data: {
              id: newId(),
              name: input.name,
              cron: input.cron,
              after: input.after,
              timezone: input.timezone,
              target: input.target,
              owner: actor,
              scope: actor,
            },
            metadata,
          },
          actor,
        ),
      );
    } catch (err) {
      // The same schedule again (a caller's retry whose first answer was lost): answered as it is.
      // Another schedule under the name is still refused.
      if (isAppError(err) && err.code === 'illegal_state') {
        const existing = await this.scoped(input.name, actor);
        const at = new Date(metadata.timestamp);
        if (existing && sameSchedule(existing, input, at, planSchedule(input, at).next)) return existing;
      }
      throw err;
    }
    const d = (r.events[0] as Extract<ScheduleEvent, { type: 'ScheduleCreated' }>).data;
    return {
      id: d.id,
      name: d.name,
      cron: d.cron,
      run_once: d.run_once,
      timezone: d.timezone,
      target: d.target as ScheduleTarget,
      enabled: true,
      next_fire_at: d.next_fire_at,
      last_fired_at: null,
      fire_count: 0,
      owner: d.owner ?? null,
      paused_reason: null,
    };
  }

  /**
   * PauseSchedule: no fires until resumed (pausing a paused schedule changes nothing). Its owner,
   * an admin or the system (`caller`) only.
   */
  async pause(ref: string, correlationId?: string, actor?: string, caller?: CommandCaller): Promise<Schedule> {
    const { scope, ...target } = await this.resolve(ref, actor);
    const r = await this.command(
      {
        type: 'PauseSchedule',
        data: { ...target, caller },
        metadata: this.deps.events.metadata(correlationId, actor),
      },
      scope,
    );
    return this.byId(r.state, ref);
  }

  /**
   * ResumeSchedule: a cron schedule goes on from its next occurrence after now. The caller, when
   * known, becomes its owner (so a schedule paused because its owner's key was revoked fires
   * again only once someone with a live key has resumed it and answers for it).
   */
  async resume(ref: string, correlationId?: string, actor?: string, caller?: CommandCaller): Promise<Schedule> {
    const { scope, ...target } = await this.resolve(ref, actor);
    const ownerRevoked = target.id !== undefined && (await this.row(target.id))?.['owner_revoked'] === true;
    // Resumed by nobody in particular, a revoked owner's schedule would fire again until the next
    // tick paused it once more: it needs someone who answers for it.
    if (actor === undefined && ownerRevoked)
      throw new AppError(
        'forbidden',
        `schedule "${ref}" answers to a revoked key: resume it as its new owner (the call's _meta.actor)`,
        { schedule: ref, reason: 'owner_revoked' },
      );
    const r = await this.command(
      {
        type: 'ResumeSchedule',
        data: { ...target, owner: actor, caller, ownerRevoked },
        metadata: this.deps.events.metadata(correlationId, actor),
      },
      scope,
    );
    return this.byId(r.state, ref);
  }

  /**
   * DeleteSchedule: its owner, an admin or the system (`caller`) only. With `missingOk`, a
   * schedule that is not there answers `{ deleted: false, missing: true }` instead of not_found
   * (one that is there but another's is refused all the same).
   */
  async delete(
    ref: string,
    correlationId?: string,
    actor?: string,
    caller?: CommandCaller,
    missingOk = false,
  ): Promise<ScheduleDeletion> {
    const missing: ScheduleDeletion = { deleted: false, missing: true, schedule: ref };
    let resolved: Target;
    try {
      resolved = await this.resolve(ref, actor);
    } catch (e) {
      if (missingOk && isAppError(e) && e.code === 'not_found') return missing;
      throw e;
    }
    const { scope, ...target } = resolved;
    const r = await this.command(
      {
        type: 'DeleteSchedule',
        data: { ...target, caller, ...(missingOk ? { missingOk } : {}) },
        metadata: this.deps.events.metadata(correlationId, actor),
      },
      scope,
    );
    const deleted = r.events[0] as Extract<ScheduleEvent, { type: 'ScheduleDeleted' }> | undefined;
    return deleted ? { deleted: deleted.data.name } : missing;
  }

  /**
   * A page of schedules by name (then id: several persons may each have one of a name), after
   * `cursor` (`<name>/<id>`; a plain name, as cursors were, goes on after every schedule of that
   * name), only `owner`'s when given. The page ends at `limit` rows or once their sizes pass
   * LISTING_PAGE_BYTES (`next_cursor` then names where to go on).
   */
  async list(q: ListingQuery & { owner?: string | undefined } = {}): Promise<{
    schedules: Schedule[];
    next_cursor: string | null;
  }> {
    const limit = q.limit ?? DEFAULT_LISTING_LIMIT;
    const cut = q.cursor?.lastIndexOf('/') ?? -1;
    const afterId = q.cursor !== undefined && cut > 0 && uuidLike.test(q.cursor.slice(cut + 1));
    const afterName = q.cursor === undefined ? null : afterId ? q.cursor.slice(0, cut) : q.cursor;
    const r = await this.deps.pool.query(
      `SELECT c.*, lt.* FROM (${byteBoundedSql(
        `SELECT x.*, octet_length(x.target::text) + CASE WHEN x.target->>'kind' = 'workflow' THEN 2400 ELSE 400 END AS bytes
           FROM (${SCHEDULE_SELECT}) x
          WHERE ($1::text IS NULL OR x.name > $1 OR (x.name = $1 AND $5::text IS NOT NULL AND x.id::text > $5))
            AND ($2::text IS NULL OR x.owner = $2)
          ORDER BY x.name, x.id::text LIMIT $3`,
        'w.name, w.id::text',
        '$4',
      )}) c
       -- The workflow target's last fire, for the page's schedules only (the triggers' (schedule_id,
       -- fire_at) key finds it; its error, at most 2,000 characters, is counted in a workflow target's bytes above).
       LEFT JOIN LATERAL (SELECT t.status AS last_start_status, t.execution_id AS last_start_execution,
                                 t.error AS last_start_error
                            FROM automation.triggers t WHERE t.schedule_id = c.id
                           ORDER BY t.fire_at DESC LIMIT 1) lt ON true
       ORDER BY c.name, c.id::text`,
      [afterName, q.owner ?? null, limit, LISTING_PAGE_BYTES, afterId ? q.cursor.slice(cut + 1) : null],
    );
    const schedules = r.rows.map(toSchedule);
    return {
      schedules,
      next_cursor: nextCursor(
        r.rows,
        limit,
        schedules.map((x) => `${x.name}/${x.id}`),
      ),
    };
  }

  /** The schedule a command left in `state`, as listed now (`ref`: what the caller named, for the error). */
  private async byId(state: ScheduleState, ref: string): Promise<Schedule> {
    const row = 'id' in state ? await this.row(state.id) : undefined;
    if (!row) throw new AppError('not_found', `no schedule named or with id "${ref}"`, { schedule: ref });
    return toSchedule(row);
  }

  /** The schedule of this id, as SCHEDULE_SELECT reads it. */
  private async row(id: string): Promise<Record<string, unknown> | undefined> {
    const r = await this.deps.pool.query<Record<string, unknown>>(`${SCHEDULE_SELECT} WHERE s.id = $1::uuid`, [id]);
    return r.rows[0];
  }

  /** The schedule named `name` in `scope` (the system's: none), if there is one. */
  private async scoped(name: string, scope: string | undefined): Promise<Schedule | undefined> {
    const r = await this.deps.pool.query<Record<string, unknown>>(
      `${SCHEDULE_SELECT} WHERE s.name = $1 AND s.scope IS NOT DISTINCT FROM $2::text`,
      [name, scope ?? null],
    );
    return r.rows[0] ? toSchedule(r.rows[0]) : undefined;
  }

  /**
   * The schedule a reference names for `actor`. A name first: the caller's own (its scope), then
   * the system's (no scope), then one the caller answers for now (resumed it), then the only one
   * of that name (an admin's reach; the decider still checks who may change it); several left:
   * refused, naming their ids. An id otherwise. A name no schedule has yet is the caller's stream
   * (the decider then says not_found). The id found is checked again by the decider, so a newer
   * schedule under the name is not touched.
   */
  private async resolve(ref: string, actor: string | undefined): Promise<Target> {
    const r = await this.deps.pool.query<Candidate>(
      `SELECT id, name, scope, owner FROM automation.schedules WHERE name = $1 OR ($2::uuid IS NOT NULL AND id = $2::uuid)`,
      [ref, uuidLike.test(ref) ? ref : null],
    );
    const named = r.rows.filter((x) => x.name === ref);
    const pick =
      (actor !== undefined ? named.find((x) => x.scope === actor) : undefined) ??
      named.find((x) => x.scope === null) ??
      (actor !== undefined ? named.find((x) => x.owner === actor) : undefined) ??
      (named.length === 1 ? named[0] : undefined) ??
      (named.length === 0 ? r.rows[0] : undefined);
    if (pick) return { name: pick.name, id: pick.id, scope: pick.scope ?? undefined };
    if (named.length > 1)
      throw new AppError(
        'validation',
        `${named.length} schedules of other owners are named "${ref}": name the one you mean by its id`,
        { schedule: ref, ids: named.map((x) => x.id) },
      );
    if (uuidLike.test(ref)) throw new AppError('not_found', `no schedule named or with id "${ref}"`, { schedule: ref });
    return { name: ref, scope: actor };
  }

  /**
   * After the wall clock stepped back (an NTP correction of a clock that ran fast), a fire planned
   * by the fast clock is an absolute time that far ahead, and `due` would wait for the clock to
   * get there: an every-minute schedule would skip every occurrence for the length of the step.
   * Each tick measures the wall clock against the monotonic one; on the first tick, and when the
   * wall clock went back by CLOCK_STEP_BACK_MS or more since the last, every live schedule whose
   * plan lies too far ahead (replannedFire) is re-planned, once, under its row lock as a claim
   * takes it, with a warning naming it. The occurrences already fired stay recorded: one coming
   * due again is not sent again (the triggers' and the owed deliveries' occurrence keys). Returns
   * how many it re-planned.
   */
  async replanAfterClockStepBack(now: Date, monotonicMs = performance.now()): Promise<number> {
    // `monotonicMs` is read with `now` (the tick's start): read later, the time the tick's other
    // statements took would count as a step back.
    const stepMs = this.clockWatch.step(now.getTime(), monotonicMs);
    if (stepMs !== undefined && -stepMs >= CLOCK_STEP_BACK_MS) this.replanOwed = true;
    if (!this.replanOwed) return 0;
    // Live cron schedules planned for later than now (at most AUTOMATION_MAX_SCHEDULES), and
    // one-shots created later than now; read on the first tick and after a step only.
    const r = await this.deps.pool.query<{ id: string } & Parameters<typeof replannedFire>[0]>(
      `${REPLAN_SELECT} WHERE x.active AND NOT x.done AND NOT x.owner_revoked AND x.next_fire_at > $1
          AND (CASE WHEN x.run_once OR x.cron IS NULL THEN d.created_at > $1 ELSE true END)`,
      [now],
    );
    let replanned = 0;
    let unfinished = false;
    for (const row of r.rows) {
      if (!replannedFire(row, now)) continue;
      try {
        const moved = await this.replan(row.id, now);
        if (moved === 'locked') unfinished = true;
        else if (moved) {
          replanned++;
          this.deps.logger.warn(
            {
              scheduleId: row.id,
              schedule: moved.name,
              plannedFireAt: moved.from.toISOString(),
              nextFireAt: moved.to.toISOString(),
              earlierByMs: moved.from.getTime() - moved.to.getTime(),
              ...(stepMs !== undefined ? { clockSteppedBackMs: Math.round(-stepMs) } : {}),
            },
            'the clock went back: schedule re-planned from now, its planned fire lay further ahead than its next occurrence',
          );
        }
      } catch (err) {
        unfinished = true;
        this.deps.logger.warn({ err, scheduleId: row.id }, 'could not re-plan a schedule after a clock step back');
      }
    }
    // Taken by a claim meanwhile, or failed: the next tick looks again.
    this.replanOwed = unfinished;
    return replanned;
  }

  /**
   * Re-plan schedule `id` under its row lock, as claim() takes it (SKIP LOCKED, then its state
   * read again in a second statement): the fire it had planned, the one it has now and its name,
   * undefined when its plan holds after all, `locked` when another scheduler holds it.
   */
  private async replan(id: string, now: Date): Promise<{ name: string; from: Date; to: Date } | 'locked' | undefined> {
    return withTransaction(this.deps.pool, async (c) => {
      const locked = await c.query(`SELECT 1 FROM automation.schedules WHERE id = $1 FOR UPDATE SKIP LOCKED`, [id]);
      if (locked.rowCount === 0) return 'locked';
      const r = await c.query(`${REPLAN_SELECT} WHERE x.id = $1`, [id]);
      const row = r.rows[0] as (Parameters<typeof replannedFire>[0] & Record<string, unknown>) | undefined;
      if (!row || row['active'] !== true || row['done'] === true || row['owner_revoked'] === true) return undefined;
      const to = replannedFire(row, now);
      if (!to) return undefined;
      // Under the definition's plan, keeping what was fired (counts, last fire).
      await c.query(
        `INSERT INTO automation.schedule_runs (schedule_id, plan_revision, next_fire_at, done, last_fired_at, fire_count) VALUES ($1,$2,$3,false,NULL,0)
         ON CONFLICT (schedule_id) DO UPDATE SET plan_revision = excluded.plan_revision, next_fire_at = excluded.next_fire_at, done = false`,
        [id, row['plan_revision'], to],
      );
      return { name: row['name'] as string, from: row.next_fire_at, to };
    });
  }

  /** Ids of the schedules due at `now`, oldest first (none whose owner's key was revoked). */
  async due(now: Date, batch: number, skip: readonly string[] = []): Promise<string[]> {
    const r = await this.deps.pool.query<{ id: string }>(DUE_SCHEDULES_SQL, [now, batch, skip]);
    return r.rows.map((x) => x.id);
  }

  /**
   * Pause every active schedule whose owner's key was revoked (SchedulePaused, reason
   * `owner_revoked`), so that revoking a key also ends what it left running. They stop firing as
   * soon as the revocation is known (`due` and `claim` skip them); the pause records it, shows it
   * in list_schedules, and lets someone else take a schedule over by resuming it. Returns how
   * many it paused.
   */
  async pauseRevokedOwners(batch: number): Promise<number> {
    // Not a one-shot that has fired (it stays enabled, done): it owes nothing.
    const r = await this.deps.pool.query<{ id: string; name: string; owner: string; scope: string | null }>(
      `SELECT x.id, x.name, x.owner, x.scope FROM (${SCHEDULE_SELECT} WHERE s.enabled AND NOT s.finished) x
        WHERE x.active AND NOT x.done AND x.owner_revoked ORDER BY x.name LIMIT $1`,
      [batch],
    );
    let paused = 0;
    for (const s of r.rows) {
      try {
        const result = await this.pauseBySystem(s, PAUSED_OWNER_REVOKED, 'owner-revoked');
        if (result.events.length > 0) {
          paused++;
          this.deps.logger.info(
            { correlationId: `owner-revoked:${s.id}`, scheduleId: s.id, schedule: s.name, owner: s.owner },
            "schedule paused: its owner's key was revoked",
          );
        }
      } catch (err) {
        // Deleted or re-created under the name meanwhile (not_found), or another scheduler's pause
        // came first (a conflict the command's retry settles): the next tick looks again.
        this.deps.logger.warn(
          { err, scheduleId: s.id, schedule: s.name },
          "could not pause a revoked owner's schedule",
        );
      }
    }
    return paused;
  }

  /**
   * Pause every active workflow schedule whose latest fire under its current plan was refused
   * because its template no longer exists (SchedulePaused, reason `target_missing`): it would
   * fail the same way at every fire, one failed trigger row each, until someone noticed. The
   * owner sees why in list_schedules and resumes it once the template is back. A fire that
   * failed before a resume, or one followed by a later fire, pauses nothing. Returns how many
   * it paused.
   */
  async pauseMissingTargets(batch: number): Promise<number> {
    // Driven by the failed rows (a partial index): a few per broken schedule, not every schedule.
    const r = await this.deps.pool.query<{
      id: string;
      name: string;
      scope: string | null;
      owner: string | null;
      template_id: string;
    }>(
      `SELECT DISTINCT ON (x.id) x.id, x.name, x.scope, x.owner, t.template_id
         FROM automation.triggers t
         JOIN (${SCHEDULE_SELECT} WHERE s.enabled AND NOT s.finished) x ON x.id = t.schedule_id
        WHERE t.status = 'failed' AND t.error_code = 'not_found' AND t.plan_revision = x.plan_revision
          AND x.active AND NOT x.done
          AND NOT EXISTS (SELECT 1 FROM automation.triggers later
                           WHERE later.schedule_id = t.schedule_id AND later.fire_at > t.fire_at)
        ORDER BY x.id LIMIT $1`,
      [batch],
    );
    let paused = 0;
    for (const s of r.rows) {
      try {
        const result = await this.pauseBySystem(s, PAUSED_TARGET_MISSING, 'target-missing');
        if (result.events.length > 0) {
          paused++;
          this.deps.logger.warn(
            {
              correlationId: `target-missing:${s.id}`,
              scheduleId: s.id,
              schedule: s.name,
              owner: s.owner,
              templateId: s.template_id,
            },
            'schedule paused: its workflow template no longer exists',
          );
        }
      } catch (err) {
        // Deleted, resumed or paused meanwhile: the next tick looks again.
        this.deps.logger.warn(
          { err, scheduleId: s.id, schedule: s.name },
          'could not pause a schedule whose template is gone',
        );
      }
    }
    return paused;
  }

  /** One-shots that fired before `cutoff`, oldest first (the record retention retires them). */
  async expiredOneShots(cutoff: Date, limit: number): Promise<{ id: string; name: string; scope: string | null }[]> {
    const r = await this.deps.pool.query<{ id: string; name: string; scope: string | null }>(
      `SELECT id, name, scope FROM automation.schedules WHERE finished AND next_fire_at < $1 ORDER BY next_fire_at LIMIT $2`,
      [cutoff, limit],
    );
    return r.rows;
  }

  /**
   * Retire a fired one-shot (ScheduleDeleted, reason `expired`, by the system): it leaves the
   * listings, and its name is free again. False when it was gone already (deleted meanwhile, or
   * another server's purge came first).
   */
  async expire(s: { id: string; name: string; scope: string | null }): Promise<boolean> {
    try {
      const r = await this.command(
        {
          type: 'DeleteSchedule',
          data: { name: s.name, id: s.id, reason: SCHEDULE_EXPIRED },
          metadata: this.deps.events.metadata(`retention:${s.id}`, `${AUTOMATION_ACTOR}:retention`),
        },
        s.scope ?? undefined,
      );
      return r.events.length > 0;
    } catch (err) {
      if (isAppError(err) && (err.code === 'not_found' || err.code === 'conflict')) return false;
      throw err;
    }
  }

  /** Rows written before schedules were events (no position): append their ScheduleCreated once. */
  async adoptLegacy(): Promise<number> {
    const r = await this.deps.pool.query(
      `SELECT id, name, cron, run_once, timezone, target, next_fire_at, created_at FROM automation.schedules WHERE position IS NULL`,
    );
    let adopted = 0;
    for (const s of r.rows) {
      const createdAt = iso(s.created_at)!;
      const data = {
        id: s.id,
        name: s.name,
        cron: s.cron,
        run_once: s.run_once,
        timezone: s.timezone,
        target: s.target,
        next_fire_at: iso(s.next_fire_at)!,
        created_at: createdAt,
      };
      const metadata = { timestamp: createdAt, correlationId: `adopt:${s.id}`, actor: `${AUTOMATION_ACTOR}:adoption` };
      if (await this.deps.events.appendNew(scheduleStream(s.name), [{ type: 'ScheduleCreated', data, metadata }]))
        adopted++;
    }
    if (adopted > 0)
      this.deps.logger.info({ adopted }, 'schedules created before the event log adopted as ScheduleCreated events');
    return adopted;
  }

  /**
   * Claim the occurrence of schedule `id` due at `now`: the definition row is locked (SKIP
   * LOCKED: another scheduler has it) and its due time read again under the lock, then the run
   * state advances in the same transaction as the owed delivery or trigger row.
   */
  async claim(id: string, now: Date): Promise<ClaimedFire | undefined> {
    return withTransaction(this.deps.pool, async (c) => {
      // The lock first, the run state after it, in two statements. A statement reads the snapshot
      // taken when it started: in one statement, a claim that committed between that snapshot and
      // the lock (released by its commit) went unseen, and the same occurrence was claimed twice.
      // The second statement starts after the lock is held, so it sees every earlier claim.
      const locked = await c.query(`SELECT 1 FROM automation.schedules WHERE id = $1 FOR UPDATE SKIP LOCKED`, [id]);
      if (locked.rowCount === 0) return undefined;
      const r = await c.query(`${SCHEDULE_SELECT} WHERE s.id = $1`, [id]);
      const row = r.rows[0] as Record<string, unknown> | undefined;
      if (
        !row ||
        row['active'] !== true ||
        row['done'] === true ||
        row['owner_revoked'] === true ||
        (row['next_fire_at'] as Date) > now
      )
        return undefined;
      const schedule = toSchedule(row);
      const fireAt = row['next_fire_at'] as Date;
      // A one-shot schedule fires once and stays listed, disabled, as a record of it.
      const once = schedule.run_once || schedule.cron === null;
      // A cron whose next fire cannot be computed fires this occurrence and then stops under its
      // plan (done), and the caller pauses it saying why: it must not stay due, failing every tick.
      let next = fireAt;
      let stuck = false;
      if (!once) {
        try {
          next = nextFireAfter(schedule.cron, schedule.timezone, fireAt > now ? fireAt : now);
        } catch (err) {
          this.deps.logger.error(
            { err, scheduleId: schedule.id, schedule: schedule.name, cron: schedule.cron, timezone: schedule.timezone },
            'the next fire time of a schedule cannot be computed; it fires now, then is paused',
          );
          stuck = true;
        }
      }
      await c.query(
        `INSERT INTO automation.schedule_runs (schedule_id, plan_revision, next_fire_at, done, last_fired_at, fire_count) VALUES ($1,$2,$3,$4,$5,1)
         ON CONFLICT (schedule_id) DO UPDATE SET plan_revision = excluded.plan_revision, next_fire_at = excluded.next_fire_at, done = excluded.done,
                last_fired_at = excluded.last_fired_at, fire_count = automation.schedule_runs.fire_count + 1`,
        [id, row['plan_revision'], next, once || stuck, fireAt],
      );
      // Out of the scheduler's working set from now on (see the schema's `finished`).
      if (schedule.run_once) await c.query(`UPDATE automation.schedules SET finished = true WHERE id = $1`, [id]);
      let trigger: TriggerRecord | undefined;
      if (schedule.target.kind === 'webhook') {
        // Owed from now on, in the same transaction as the claim: a crash before the send loses nothing.
        const key = `${schedule.id}:${fireAt.toISOString()}`;
        await c.query(
          `INSERT INTO automation.scheduled_deliveries (delivery_id, schedule_id, fire_at, webhook, event, payload, correlation_id, next_attempt_at, created_at, owner)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$8,$9) ON CONFLICT (delivery_id) DO NOTHING`,
          [
            key,
            id,
            fireAt,
            schedule.target.webhook,
            schedule.target.event,
            JSON.stringify({
              ...schedule.target.payload,
              schedule: schedule.name,
              schedule_id: schedule.id,
              fire_at: fireAt.toISOString(),
            }),
            key,
            now,
            schedule.owner,
          ],
        );
      }
      if (schedule.target.kind === 'email') {
        // Owed like a webhook; the occurrence key is the mail's idempotency key, so it goes out once.
        const key = `${schedule.id}:${fireAt.toISOString()}`;
        const { kind: _kind, ...message } = schedule.target;
        await c.query(
          `INSERT INTO automation.scheduled_deliveries (delivery_id, schedule_id, fire_at, channel, webhook, event, payload, correlation_id, next_attempt_at, created_at, owner)
           VALUES ($1,$2,$3,'email','','email',$4,$1,$5,$5,$6) ON CONFLICT (delivery_id) DO NOTHING`,
          [key, id, fireAt, JSON.stringify(message), now, schedule.owner],
        );
      }
      if (schedule.target.kind === 'workflow') {
        trigger = await insertScheduleTrigger(c, {
          templateId: schedule.target.template_id,
          input: schedule.target.input,
          scheduleId: id,
          planRevision: row['plan_revision'] as number | string,
          fireAt,
          now,
          onBehalfOf: schedule.owner,
        });
      }
      return {
        schedule,
        fireAt,
        scope: (row['scope'] as string | null) ?? null,
        ...(trigger ? { trigger } : {}),
        ...(stuck ? { stuck } : {}),
      };
    });
  }

  /** Pause a schedule the scheduler could not plan further (PAUSED_NO_NEXT_FIRE), by the system. */
  async pauseStuck(s: { id: string; name: string; scope?: string | null | undefined }): Promise<void> {
    await this.pauseBySystem(s, PAUSED_NO_NEXT_FIRE, 'scheduler');
  }

  /** PauseSchedule by the system, saying why (`reason`); `by` names the part of it that paused (the actor). */
  private pauseBySystem(
    s: { id: string; name: string; scope?: string | null | undefined },
    reason: SystemPauseReason,
    by: string,
  ) {
    return this.command(
      {
        type: 'PauseSchedule',
        data: { name: s.name, id: s.id, reason },
        metadata: this.deps.events.metadata(`${reason.replaceAll('_', '-')}:${s.id}`, `${AUTOMATION_ACTOR}:${by}`),
      },
      s.scope ?? undefined,
    );
  }
}

/**
 * Runs `fireDue` every `intervalMs` until stopped, without waiting for the deliveries a tick
 * starts (they run side by side, see sendScheduledDeliveries), then starts a purge of finished
 * records when one is due (purgeRecordsWhenDue). Any number of schedulers may run against one
 * database (see `fireDue`); a failed tick is logged and the loop goes on.
 */
export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly service: {
      fireDue(batch?: number, waitForDeliveries?: boolean): Promise<number>;
      purgeRecordsWhenDue?(): void;
    },
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = (): void => {
      if (this.stopped) return;
      this.running = this.service
        .fireDue(undefined, false)
        .then(() => this.service.purgeRecordsWhenDue?.())
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

/**
 * Whether a stored schedule is the one `input` describes, made a moment ago by the same request:
 * the same cron (or a one-shot), time zone and target, enabled, and a one-shot not fired yet and
 * due within a minute (or 1 % of its delay) of when this one would be. A one-shot's delay is not
 * kept, its due time is: another delay, or one that fired, is another schedule.
 */
function sameSchedule(
  s: Schedule,
  input: { cron?: string | undefined; after?: string | undefined; timezone: string; target: ScheduleTarget },
  now: Date,
  next: Date,
): boolean {
  const same =
    s.cron === (input.cron ?? null) &&
    s.run_once === (input.after !== undefined) &&
    s.timezone === input.timezone &&
    s.enabled &&
    canonicalJson(s.target) === canonicalJson(input.target);
  if (!same || !s.run_once) return same;
  const due = Date.parse(s.next_fire_at);
  const delay = next.getTime() - now.getTime();
  return s.fire_count === 0 && Math.abs(due - next.getTime()) <= Math.max(60_000, delay / 100);
}
