import { z } from 'zod';
import type pg from 'pg';
import { AppError } from '@switchyard/platform';
import { defineTask } from '../types.js';
import { addDays } from '../lib/dates.js';
import { solveSchedule, type ScheduleProblem } from '../lib/scheduling.js';
import { performanceReport } from '../lib/executions.js';
import { BUSINESS_DATA_MISSING, checkAborted } from './common.js';
import { builtinTaskTypes, scheduleOptimizationInput } from '@switchyard/contracts';

// ---------- schedule_optimization ----------

export type ScheduleOptimizationInput = z.infer<typeof scheduleOptimizationInput>;

/** A run of calendar days, both ends included. */
export interface Period {
  readonly from: string;
  readonly to: string;
  readonly days: number;
}

const daysOf = (from: string, to: string): number => Math.round((Date.parse(to) - Date.parse(from)) / 86_400_000) + 1;

/** Staff, shift demand and availability for the period asked for, straight from business.*, with that period. */
export async function loadScheduleProblem(
  pool: pg.Pool,
  input: ScheduleOptimizationInput,
): Promise<ScheduleProblem & { readonly requested: Period }> {
  const start =
    input.from ??
    (await pool.query<{ d: string | null }>(`select min(day)::text as d from business.shifts`)).rows[0]?.d ??
    undefined;
  if (!start)
    throw new AppError('illegal_state', 'no shifts in business.shifts (run the demo-data loader)', {
      reason: BUSINESS_DATA_MISSING,
    });
  const end = addDays(start, input.days - 1);
  const [staff, shifts, availability] = await Promise.all([
    pool.query<{ id: number; name: string; skills: string[]; maxHoursPerWeek: number; hourlyCost: number }>(
      `select id, name, skills, max_hours_week as "maxHoursPerWeek", hourly_cost::float8 as "hourlyCost" from business.staff order by id`,
    ),
    pool.query<{ id: number; day: string; slot: string; hours: number; requiredSkill: string; headcount: number }>(
      `select id, day::text as day, slot, hours, required_skill as "requiredSkill", headcount
         from business.shifts where day between $1 and $2 order by day, slot, id`,
      [start, end],
    ),
    pool.query<{ staffId: number; day: string; slot: string }>(
      `select staff_id as "staffId", day::text as day, slot from business.availability where day between $1 and $2`,
      [start, end],
    ),
  ]);
  if (shifts.rows.length === 0)
    throw new AppError('not_found', 'no shifts in the requested period', { from: start, to: end });
  return {
    staff: staff.rows,
    shifts: shifts.rows,
    availability: availability.rows,
    uncoveredPenalty: input.uncoveredPenalty,
    maxShiftsPerDay: input.maxShiftsPerDay,
    requested: { from: start, to: end, days: input.days },
  };
}

/**
 * What a schedule covers of the period asked for: the first to the last day with shifts, and a
 * warning when that is not the whole period or days inside it have none (the data holds shifts
 * for some days only: a schedule for part of the period must not read as one for all of it).
 */
export function coverageOf(
  requested: Period,
  shiftDays: readonly string[],
): { readonly period: Period; readonly warnings: string[] } {
  const days = [...new Set(shiftDays)].sort();
  const period = { from: days[0]!, to: days[days.length - 1]!, days: daysOf(days[0]!, days[days.length - 1]!) };
  if (days.length === requested.days) return { period, warnings: [] };
  const gaps = period.days - days.length;
  return {
    period,
    warnings: [
      `business.shifts has shifts on ${days.length} of the ${requested.days} days asked for (${requested.from} to ${requested.to}): ` +
        `the schedule covers ${period.from} to ${period.to}` +
        (gaps > 0 ? `, where ${gaps} day${gaps === 1 ? ' has' : 's have'} no shifts` : '') +
        '; the other days have nothing to staff',
    ],
  };
}

export async function scheduleOptimization(pool: pg.Pool, input: ScheduleOptimizationInput, signal: AbortSignal) {
  const { requested, ...problem } = await loadScheduleProblem(pool, input);
  checkAborted(signal);
  const result = solveSchedule(problem, input.timeoutMs);
  if (result.violations.length > 0) {
    // The solver's answer is re-checked independently; a violation here is a bug, not a result.
    throw new AppError('internal', 'solver returned an infeasible schedule', { violations: result.violations });
  }
  const { period, warnings } = coverageOf(
    requested,
    problem.shifts.map((x) => x.day),
  );
  return { requestedPeriod: requested, period, warnings, ...result };
}

// ---------- performance_analysis ----------

export const operationsManagerTasks = {
  schedule_optimization: defineTask({
    taskType: 'schedule_optimization',
    ...builtinTaskTypes.schedule_optimization,
    handle: (input, ctx) => scheduleOptimization(ctx.pool, input, ctx.signal),
  }),
  performance_analysis: defineTask({
    taskType: 'performance_analysis',
    ...builtinTaskTypes.performance_analysis,
    handle: async (input) => performanceReport(input.executions),
  }),
};
