/**
 * A step back of the wall clock (an NTP correction of a clock that ran fast), on a real
 * PostgreSQL, with two schedulers on one injected clock: the fires planned while the clock was
 * ahead are re-planned from the real time, once, and nothing recorded fires twice.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { pino } from 'pino';
import { freshDatabase } from '@switchyard/testing';
import { EgressGuard } from '../fetch/egress-guard.js';
import { AutomationService, type Clock, type TriggerRecord } from './automation-service.js';

class FakeClock implements Clock {
  constructor(private t: Date) {}
  now(): Date {
    return new Date(this.t);
  }
  set(iso: string): void {
    this.t = new Date(iso);
  }
}

const STEPPED = 'the clock went back';

describe('schedules after a step back of the clock (real Postgres)', () => {
  let pool: pg.Pool;
  const services: AutomationService[] = [];
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  const clock = new FakeClock(new Date('2026-03-01T10:00:30.000Z'));
  const triggers: TriggerRecord[] = [];
  let a: AutomationService;
  let b: AutomationService;

  function service(): AutomationService {
    const svc = new AutomationService({
      pool,
      logger,
      guard: new EgressGuard({ allowCidrs: ['127.0.0.0/8'] }),
      clock,
      delivery: { retries: 0, initialDelayMs: 5, maxDelayMs: 5, timeoutMs: 5000 },
      onTrigger: (t) => void triggers.push(t),
    });
    services.push(svc);
    return svc;
  }

  const stepWarnings = (): Record<string, unknown>[] =>
    lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => String(l['msg']).includes(STEPPED));

  async function firesOf(id: string): Promise<string[]> {
    const r = await pool.query<{ fire_at: Date }>(
      `SELECT fire_at FROM automation.triggers WHERE schedule_id = $1 ORDER BY fire_at`,
      [id],
    );
    return r.rows.map((x) => x.fire_at.toISOString());
  }

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('mcp_auto_clock'), max: 8 });
    a = service();
    b = service();
    await a.migrate();
  });

  after(async () => {
    for (const s of services) await s.close();
    await pool.end();
  });

  it('fires an every-minute schedule planned 2 h ahead at its next real occurrence, once', async () => {
    const minutely = await a.createSchedule({
      name: 'every-minute',
      cron: '* * * * *',
      timezone: 'UTC',
      target: { kind: 'workflow', template_id: 'tick', input: {} },
    });
    // A bystander whose plan is right whatever the step: not touched.
    const daily = await a.createSchedule({
      name: 'daily',
      cron: '0 9 * * *',
      timezone: 'UTC',
      target: { kind: 'workflow', template_id: 'tick', input: {} },
    });
    assert.equal(daily.next_fire_at, '2026-03-02T09:00:00.000Z');
    clock.set('2026-03-01T10:01:00.000Z');
    assert.equal(
      (await Promise.all([a.fireDue(), b.fireDue()])).reduce((x, y) => x + y),
      1,
    );

    // The host's clock runs 2 h fast: the missed minutes collapse into one fire, then it goes on.
    clock.set('2026-03-01T12:01:30.000Z');
    assert.equal(
      (await Promise.all([a.fireDue(), b.fireDue()])).reduce((x, y) => x + y),
      1,
    );
    clock.set('2026-03-01T12:02:00.000Z');
    assert.equal(
      (await Promise.all([a.fireDue(), b.fireDue()])).reduce((x, y) => x + y),
      1,
    );
    assert.deepEqual(await firesOf(minutely.id), [
      '2026-03-01T10:01:00.000Z',
      '2026-03-01T10:02:00.000Z',
      '2026-03-01T12:02:00.000Z',
    ]);
    assert.equal(stepWarnings().length, 0, 'a clock going forward re-plans nothing');

    // NTP steps it back to the real time: the plan (12:03) is 2 h ahead of the next occurrence.
    clock.set('2026-03-01T10:02:10.000Z');
    assert.equal(
      (await Promise.all([a.fireDue(), b.fireDue()])).reduce((x, y) => x + y),
      0,
      'not due yet',
    );
    const listed = (await a.listSchedules()).schedules;
    assert.equal(listed.find((s) => s.id === minutely.id)!.next_fire_at, '2026-03-01T10:03:00.000Z');
    assert.equal(listed.find((s) => s.id === daily.id)!.next_fire_at, '2026-03-02T09:00:00.000Z');
    const warned = stepWarnings();
    assert.equal(warned.length, 1, 'one warning, from one of the two schedulers');
    assert.equal(warned[0]!['level'], 40);
    assert.equal(warned[0]!['schedule'], 'every-minute');
    assert.equal(warned[0]!['plannedFireAt'], '2026-03-01T12:03:00.000Z');
    assert.equal(warned[0]!['nextFireAt'], '2026-03-01T10:03:00.000Z');
    assert.ok(Number(warned[0]!['clockSteppedBackMs']) > 7_000_000, JSON.stringify(warned[0]));

    clock.set('2026-03-01T10:03:00.000Z');
    assert.equal(
      (await Promise.all([a.fireDue(), b.fireDue()])).reduce((x, y) => x + y),
      1,
    );
    assert.equal(
      (await Promise.all([a.fireDue(), b.fireDue()])).reduce((x, y) => x + y),
      0,
      'fired once',
    );
    assert.deepEqual(await firesOf(minutely.id), [
      '2026-03-01T10:01:00.000Z',
      '2026-03-01T10:02:00.000Z',
      '2026-03-01T10:03:00.000Z',
      '2026-03-01T12:02:00.000Z',
    ]);
    assert.equal(stepWarnings().length, 1, 'the step is re-planned once');

    // The real time reaches the occurrence that fired while the clock was ahead: it stays the one fire.
    clock.set('2026-03-01T12:01:00.000Z');
    await Promise.all([a.fireDue(), b.fireDue()]);
    const seen = triggers.length;
    clock.set('2026-03-01T12:02:00.000Z');
    await Promise.all([a.fireDue(), b.fireDue()]);
    assert.equal(triggers.length, seen, 'nothing started again for 12:02');
    const fires = await firesOf(minutely.id);
    assert.equal(fires.filter((f) => f === '2026-03-01T12:02:00.000Z').length, 1);
    assert.equal(new Set(fires).size, fires.length);
    assert.equal(stepWarnings().length, 1);
    await a.deleteSchedule('every-minute');
    await a.deleteSchedule('daily');
  });

  it('fires a one-shot made while the clock was 2 h ahead its delay after the step, once', async () => {
    clock.set('2026-03-01T14:05:00.000Z');
    await Promise.all([a.fireDue(), b.fireDue()]);
    const once = await a.createSchedule({
      name: 'in-ten-minutes',
      after: '10m',
      timezone: 'UTC',
      target: { kind: 'workflow', template_id: 'tick', input: {} },
    });
    assert.equal(once.next_fire_at, '2026-03-01T14:15:00.000Z');
    const warnedBefore = stepWarnings().length;

    clock.set('2026-03-01T12:05:30.000Z');
    assert.equal(
      (await Promise.all([a.fireDue(), b.fireDue()])).reduce((x, y) => x + y),
      0,
    );
    const listed = (await a.listSchedules()).schedules.find((s) => s.id === once.id)!;
    assert.equal(listed.next_fire_at, '2026-03-01T12:15:30.000Z', 'ten minutes from the real time');
    const warned = stepWarnings().slice(warnedBefore);
    assert.equal(warned.length, 1);
    assert.equal(warned[0]!['schedule'], 'in-ten-minutes');

    clock.set('2026-03-01T12:15:29.999Z');
    assert.equal(
      (await Promise.all([a.fireDue(), b.fireDue()])).reduce((x, y) => x + y),
      0,
    );
    clock.set('2026-03-01T12:15:30.000Z');
    assert.equal(
      (await Promise.all([a.fireDue(), b.fireDue()])).reduce((x, y) => x + y),
      1,
    );
    clock.set('2026-03-01T14:15:00.000Z');
    assert.equal(
      (await Promise.all([a.fireDue(), b.fireDue()])).reduce((x, y) => x + y),
      0,
      'done once fired',
    );
    assert.deepEqual(await firesOf(once.id), ['2026-03-01T12:15:30.000Z']);
  });

  it('re-plans on the first tick of a scheduler that starts after the step', async () => {
    clock.set('2026-03-01T16:00:30.000Z');
    const hourly = await a.createSchedule({
      name: 'hourly',
      cron: '0 * * * *',
      timezone: 'UTC',
      target: { kind: 'workflow', template_id: 'tick', input: {} },
    });
    assert.equal(hourly.next_fire_at, '2026-03-01T17:00:00.000Z');
    clock.set('2026-03-01T14:10:00.000Z');
    const fresh = service();
    assert.equal(await fresh.fireDue(), 0);
    const listed = (await fresh.listSchedules()).schedules.find((s) => s.id === hourly.id)!;
    assert.equal(listed.next_fire_at, '2026-03-01T15:00:00.000Z');
    clock.set('2026-03-01T15:00:00.000Z');
    assert.equal(await fresh.fireDue(), 1);
    assert.deepEqual(await firesOf(hourly.id), ['2026-03-01T15:00:00.000Z']);
  });
});
