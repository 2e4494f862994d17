import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { solveSchedule, verifySchedule, type ScheduleProblem } from './scheduling.js';
import { dependencyLevels, optimiseWorkflow, performanceReport, type ExecutionRecord } from './executions.js';
import { analyseSentiment, classifyIntent, decideEscalation, detectUrgency } from './support.js';

describe('schedule MIP', () => {
  const problem: ScheduleProblem = {
    staff: [
      { id: 1, name: 'cheap', skills: ['support'], maxHoursPerWeek: 16, hourlyCost: 20 },
      { id: 2, name: 'pricey', skills: ['support', 'eng'], maxHoursPerWeek: 40, hourlyCost: 50 },
      { id: 3, name: 'eng', skills: ['eng'], maxHoursPerWeek: 8, hourlyCost: 40 },
    ],
    shifts: [
      { id: 1, day: '2026-07-06', slot: 'am', hours: 8, requiredSkill: 'support', headcount: 1 },
      { id: 2, day: '2026-07-07', slot: 'am', hours: 8, requiredSkill: 'support', headcount: 1 },
      { id: 3, day: '2026-07-08', slot: 'am', hours: 8, requiredSkill: 'support', headcount: 1 },
      { id: 4, day: '2026-07-06', slot: 'pm', hours: 8, requiredSkill: 'eng', headcount: 2 },
    ],
    availability: [
      ...['2026-07-06', '2026-07-07', '2026-07-08'].flatMap((day) =>
        [1, 2].map((staffId) => ({ staffId, day, slot: 'am' })),
      ),
      { staffId: 2, day: '2026-07-06', slot: 'pm' },
      { staffId: 3, day: '2026-07-06', slot: 'pm' },
    ],
    uncoveredPenalty: 1000,
    maxShiftsPerDay: 1,
  };

  it('finds the optimum: cheap staff up to the hour limit, no double booking, shortfall reported', () => {
    const r = solveSchedule(problem);
    assert.equal(r.status, 'optimal');
    assert.deepEqual(r.violations, []);
    // cheap (16 h max) takes two support days; pricey the third support day OR the eng pm on
    // 07-06. Optimal: eng pm needs 2 people (pricey + eng), so pricey cannot also work 07-06 am.
    const byShift = (id: number) =>
      r.assignments
        .filter((a) => a.shiftId === id)
        .map((a) => a.staffId)
        .sort();
    assert.deepEqual(byShift(4), [2, 3]);
    assert.deepEqual(byShift(1), [1]);
    assert.equal(r.objective.uncoveredPersonShifts, 0);
    // cheap works 07-06 and one other day; pricey covers the remaining support day
    assert.equal(r.objective.laborCost, 2 * 8 * 20 + 8 * 50 + 8 * 50 + 8 * 40);
    assert.deepEqual(verifySchedule(problem, r.assignments), []);
  });

  it('reports demand nobody can cover instead of failing', () => {
    const r = solveSchedule({
      ...problem,
      shifts: [
        ...problem.shifts,
        { id: 5, day: '2026-07-09', slot: 'am', hours: 8, requiredSkill: 'support', headcount: 2 },
      ],
    });
    assert.equal(r.status, 'optimal');
    assert.deepEqual(r.uncovered, [
      { shiftId: 5, day: '2026-07-09', slot: 'am', requiredSkill: 'support', missing: 2 },
    ]);
    assert.equal(r.objective.uncoveredPersonShifts, 2);
    assert.equal(r.objective.penalisedTotal, r.objective.laborCost + 2 * 1000);
    assert.equal(r.coverage.ratio, Math.round((5 / 7) * 10000) / 10000);
  });

  it('verifySchedule catches each kind of violation', () => {
    const bad = [
      { shiftId: 4, staffId: 1, day: '2026-07-06', slot: 'pm', hours: 8, cost: 160 },
      { shiftId: 1, staffId: 1, day: '2026-07-06', slot: 'am', hours: 8, cost: 160 },
      { shiftId: 2, staffId: 1, day: '2026-07-07', slot: 'am', hours: 8, cost: 160 },
    ];
    const v = verifySchedule(problem, bad).join('\n');
    assert.match(v, /lacks skill eng/);
    assert.match(v, /not available 2026-07-06 pm/);
    assert.match(v, /24h > max 16h/);
    assert.match(v, /2 shifts in one day/);
  });
});

const t0 = Date.parse('2026-06-01T00:00:00Z');
const iso = (ms: number): string => new Date(ms).toISOString();
/** fetch → (enrich, score) sequential although both depend only on fetch → publish. */
function makeRecords(): ExecutionRecord[] {
  return Array.from({ length: 20 }, (_, i) => {
    // one execution a day, starting at 00:00, 01:00 or 02:00 UTC
    const s0 = t0 + (i % 10 === 0 ? 2 : i % 2) * 3_600_000 + i * 86_400_000;
    const failEnrich = i % 4 === 0;
    const steps: ExecutionRecord['steps'] = [
      {
        stepId: 'fetch',
        status: 'succeeded',
        startedAt: iso(s0),
        finishedAt: iso(s0 + 1000),
        attempt: 1,
        dependsOn: [],
      },
      {
        stepId: 'enrich',
        status: failEnrich ? 'failed' : 'succeeded',
        startedAt: iso(s0 + 1000),
        finishedAt: iso(s0 + 6000),
        attempt: 1,
        dependsOn: ['fetch'],
        ...(failEnrich ? { error: 'upstream 503 Service Unavailable' } : {}),
      },
    ];
    let t = s0 + 6000;
    if (failEnrich) {
      steps.push({
        stepId: 'enrich',
        status: 'succeeded',
        startedAt: iso(t),
        finishedAt: iso(t + 5000),
        attempt: 2,
        dependsOn: ['fetch'],
      });
      t += 5000;
    }
    steps.push({
      stepId: 'score',
      status: 'succeeded',
      startedAt: iso(t),
      finishedAt: iso(t + 3000),
      attempt: 1,
      dependsOn: ['fetch'],
    });
    steps.push({
      stepId: 'review',
      status: 'succeeded',
      startedAt: iso(t + 3000),
      finishedAt: iso(t + 3000 + 600_000),
      attempt: 1,
      dependsOn: ['enrich', 'score'],
      kind: 'manual',
    });
    return { executionId: `e${i}`, steps };
  });
}

describe('execution analysis', () => {
  it('per-step percentiles and failure rates', () => {
    const r = performanceReport(makeRecords());
    const enrich = r.steps.find((s) => s.stepId === 'enrich')!;
    assert.equal(enrich.attempts, 25);
    assert.equal(enrich.failures, 5);
    assert.equal(enrich.failureRate, 0.2);
    assert.equal(enrich.durationMs.p50, 5000);
    assert.equal(enrich.retrySuccessRate, 1);
    assert.equal(r.successRate, 1); // every failed attempt was retried successfully
  });

  it('finds the bottleneck, the parallel pair, a retry policy and the automation candidate', () => {
    const o = optimiseWorkflow(makeRecords());
    assert.equal(o.bottlenecks[0]!.stepId, 'review');
    assert.deepEqual(
      o.parallelizable.map((p) => p.steps),
      [['enrich', 'score']],
    );
    assert.equal(o.parallelizable[0]!.estimatedSavingMs, 3000);
    const retry = o.retryProposals.find((p) => p.stepId === 'enrich')!;
    assert.equal(retry.transientFailureShare, 1);
    assert.equal(retry.maxAttempts, 3); // 0.2^3 = 0.8 % < 1 %
    assert.equal(o.automationCandidates[0]!.stepId, 'review');
    assert.equal(o.failureHotSpots[0]!.stepId, 'enrich');
  });

  it('dependency levels reject cycles', () => {
    assert.deepEqual(
      [
        ...dependencyLevels(
          new Map([
            ['a', []],
            ['b', ['a']],
            ['c', ['a']],
            ['d', ['b', 'c']],
          ]),
        ),
      ],
      [
        ['a', 0],
        ['b', 1],
        ['c', 1],
        ['d', 2],
      ],
    );
    assert.throws(
      () =>
        dependencyLevels(
          new Map([
            ['a', ['b']],
            ['b', ['a']],
          ]),
        ),
      /cycle/,
    );
  });
});

describe('support classification', () => {
  const labelled: [string, string][] = [
    ['I was charged twice on my credit card this month, please refund', 'billing'],
    ['Where can I download the invoice PDF for March?', 'billing'],
    ['The API keeps returning 503 errors since this morning', 'technical'],
    ['CSV export fails with an error every time', 'technical'],
    ['I cannot log in, the password reset link does not work', 'account_access'],
    ['We want to cancel our subscription at the end of the month', 'cancellation'],
    ['It would be great if reports could be scheduled. Feature request!', 'feature_request'],
    ['Hello, what are your office hours?', 'general'],
  ];
  for (const [text, intent] of labelled) {
    it(`"${text.slice(0, 40)}…" → ${intent}`, () => assert.equal(classifyIntent(text).intent, intent));
  }

  it('sentiment and urgency drive escalation', () => {
    const angry = 'This is UNACCEPTABLE!! Production is down for all our users and nobody answers. Terrible service.';
    const s = analyseSentiment(angry);
    assert.equal(s.label, 'negative');
    const u = detectUrgency(angry);
    assert.ok(u.urgent);
    const d = decideEscalation(classifyIntent(angry).intent, s, u, null);
    assert.ok(d.escalate);
    assert.equal(d.priority, 'p1');
    const calm = 'Thanks, where do I find my invoice?';
    const dc = decideEscalation(classifyIntent(calm).intent, analyseSentiment(calm), detectUrgency(calm), null);
    assert.deepEqual(dc, { escalate: false, priority: 'p3', reasons: [] });
  });
});
