import type { z } from 'zod';
import { executionRecordSchema, stepRecordSchema } from '@switchyard/contracts';
import { percentile, round } from './stats.js';

export { stepRecordSchema, executionRecordSchema };
export type StepRecord = z.infer<typeof stepRecordSchema>;
export type ExecutionRecord = z.infer<typeof executionRecordSchema>;

const ms = (iso: string): number => Date.parse(iso);
const isFailure = (s: StepRecord): boolean => s.status === 'failed' || s.status === 'timed_out';
/** Errors that a retry can plausibly fix: timeouts, resets, throttling, 5xx unavailability. */
const TRANSIENT =
  /time[d ]?out|timed out|ECONNRESET|ECONNREFUSED|EAI_AGAIN|socket hang up|unavailable|\b50[234]\b|\b429\b|rate.?limit|temporar|try again/i;

export interface StepStats {
  readonly stepId: string;
  readonly name: string;
  readonly attempts: number;
  readonly executions: number;
  readonly failures: number;
  readonly failureRate: number;
  readonly durationMs: { readonly p50: number; readonly p95: number; readonly mean: number; readonly max: number };
  readonly transientFailureShare: number;
  readonly topErrors: { error: string; count: number }[];
  /** of the failed attempts that were retried, how many later attempts succeeded */
  readonly retrySuccessRate: number | null;
  readonly kind?: string;
}

export interface PerformanceReport {
  readonly executions: number;
  readonly successRate: number;
  readonly executionDurationMs: { readonly p50: number; readonly p95: number; readonly mean: number };
  readonly steps: StepStats[];
}

export function stepStats(records: readonly ExecutionRecord[]): StepStats[] {
  const byStep = new Map<string, { rec: StepRecord; exec: string; all: StepRecord[] }[]>();
  for (const r of records) {
    for (const s of r.steps) {
      const list = byStep.get(s.stepId) ?? [];
      list.push({ rec: s, exec: r.executionId, all: r.steps });
      byStep.set(s.stepId, list);
    }
  }
  const out: StepStats[] = [];
  for (const [stepId, list] of byStep) {
    const durations = list.map((x) => Math.max(0, ms(x.rec.finishedAt) - ms(x.rec.startedAt)));
    const failures = list.filter((x) => isFailure(x.rec));
    const transient = failures.filter((x) => TRANSIENT.test(x.rec.error ?? x.rec.status));
    const errors = new Map<string, number>();
    for (const f of failures) {
      const key = (f.rec.error ?? f.rec.status).slice(0, 120);
      errors.set(key, (errors.get(key) ?? 0) + 1);
    }
    let retried = 0;
    let recovered = 0;
    for (const f of failures) {
      const later = f.all.filter((s) => s.stepId === stepId && s.attempt > f.rec.attempt);
      if (later.length > 0) {
        retried++;
        if (later.some((s) => s.status === 'succeeded')) recovered++;
      }
    }
    out.push({
      stepId,
      name: list.find((x) => x.rec.name)?.rec.name ?? stepId,
      attempts: list.length,
      executions: new Set(list.map((x) => x.exec)).size,
      failures: failures.length,
      failureRate: round(failures.length / list.length, 4),
      durationMs: {
        p50: round(percentile(durations, 0.5), 1),
        p95: round(percentile(durations, 0.95), 1),
        mean: round(durations.reduce((a, b) => a + b, 0) / durations.length, 1),
        max: Math.max(...durations),
      },
      transientFailureShare: failures.length === 0 ? 0 : round(transient.length / failures.length, 4),
      topErrors: [...errors]
        .map(([error, count]) => ({ error, count }))
        .sort((a, b) => b.count - a.count)
        .slice(0, 3),
      retrySuccessRate: retried === 0 ? null : round(recovered / retried, 4),
      ...(list.find((x) => x.rec.kind)?.rec.kind ? { kind: list.find((x) => x.rec.kind)!.rec.kind! } : {}),
    });
  }
  return out.sort((a, b) => b.durationMs.p95 - a.durationMs.p95);
}

function executionSpan(r: ExecutionRecord): { start: number; end: number } {
  return {
    start: Math.min(...r.steps.map((s) => ms(s.startedAt))),
    end: Math.max(...r.steps.map((s) => ms(s.finishedAt))),
  };
}

/** An execution succeeded when the last attempt of every step succeeded or was skipped. */
export function executionSucceeded(r: ExecutionRecord): boolean {
  const last = new Map<string, StepRecord>();
  for (const s of r.steps) {
    const prev = last.get(s.stepId);
    if (!prev || s.attempt >= prev.attempt) last.set(s.stepId, s);
  }
  return [...last.values()].every((s) => !isFailure(s));
}

export function performanceReport(records: readonly ExecutionRecord[]): PerformanceReport {
  const durations = records.map((r) => {
    const { start, end } = executionSpan(r);
    return end - start;
  });
  return {
    executions: records.length,
    successRate: round(records.filter(executionSucceeded).length / records.length, 4),
    executionDurationMs: {
      p50: round(percentile(durations, 0.5), 1),
      p95: round(percentile(durations, 0.95), 1),
      mean: round(durations.reduce((a, b) => a + b, 0) / durations.length, 1),
    },
    steps: stepStats(records),
  };
}

export interface Bottleneck {
  readonly stepId: string;
  /** median share of the execution's wall time spent in this step */
  readonly medianShareOfExecution: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly reason: string;
}

export interface ParallelGroup {
  readonly steps: string[];
  readonly level: number;
  /** executions in which these steps did not overlap in time */
  readonly observedSequentialShare: number;
  /** Σ median durations − max median duration: time saved per execution if run together */
  readonly estimatedSavingMs: number;
}

export interface RetryProposal {
  readonly stepId: string;
  readonly failureRate: number;
  readonly transientFailureShare: number;
  readonly proposal: string;
  readonly maxAttempts: number;
  readonly backoff: { readonly initialMs: number; readonly multiplier: number; readonly maxMs: number } | null;
  /** failure probability per execution after the proposal, assuming independent attempts */
  readonly expectedFailureRateAfter: number;
}

export interface ScheduleProposal {
  readonly hourUtc: number;
  readonly runs: number;
  readonly failureRate: number;
  readonly p50DurationMs: number;
  readonly comparedTo: { readonly overallFailureRate: number; readonly overallP50DurationMs: number };
  readonly proposal: string;
}

export interface AutomationCandidate {
  readonly stepId: string;
  readonly kind: string;
  readonly runs: number;
  readonly medianHandlingMs: number;
  readonly totalHandlingHours: number;
  readonly proposal: string;
}

export interface WorkflowOptimization {
  readonly performance: PerformanceReport;
  readonly bottlenecks: Bottleneck[];
  readonly failureHotSpots: {
    stepId: string;
    failures: number;
    attempts: number;
    failureRate: number;
    topErrors: { error: string; count: number }[];
  }[];
  readonly parallelizable: ParallelGroup[];
  readonly dependencyInfo: 'declared' | 'not_declared';
  readonly retryProposals: RetryProposal[];
  readonly scheduleProposals: ScheduleProposal[];
  readonly automationCandidates: AutomationCandidate[];
}

/** Longest-path level of each step in the declared dependency DAG (roots are level 0). */
export function dependencyLevels(deps: ReadonlyMap<string, readonly string[]>): Map<string, number> {
  const level = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (id: string): number => {
    const known = level.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id)) throw new Error(`dependency cycle through ${id}`);
    visiting.add(id);
    const parents = deps.get(id) ?? [];
    const l = parents.length === 0 ? 0 : 1 + Math.max(...parents.map(visit));
    visiting.delete(id);
    level.set(id, l);
    return l;
  };
  for (const id of deps.keys()) visit(id);
  return level;
}

export function optimiseWorkflow(
  records: readonly ExecutionRecord[],
  opts: { hotSpotRate?: number } = {},
): WorkflowOptimization {
  const performance = performanceReport(records);
  const hotSpotRate = opts.hotSpotRate ?? 0.05;

  // 1. Bottlenecks: share of each execution's wall time spent in a step, median over executions.
  const shares = new Map<string, number[]>();
  for (const r of records) {
    const { start, end } = executionSpan(r);
    const total = Math.max(1, end - start);
    const perStep = new Map<string, number>();
    for (const s of r.steps) perStep.set(s.stepId, (perStep.get(s.stepId) ?? 0) + (ms(s.finishedAt) - ms(s.startedAt)));
    for (const [id, d] of perStep) shares.set(id, [...(shares.get(id) ?? []), d / total]);
  }
  const bottlenecks = performance.steps
    .map((s) => ({ s, share: percentile(shares.get(s.stepId) ?? [0], 0.5) }))
    .sort((a, b) => b.share - a.share)
    .filter((x, i) => i === 0 || x.share >= 0.25)
    .map(({ s, share }) => ({
      stepId: s.stepId,
      medianShareOfExecution: round(share, 4),
      p50Ms: s.durationMs.p50,
      p95Ms: s.durationMs.p95,
      reason: `takes a median ${round(share * 100, 1)}% of each execution (p50 ${s.durationMs.p50} ms, p95 ${s.durationMs.p95} ms)`,
    }));

  // 2. Failure hot spots: steps whose attempt failure rate is above the threshold.
  const failureHotSpots = performance.steps
    .filter((s) => s.failureRate >= hotSpotRate)
    .sort((a, b) => b.failureRate - a.failureRate)
    .map((s) => ({
      stepId: s.stepId,
      failures: s.failures,
      attempts: s.attempts,
      failureRate: s.failureRate,
      topErrors: s.topErrors,
    }));

  // 3. Parallelism from declared dependencies: steps on the same DAG level do not depend on
  //    each other; if they ran one after another, running them together saves time.
  const deps = new Map<string, string[]>();
  let declared = false;
  for (const r of records) {
    for (const s of r.steps) {
      if (s.dependsOn) declared = true;
      const merged = new Set([...(deps.get(s.stepId) ?? []), ...(s.dependsOn ?? [])]);
      deps.set(s.stepId, [...merged]);
    }
  }
  const parallelizable: ParallelGroup[] = [];
  if (declared) {
    const levels = dependencyLevels(deps);
    const byLevel = new Map<number, string[]>();
    for (const [id, l] of levels) byLevel.set(l, [...(byLevel.get(l) ?? []), id]);
    const p50 = new Map(performance.steps.map((s) => [s.stepId, s.durationMs.p50]));
    for (const [level, ids] of [...byLevel].sort((a, b) => a[0] - b[0])) {
      if (ids.length < 2) continue;
      let sequential = 0;
      let seen = 0;
      for (const r of records) {
        const spans = ids
          .map((id) => r.steps.filter((s) => s.stepId === id))
          .filter((ss) => ss.length > 0)
          .map((ss) => ({
            start: Math.min(...ss.map((s) => ms(s.startedAt))),
            end: Math.max(...ss.map((s) => ms(s.finishedAt))),
          }))
          .sort((a, b) => a.start - b.start);
        if (spans.length < 2) continue;
        seen++;
        if (spans.every((sp, i) => i === 0 || sp.start >= spans[i - 1]!.end)) sequential++;
      }
      const meds = ids.map((id) => p50.get(id) ?? 0);
      const share = seen === 0 ? 0 : sequential / seen;
      if (share >= 0.5) {
        parallelizable.push({
          steps: [...ids].sort(),
          level,
          observedSequentialShare: round(share, 4),
          estimatedSavingMs: round(meds.reduce((a, b) => a + b, 0) - Math.max(...meds), 1),
        });
      }
    }
  }

  // 4. Retries: transient failures get bounded exponential backoff; attempts are chosen so the
  //    residual failure probability p^attempts drops below 1 % (capped at 5 attempts).
  const retryProposals: RetryProposal[] = performance.steps
    .filter((s) => s.failures > 0)
    .map((s) => {
      const p = s.failureRate;
      if (s.transientFailureShare >= 0.5 && p < 0.9) {
        const maxAttempts = Math.min(5, Math.max(2, Math.ceil(Math.log(0.01) / Math.log(p))));
        const initialMs = Math.max(500, Math.round(s.durationMs.p50 / 2));
        return {
          stepId: s.stepId,
          failureRate: p,
          transientFailureShare: s.transientFailureShare,
          proposal: `retry up to ${maxAttempts} attempts with exponential backoff: ${round(s.transientFailureShare * 100, 1)}% of its ${s.failures} failures look transient`,
          maxAttempts,
          backoff: { initialMs, multiplier: 2, maxMs: Math.max(initialMs * 8, 30_000) },
          expectedFailureRateAfter: round(p ** maxAttempts, 6),
        };
      }
      return {
        stepId: s.stepId,
        failureRate: p,
        transientFailureShare: s.transientFailureShare,
        proposal: `do not add retries: only ${round(s.transientFailureShare * 100, 1)}% of its failures look transient; fix the cause (top error: ${s.topErrors[0]?.error ?? 'n/a'})`,
        maxAttempts: 1,
        backoff: null,
        expectedFailureRateAfter: p,
      };
    });

  // 5. Schedules: hours of the day (UTC, by execution start) whose failure rate is at least
  //    twice the overall one point at contention; propose the best-behaved hour instead.
  const byHour = new Map<number, { runs: number; failed: number; durations: number[] }>();
  for (const r of records) {
    const { start, end } = executionSpan(r);
    const h = new Date(start).getUTCHours();
    const b = byHour.get(h) ?? { runs: 0, failed: 0, durations: [] };
    b.runs++;
    if (!executionSucceeded(r)) b.failed++;
    b.durations.push(end - start);
    byHour.set(h, b);
  }
  const overallFailure = 1 - performance.successRate;
  const scheduleProposals: ScheduleProposal[] = [];
  const eligible = [...byHour].filter(([, b]) => b.runs >= 5);
  const bad = eligible.filter(([, b]) => overallFailure > 0 && b.failed / b.runs >= 2 * overallFailure);
  if (bad.length > 0) {
    const best = eligible
      .map(([h, b]) => ({ h, rate: b.failed / b.runs, p50: percentile(b.durations, 0.5), runs: b.runs }))
      .sort((a, b) => a.rate - b.rate || a.p50 - b.p50)[0]!;
    for (const [h, b] of bad.sort((x, y) => x[0] - y[0])) {
      scheduleProposals.push({
        hourUtc: h,
        runs: b.runs,
        failureRate: round(b.failed / b.runs, 4),
        p50DurationMs: round(percentile(b.durations, 0.5), 1),
        comparedTo: {
          overallFailureRate: round(overallFailure, 4),
          overallP50DurationMs: performance.executionDurationMs.p50,
        },
        proposal: `move runs starting at ${String(h).padStart(2, '0')}:00 UTC to ${String(best.h).padStart(2, '0')}:00 UTC (failure rate ${round(best.rate * 100, 1)}% over ${best.runs} runs vs ${round((b.failed / b.runs) * 100, 1)}%)`,
      });
    }
  }

  // 6. Automation candidates: manual/approval steps, ranked by total human handling time.
  const automationCandidates: AutomationCandidate[] = performance.steps
    .filter((s) => s.kind === 'manual' || s.kind === 'approval')
    .map((s) => {
      const totalHours = (s.durationMs.mean * s.attempts) / 3_600_000;
      return {
        stepId: s.stepId,
        kind: s.kind!,
        runs: s.attempts,
        medianHandlingMs: s.durationMs.p50,
        totalHandlingHours: round(totalHours, 2),
        proposal:
          s.kind === 'approval'
            ? `auto-approve below a threshold or set an SLA: ${s.attempts} approvals took ${round(totalHours, 1)} h in total (median ${round(s.durationMs.p50 / 60000, 1)} min)`
            : `automate with a tool step: ${s.attempts} manual runs took ${round(totalHours, 1)} h in total (median ${round(s.durationMs.p50 / 60000, 1)} min)`,
      };
    })
    .sort((a, b) => b.totalHandlingHours - a.totalHandlingHours);

  return {
    performance,
    bottlenecks,
    failureHotSpots,
    parallelizable,
    dependencyInfo: declared ? 'declared' : 'not_declared',
    retryProposals,
    scheduleProposals,
    automationCandidates,
  };
}
