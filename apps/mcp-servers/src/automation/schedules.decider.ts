/**
 * The schedule aggregate as a pure decider (no I/O; "now" is the command's metadata.timestamp,
 * the cron arithmetic is a pure function of it). One stream per schedule name in its scope,
 * `automation_schedule-<scope>/<name>` (`automation_schedule-<name>` for the system's and those from
 * before scopes), so a name is taken at most once per scope; a deleted name may be used again.
 *
 * What the events record is the schedule's definition and its paused/active state, with the
 * fire time planned by the latest ScheduleCreated or ScheduleResumed. Firing (the next fire
 * time after each occurrence, counts, the owed deliveries) is operational state of the
 * scheduler (automation.schedule_runs), not events: see docs/automation-events.md.
 */
import { z } from 'zod';
import type { Event } from '@switchyard/domain';
import { CronExpressionParser } from 'cron-parser';
import { AppError } from '@switchyard/platform';
import { assertMayChange, type AutomationMetadata, type CommandCaller } from './webhooks.decider.js';

export const SCHEDULE_STREAM_PREFIX = 'automation_schedule-';
/**
 * A schedule's stream: its name within its scope, the person who created it. Names have no `/` and
 * actors none either, so scoped and unscoped streams never meet.
 */
export const scheduleStream = (name: string, scope?: string | null): string =>
  scope ? `${SCHEDULE_STREAM_PREFIX}${scope}/${name}` : `${SCHEDULE_STREAM_PREFIX}${name}`;

export function assertTimezone(tz: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new AppError('validation', `unknown time zone: ${tz}`, { timezone: tz });
  }
}

/** The UTC offset of `tz` at `t`, in minutes, as Intl reads it (`GMT+10:30` -> 630). */
function offsetMinutes(tz: string, t: number): number {
  const name =
    new Intl.DateTimeFormat('en-US', { timeZone: tz, timeZoneName: 'longOffset' })
      .formatToParts(new Date(t))
      .find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
  const m = /GMT([+-])(\d{2}):?(\d{2})?/.exec(name);
  return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3] ?? 0)) : 0;
}

/** The first instant after `from` (within 400 days) where `tz` changes its UTC offset, to the minute. */
function nextOffsetChange(tz: string, from: number): number | undefined {
  const day = 86_400_000;
  const at = offsetMinutes(tz, from);
  let lo = from;
  let hi: number | undefined;
  for (let t = from + day; t <= from + 400 * day; t += day) {
    if (offsetMinutes(tz, t) !== at) {
      hi = t;
      break;
    }
    lo = t;
  }
  if (hi === undefined) return undefined;
  let changed: number = hi;
  while (changed - lo > 60_000) {
    const mid: number = lo + Math.floor((changed - lo) / 2);
    if (offsetMinutes(tz, mid) === at) lo = mid;
    else changed = mid;
  }
  return changed;
}

/**
 * Next fire strictly after `after`, or a validation error naming what is wrong with the expression.
 * cron-parser (5.10) gives up with "loop limit exceeded" (after 10,000 steps, a third of a second
 * here) for valid expressions whose search crosses some daylight-saving changes of less than an
 * hour (Lord Howe's half hour, one of Chatham's): the search starts again once, a minute past the
 * zone's next offset change, so such a schedule skips at most the occurrences before that change.
 * Where that does not help either, the scheduler fires the occurrence and pauses the schedule
 * (PAUSED_NO_NEXT_FIRE) rather than failing at every tick.
 */
export function nextFireAfter(cron: string, timezone: string, after: Date): Date {
  assertTimezone(timezone);
  const search = (from: Date) => CronExpressionParser.parse(cron, { tz: timezone, currentDate: from }).next().toDate();
  try {
    try {
      return search(after);
    } catch (e) {
      if (!/loop limit exceeded/i.test((e as Error).message)) throw e;
      const change = nextOffsetChange(timezone, after.getTime());
      if (change === undefined) throw e;
      return search(new Date(change + 60_000));
    }
  } catch (e) {
    throw new AppError('validation', `invalid cron expression "${cron}": ${(e as Error).message}`, { cron });
  }
}

/**
 * A repeating schedule fires at most once a minute, as classic cron does. cron-parser also takes
 * a seconds field (six fields), and each fire sends a webhook, starts a workflow or sends a mail:
 * an expression whose seconds field names more than one second would fire several times a minute.
 * (Checked on the parsed field, not by stepping through fires: around some time zones' DST
 * changes the parser's next fires come out of order.)
 */
function assertOncePerMinute(cron: string, timezone: string): void {
  let seconds: readonly number[];
  try {
    seconds = CronExpressionParser.parse(cron, { tz: timezone }).fields.second.values;
  } catch (e) {
    throw new AppError('validation', `invalid cron expression "${cron}": ${(e as Error).message}`, { cron });
  }
  if (seconds.length > 1)
    throw new AppError(
      'validation',
      `cron expression "${cron}" fires ${seconds.length} times a minute; a schedule may fire at most once a minute`,
      { cron, seconds: [...seconds] },
    );
}

/** `after` of a one-shot schedule: `<n><s|m|h|d|w>`, at most a year. */
export function afterMs(text: string): number {
  const m = /^([0-9]{1,6})([smhdw])$/.exec(text);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
  const ms = m ? Number(m[1]) * unit[m[2] as keyof typeof unit] : NaN;
  if (!(ms >= 0 && ms <= 366 * 86_400_000))
    throw new AppError('validation', `after must be a duration like 30s, 15m, 2h, 7d (at most a year): ${text}`, {
      after: text,
    });
  return ms;
}

/**
 * The first fire of a new schedule at `now`: exactly one of cron (repeating) and after (once).
 * Pure; the service also calls it before its own checks so a bad expression is reported first.
 */
export function planSchedule(
  input: { cron?: string | null | undefined; after?: string | null | undefined; timezone: string },
  now: Date,
): { next: Date; runOnce: boolean } {
  const cron = input.cron ?? undefined;
  const after = input.after ?? undefined;
  if ((cron === undefined) === (after === undefined)) {
    throw new AppError('validation', 'give either cron (repeating) or after (once, e.g. "7d")', {
      fields: ['cron', 'after'],
    });
  }
  if (cron !== undefined) {
    const next = nextFireAfter(cron, input.timezone, now);
    assertOncePerMinute(cron, input.timezone);
    return { next, runOnce: false };
  }
  const next = new Date(now.getTime() + afterMs(after!));
  assertTimezone(input.timezone);
  return { next, runOnce: true };
}

const at = z.iso.datetime({ offset: true });
export const scheduleCreatedSchema = z.object({
  id: z.uuid(),
  name: z.string().min(1),
  cron: z.string().nullable(),
  run_once: z.boolean(),
  timezone: z.string().min(1),
  /** The target as create_schedule validated it (scheduleTargetSchema). */
  target: z.record(z.string(), z.unknown()),
  next_fire_at: at,
  created_at: at,
  /**
   * The person the schedule answers to (`apikey:<id>`, `token:<name>`): who created it, then who
   * last resumed it. Its fires stop, and it is paused, once that person's key is revoked. Absent
   * when the caller was not known (a direct call to the server, or a schedule from before owners).
   */
  owner: z.string().min(1).optional(),
  /**
   * The namespace of its name: the person who created it (names are unique per scope). Absent for
   * the system's and those from before scopes, which share the one namespace names had before.
   */
  scope: z.string().min(1).optional(),
});
/** `owner_revoked`: the system paused it because its owner's key was revoked. Absent when paused on request. */
export const PAUSED_OWNER_REVOKED = 'owner_revoked';
/**
 * `no_next_fire`: the system paused it after a fire because its next fire time could not be
 * computed (see nextFireAfter); resuming computes it again from then.
 */
export const PAUSED_NO_NEXT_FIRE = 'no_next_fire';
/**
 * `target_missing`: the system paused a workflow schedule whose latest fire, under its current
 * plan, was refused because the template no longer exists: every later fire would fail the same
 * way. Resuming it (once the template is back) fires it again.
 */
export const PAUSED_TARGET_MISSING = 'target_missing';
export const SYSTEM_PAUSE_REASONS = [PAUSED_OWNER_REVOKED, PAUSED_NO_NEXT_FIRE, PAUSED_TARGET_MISSING] as const;
export type SystemPauseReason = (typeof SYSTEM_PAUSE_REASONS)[number];
export const schedulePausedSchema = z.object({
  id: z.uuid(),
  name: z.string().min(1),
  paused_at: at,
  reason: z.enum(SYSTEM_PAUSE_REASONS).optional(),
});
export const scheduleResumedSchema = z.object({
  id: z.uuid(),
  name: z.string().min(1),
  next_fire_at: at,
  resumed_at: at,
  /** Who resumed it, its owner from now on (absent: the owner stays). */
  owner: z.string().min(1).optional(),
});
/**
 * `expired`: the system retired a one-shot that fired longer ago than the record retention
 * (AUTOMATION_RECORD_RETENTION_DAYS). Absent when deleted on request.
 */
export const SCHEDULE_EXPIRED = 'expired';
export const scheduleDeletedSchema = z.object({
  id: z.uuid(),
  name: z.string().min(1),
  deleted_at: at,
  reason: z.literal(SCHEDULE_EXPIRED).optional(),
});

export type ScheduleEvent =
  | Event<'ScheduleCreated', z.infer<typeof scheduleCreatedSchema>, AutomationMetadata>
  | Event<'SchedulePaused', z.infer<typeof schedulePausedSchema>, AutomationMetadata>
  | Event<'ScheduleResumed', z.infer<typeof scheduleResumedSchema>, AutomationMetadata>
  | Event<'ScheduleDeleted', z.infer<typeof scheduleDeletedSchema>, AutomationMetadata>;

export const SCHEDULE_EVENT_TYPES = [
  'ScheduleCreated',
  'SchedulePaused',
  'ScheduleResumed',
  'ScheduleDeleted',
] as const;

/** `id`: when the caller named the schedule by id, the schedule it meant (a reused name has another). */
type Ref = { readonly name: string; readonly id?: string };
export type ScheduleCommand =
  | {
      readonly type: 'CreateSchedule';
      readonly data: {
        readonly id: string;
        readonly name: string;
        readonly cron?: string | undefined;
        readonly after?: string | undefined;
        readonly timezone: string;
        readonly target: Record<string, unknown>;
        readonly owner?: string | undefined;
        readonly scope?: string | undefined;
      };
      readonly metadata: AutomationMetadata;
    }
  | {
      readonly type: 'PauseSchedule';
      readonly data: Ref & {
        readonly reason?: SystemPauseReason | undefined;
        readonly caller?: CommandCaller | undefined;
      };
      readonly metadata: AutomationMetadata;
    }
  | {
      readonly type: 'ResumeSchedule';
      readonly data: Ref & {
        readonly owner?: string | undefined;
        readonly caller?: CommandCaller | undefined;
        /** Its owner's key was revoked (automation.revoked_actors): anyone may take it over by resuming it. */
        readonly ownerRevoked?: boolean | undefined;
      };
      readonly metadata: AutomationMetadata;
    }
  | {
      readonly type: 'DeleteSchedule';
      readonly data: Ref & {
        readonly caller?: CommandCaller | undefined;
        readonly reason?: typeof SCHEDULE_EXPIRED | undefined;
        /** A schedule that is not there is already deleted: nothing to record, instead of not_found. */
        readonly missingOk?: boolean | undefined;
      };
      readonly metadata: AutomationMetadata;
    };

interface Defined {
  readonly id: string;
  readonly name: string;
  readonly cron: string | null;
  readonly timezone: string;
  /** Planned by the latest ScheduleCreated / ScheduleResumed. */
  readonly next_fire_at: string;
  /** Who created or last resumed it, when known. */
  readonly owner?: string | undefined;
}
export type ScheduleState =
  | { readonly status: 'none' }
  | ({ readonly status: 'active' } & Defined)
  | ({ readonly status: 'paused' } & Defined)
  | { readonly status: 'deleted'; readonly id: string; readonly name: string };

/** The schedule `ref` names is the one in `state` and has not been deleted. */
function exists(state: ScheduleState, ref: Ref): state is Extract<ScheduleState, { status: 'active' | 'paused' }> {
  return (state.status === 'active' || state.status === 'paused') && (ref.id === undefined || ref.id === state.id);
}

function existing(state: ScheduleState, ref: Ref): Extract<ScheduleState, { status: 'active' | 'paused' }> {
  if (!exists(state, ref)) {
    throw new AppError('not_found', `no schedule named or with id "${ref.id ?? ref.name}"`, {
      schedule: ref.id ?? ref.name,
    });
  }
  return state;
}

export const scheduleDecider = {
  initialState: { status: 'none' } as ScheduleState,

  decide(command: ScheduleCommand, state: ScheduleState): ScheduleEvent[] {
    const metadata = command.metadata;
    const now = new Date(metadata.timestamp);
    switch (command.type) {
      case 'CreateSchedule': {
        const d = command.data;
        const plan = planSchedule(d, now);
        if (state.status === 'active' || state.status === 'paused')
          throw new AppError('illegal_state', `schedule "${d.name}" already exists`, { name: `schedule "${d.name}"` });
        return [
          {
            type: 'ScheduleCreated',
            data: {
              id: d.id,
              name: d.name,
              cron: d.cron ?? null,
              run_once: plan.runOnce,
              timezone: d.timezone,
              target: d.target,
              next_fire_at: plan.next.toISOString(),
              created_at: metadata.timestamp,
              ...(d.owner !== undefined ? { owner: d.owner } : {}),
              ...(d.scope !== undefined ? { scope: d.scope } : {}),
            },
            metadata,
          },
        ];
      }
      case 'PauseSchedule': {
        const s = existing(state, command.data);
        assertMayChange(`schedule "${s.name}"`, s.owner, command.data.caller);
        if (s.status === 'paused') return [];
        const reason = command.data.reason;
        return [
          {
            type: 'SchedulePaused',
            data: { id: s.id, name: s.name, paused_at: metadata.timestamp, ...(reason ? { reason } : {}) },
            metadata,
          },
        ];
      }
      case 'ResumeSchedule': {
        const s = existing(state, command.data);
        // A resume makes the resumer its owner: taking over another's schedule is for admins, and
        // for anyone once its owner's key was revoked (how such a schedule goes on).
        if (!command.data.ownerRevoked) assertMayChange(`schedule "${s.name}"`, s.owner, command.data.caller);
        // Resuming an active schedule changes nothing, unless someone else resumes it: they take
        // it over (a schedule whose owner was revoked, before the scheduler has paused it).
        const owner = command.data.owner;
        if (s.status === 'active' && (owner === undefined || owner === s.owner)) return [];
        // A cron schedule goes on with its next occurrence after now (those missed while paused are
        // skipped); a one-shot keeps its time (due at once if it passed; once fired it stays done).
        const next = s.cron === null ? s.next_fire_at : nextFireAfter(s.cron, s.timezone, now).toISOString();
        return [
          {
            type: 'ScheduleResumed',
            data: {
              id: s.id,
              name: s.name,
              next_fire_at: next,
              resumed_at: metadata.timestamp,
              ...(command.data.owner !== undefined ? { owner: command.data.owner } : {}),
            },
            metadata,
          },
        ];
      }
      case 'DeleteSchedule': {
        // Deleting what is not there (never was, already deleted, or the id meant was replaced under
        // its name) leaves what was asked for: an undo sent twice, or after a manual delete, is done.
        // One that is there is still its owner's, an admin's or the system's to delete.
        if (command.data.missingOk === true && !exists(state, command.data)) return [];
        const s = existing(state, command.data);
        assertMayChange(`schedule "${s.name}"`, s.owner, command.data.caller);
        const reason = command.data.reason;
        return [
          {
            type: 'ScheduleDeleted',
            data: { id: s.id, name: s.name, deleted_at: metadata.timestamp, ...(reason ? { reason } : {}) },
            metadata,
          },
        ];
      }
      default: {
        const never: never = command;
        throw new AppError('validation', `unknown schedule command ${JSON.stringify(never)}`);
      }
    }
  },

  evolve(state: ScheduleState, event: ScheduleEvent): ScheduleState {
    switch (event.type) {
      case 'ScheduleCreated': {
        const d = event.data;
        return {
          status: 'active',
          id: d.id,
          name: d.name,
          cron: d.cron,
          timezone: d.timezone,
          next_fire_at: d.next_fire_at,
          ...(d.owner !== undefined ? { owner: d.owner } : {}),
        };
      }
      case 'SchedulePaused':
        return state.status === 'active' ? { ...state, status: 'paused' } : state;
      case 'ScheduleResumed':
        return state.status === 'paused' || state.status === 'active'
          ? {
              ...state,
              status: 'active',
              next_fire_at: event.data.next_fire_at,
              ...(event.data.owner !== undefined ? { owner: event.data.owner } : {}),
            }
          : state;
      case 'ScheduleDeleted':
        return { status: 'deleted', id: event.data.id, name: event.data.name };
      default: {
        const never: never = event;
        return never;
      }
    }
  },
};
