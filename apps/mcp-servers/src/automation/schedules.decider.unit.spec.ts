import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeciderSpecification } from '@switchyard/testing';
import { AppError } from '@switchyard/platform';
import {
  schedulePausedSchema,
  nextFireAfter,
  planSchedule,
  scheduleDecider,
  type ScheduleCommand,
  type ScheduleEvent,
} from './schedules.decider.js';
import type { AutomationMetadata } from './webhooks.decider.js';

const spec = DeciderSpecification.for(scheduleDecider);
const isCode = (code: string) => (e: unknown) => e instanceof AppError && e.code === code;
const T0 = '2026-03-01T10:01:00.000Z';
const meta = (timestamp = T0): AutomationMetadata => ({ timestamp, correlationId: 'corr-s', actor: 'mcp:automation' });
const ID = '0190a000-0000-7000-8000-000000000011';
const target = { kind: 'workflow', template_id: 'tpl', input: {} };

const create = (
  over: Partial<{ cron: string; after: string; timezone: string }> = { cron: '*/5 * * * *' },
  id = ID,
): ScheduleCommand => ({
  type: 'CreateSchedule',
  data: { id, name: 'report', timezone: 'UTC', target, ...over },
  metadata: meta(),
});
const created = (id = ID): ScheduleEvent => ({
  type: 'ScheduleCreated',
  data: {
    id,
    name: 'report',
    cron: '*/5 * * * *',
    run_once: false,
    timezone: 'UTC',
    target,
    next_fire_at: '2026-03-01T10:05:00.000Z',
    created_at: T0,
  },
  metadata: meta(),
});
const oneShot: ScheduleEvent = {
  type: 'ScheduleCreated',
  data: {
    id: ID,
    name: 'report',
    cron: null,
    run_once: true,
    timezone: 'UTC',
    target,
    next_fire_at: '2026-03-08T10:01:00.000Z',
    created_at: T0,
  },
  metadata: meta(),
};
const pause = (t = T0): ScheduleCommand => ({ type: 'PauseSchedule', data: { name: 'report' }, metadata: meta(t) });
const resume = (t: string): ScheduleCommand => ({
  type: 'ResumeSchedule',
  data: { name: 'report' },
  metadata: meta(t),
});
const paused = (t = T0): ScheduleEvent => ({
  type: 'SchedulePaused',
  data: { id: ID, name: 'report', paused_at: t },
  metadata: meta(t),
});

describe('Schedule: none', () => {
  it('CreateSchedule with cron plans the next occurrence after the command time', () => {
    spec.given([]).when(create()).then([created()]);
  });
  it('CreateSchedule records the person it is made for as its owner', () => {
    const mine = create();
    spec
      .given([])
      .when({ ...mine, data: { ...(mine.data as object), owner: 'apikey:a' } } as ScheduleCommand)
      .then([{ ...created(), data: { ...(created().data as object), owner: 'apikey:a' } } as ScheduleEvent]);
  });
  it('CreateSchedule with after plans one fire that long after the command time', () => {
    spec
      .given([])
      .when(create({ after: '7d' }))
      .then([oneShot]);
  });
  it('refuses both or neither of cron and after, a bad cron, a bad time zone', () => {
    spec
      .given([])
      .when(create({ cron: '* * * * *', after: '1h' }))
      .thenThrows(isCode('validation'));
    spec.given([]).when(create({})).thenThrows(isCode('validation'));
    spec
      .given([])
      .when(create({ cron: '99 * * * *' }))
      .thenThrows(isCode('validation'));
    // Seconds are a sixth field: more often than once a minute is refused.
    spec
      .given([])
      .when(create({ cron: '*/10 * * * * *' }))
      .thenThrows(isCode('validation'));
    spec
      .given([])
      .when(create({ cron: '0,30 * * * * *' }))
      .thenThrows(isCode('validation'));
    // Once a minute is fine, also where a time zone's DST change makes the parser's fires come out of order.
    assert.doesNotThrow(() => planSchedule({ cron: '0 * * * * *', timezone: 'UTC' }, new Date(T0)));
    assert.doesNotThrow(() =>
      planSchedule({ cron: '*/15 * * * *', timezone: 'Pacific/Chatham' }, new Date('2026-04-04T13:05:00Z')),
    );
    assert.doesNotThrow(() =>
      planSchedule({ cron: '0,1 * * * *', timezone: 'Australia/Lord_Howe' }, new Date('2026-04-04T14:00:00Z')),
    );
    spec
      .given([])
      .when(create({ after: '1h', timezone: 'Nowhere/Land' }))
      .thenThrows(isCode('validation'));
  });
  it('PauseSchedule, ResumeSchedule, DeleteSchedule: not_found', () => {
    spec.given([]).when(pause()).thenThrows(isCode('not_found'));
    spec.given([]).when(resume(T0)).thenThrows(isCode('not_found'));
    spec
      .given([])
      .when({ type: 'DeleteSchedule', data: { name: 'report' }, metadata: meta() })
      .thenThrows(isCode('not_found'));
  });
});

describe('Schedule: active', () => {
  it('CreateSchedule again: illegal_state "already exists"', () => {
    const e = spec
      .given([created()])
      .when(create({ cron: '0 * * * *' }, '0190a000-0000-7000-8000-000000000012'))
      .thenThrows<AppError>(isCode('illegal_state'));
    assert.equal(e.message, 'schedule "report" already exists');
  });
  it('PauseSchedule records the pause; ResumeSchedule changes nothing', () => {
    spec.given([created()]).when(pause()).then([paused()]);
    spec.given([created()]).when(resume(T0)).thenNothingHappened();
  });
  it('DeleteSchedule by a stale id: not_found', () => {
    spec
      .given([created()])
      .when({
        type: 'DeleteSchedule',
        data: { name: 'report', id: '0190a000-0000-7000-8000-000000000099' },
        metadata: meta(),
      })
      .thenThrows(isCode('not_found'));
  });
});

describe('Schedule: paused', () => {
  it('PauseSchedule again changes nothing', () => {
    spec.given([created(), paused()]).when(pause()).thenNothingHappened();
  });
  it('ResumeSchedule of a cron schedule plans the next occurrence after the resume time', () => {
    const t = '2026-03-02T08:07:00.000Z';
    spec
      .given([created(), paused()])
      .when(resume(t))
      .then([
        {
          type: 'ScheduleResumed',
          data: { id: ID, name: 'report', next_fire_at: '2026-03-02T08:10:00.000Z', resumed_at: t },
          metadata: meta(t),
        },
      ]);
  });
  it('ResumeSchedule of a one-shot schedule keeps its time', () => {
    const t = '2026-03-02T08:07:00.000Z';
    spec
      .given([oneShot, paused()])
      .when(resume(t))
      .then([
        {
          type: 'ScheduleResumed',
          data: { id: ID, name: 'report', next_fire_at: '2026-03-08T10:01:00.000Z', resumed_at: t },
          metadata: meta(t),
        },
      ]);
  });
  it('ResumeSchedule of an active schedule by someone else takes it over; by its owner, or nobody, changes nothing', () => {
    const t = '2026-03-02T08:07:00.000Z';
    const ownedByA: ScheduleEvent = {
      ...created(),
      data: { ...(created().data as object), owner: 'apikey:a' } as never,
    };
    const resumeBy = (owner?: string): ScheduleCommand => ({
      type: 'ResumeSchedule',
      data: { name: 'report', ...(owner ? { owner } : {}) },
      metadata: meta(t),
    });
    spec.given([ownedByA]).when(resumeBy('apikey:a')).thenNothingHappened();
    spec.given([ownedByA]).when(resumeBy()).thenNothingHappened();
    spec
      .given([ownedByA])
      .when(resumeBy('apikey:b'))
      .then([
        {
          type: 'ScheduleResumed',
          data: { id: ID, name: 'report', next_fire_at: '2026-03-02T08:10:00.000Z', resumed_at: t, owner: 'apikey:b' },
          metadata: meta(t),
        },
      ]);
  });
  it("the system's pause of a schedule whose template is gone says why, and an event that says so reads back", () => {
    const missing: ScheduleEvent = {
      type: 'SchedulePaused',
      data: { id: ID, name: 'report', paused_at: T0, reason: 'target_missing' },
      metadata: meta(),
    };
    spec
      .given([created()])
      .when({ type: 'PauseSchedule', data: { name: 'report', reason: 'target_missing' }, metadata: meta() })
      .then([missing]);
    assert.equal(schedulePausedSchema.parse(missing.data).reason, 'target_missing');
    assert.throws(() => schedulePausedSchema.parse({ ...missing.data, reason: 'bored' }));
  });
  it("ResumeSchedule by a person makes them its owner; the system's pause of a revoked owner's schedule says why", () => {
    const t = '2026-03-02T08:07:00.000Z';
    const byB = { ...meta(t), actor: 'apikey:b' };
    const ownedByA: ScheduleEvent = {
      ...created(),
      data: { ...(created().data as object), owner: 'apikey:a' } as never,
    };
    const revokedPause: ScheduleEvent = {
      type: 'SchedulePaused',
      data: { id: ID, name: 'report', paused_at: T0, reason: 'owner_revoked' },
      metadata: meta(),
    };
    spec
      .given([ownedByA])
      .when({ type: 'PauseSchedule', data: { name: 'report', reason: 'owner_revoked' }, metadata: meta() })
      .then([revokedPause]);
    spec
      .given([ownedByA, revokedPause])
      .when({ type: 'ResumeSchedule', data: { name: 'report', owner: 'apikey:b' }, metadata: byB })
      .then([
        {
          type: 'ScheduleResumed',
          data: {
            id: ID,
            name: 'report',
            next_fire_at: '2026-03-02T08:10:00.000Z',
            resumed_at: t,
            owner: 'apikey:b',
          },
          metadata: byB,
        },
      ]);
  });
  it('DeleteSchedule records the deletion; the name may then be used again', () => {
    const gone: ScheduleEvent = {
      type: 'ScheduleDeleted',
      data: { id: ID, name: 'report', deleted_at: T0 },
      metadata: meta(),
    };
    spec
      .given([created(), paused()])
      .when({ type: 'DeleteSchedule', data: { name: 'report', id: ID }, metadata: meta() })
      .then([gone]);
    spec.given([created(), gone]).when(create()).then([created()]);
  });
  it('DeleteSchedule with missingOk: a schedule not there (never, deleted, the id meant replaced) records nothing; one there is deleted, by its owner only', () => {
    const del = (data: Partial<Extract<ScheduleCommand, { type: 'DeleteSchedule' }>['data']>): ScheduleCommand => ({
      type: 'DeleteSchedule',
      data: { name: 'report', missingOk: true, ...data },
      metadata: meta(),
    });
    const gone: ScheduleEvent = {
      type: 'ScheduleDeleted',
      data: { id: ID, name: 'report', deleted_at: T0 },
      metadata: meta(),
    };
    spec.given([]).when(del({})).thenNothingHappened();
    spec
      .given([created(), gone])
      .when(del({ id: ID }))
      .thenNothingHappened();
    spec
      .given([created(), gone, created('0190a000-0000-7000-8000-000000000012')])
      .when(del({ id: ID }))
      .thenNothingHappened();
    spec
      .given([created()])
      .when(del({ id: ID }))
      .then([gone]);
    const owned: ScheduleEvent = { ...oneShot, data: { ...oneShot.data, owner: 'apikey:a' } };
    spec
      .given([owned])
      .when(del({ id: ID, caller: { actor: 'apikey:b', admin: false } }))
      .thenThrows(isCode('forbidden'));
  });
  it("DeleteSchedule by the system's retention records why, also for another person's one-shot", () => {
    const owned: ScheduleEvent = { ...oneShot, data: { ...oneShot.data, owner: 'apikey:a' } };
    const retention: AutomationMetadata = { ...meta('2026-04-02T00:00:00.000Z'), actor: 'mcp:automation:retention' };
    spec
      .given([owned])
      .when({ type: 'DeleteSchedule', data: { name: 'report', id: ID, reason: 'expired' }, metadata: retention })
      .then([
        {
          type: 'ScheduleDeleted',
          data: { id: ID, name: 'report', deleted_at: '2026-04-02T00:00:00.000Z', reason: 'expired' },
          metadata: retention,
        },
      ]);
  });
});

describe('nextFireAfter', () => {
  it("searches again past a half-hour DST change where cron-parser gives up (Lord Howe's end of DST)", () => {
    // cron-parser 5.10 throws "loop limit exceeded" here; the fire after is noon the next day, at +10:30.
    assert.equal(
      nextFireAfter('0 12 * * *', 'Australia/Lord_Howe', new Date('2027-04-03T01:00:00Z')).toISOString(),
      '2027-04-04T01:30:00.000Z',
    );
    // A sparse one whose next fire is on that very day: 05:00 on Apr 4 2027, at +10:30.
    assert.equal(
      nextFireAfter('0 5 7,4 12,4 *', 'Australia/Lord_Howe', new Date('2026-12-06T18:00:00Z')).toISOString(),
      '2027-04-03T18:30:00.000Z',
    );
    assert.throws(() => nextFireAfter('0 12 * * *', 'Nowhere/Else', new Date()), isCode('validation'));
  });
});

describe('planSchedule', () => {
  it('is the first fire strictly after now, in the schedule time zone', () => {
    assert.equal(
      planSchedule(
        { cron: '0 9 * * *', timezone: 'America/New_York' },
        new Date('2026-07-01T00:00:00Z'),
      ).next.toISOString(),
      '2026-07-01T13:00:00.000Z',
    );
  });
});
