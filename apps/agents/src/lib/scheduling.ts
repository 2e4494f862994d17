import { solve, type Constraint, type Coefficients } from 'yalps';
import { round } from './stats.js';

export interface StaffMember {
  readonly id: number;
  readonly name: string;
  readonly skills: readonly string[];
  readonly maxHoursPerWeek: number;
  readonly hourlyCost: number;
}

/** A demand: `headcount` people with `requiredSkill` for one slot on one day. */
export interface ShiftDemand {
  readonly id: number;
  readonly day: string;
  readonly slot: string;
  readonly hours: number;
  readonly requiredSkill: string;
  readonly headcount: number;
}

export interface Availability {
  readonly staffId: number;
  readonly day: string;
  readonly slot: string;
}

export interface ScheduleProblem {
  readonly staff: readonly StaffMember[];
  readonly shifts: readonly ShiftDemand[];
  readonly availability: readonly Availability[];
  /** cost charged per uncovered person-shift; large so coverage always wins over cost */
  readonly uncoveredPenalty: number;
  /** at most this many shifts per person per day */
  readonly maxShiftsPerDay: number;
}

export interface Assignment {
  readonly shiftId: number;
  readonly staffId: number;
  readonly day: string;
  readonly slot: string;
  readonly hours: number;
  readonly cost: number;
}

export interface ScheduleResult {
  readonly status: 'optimal' | 'feasible_not_proven_optimal' | 'infeasible';
  readonly solver: string;
  readonly assignments: Assignment[];
  readonly objective: {
    readonly laborCost: number;
    readonly uncoveredPersonShifts: number;
    readonly penalisedTotal: number;
  };
  readonly coverage: { readonly required: number; readonly assigned: number; readonly ratio: number };
  readonly uncovered: { shiftId: number; day: string; slot: string; requiredSkill: string; missing: number }[];
  readonly hoursByStaff: { staffId: number; name: string; hours: number; maxHours: number; cost: number }[];
  readonly violations: string[];
}

const avKey = (staffId: number, day: string, slot: string): string => `${staffId}|${day}|${slot}`;

/**
 * Mixed-integer programme solved by yalps (branch and bound over a simplex):
 *   x[s,d] ∈ {0,1}  staff s works demand d (only created when s has the skill and is available)
 *   u[d]   ≥ 0      uncovered people on demand d
 *   min Σ cost_s·hours_d·x[s,d] + penalty·Σ u[d]
 *   s.t. Σ_s x[s,d] + u[d] = headcount_d          (cover, or pay the penalty)
 *        Σ_d hours_d·x[s,d] ≤ maxHours_s           (weekly hour limit)
 *        Σ_{d on day} x[s,d] ≤ maxShiftsPerDay     (no double booking)
 * Coverage is soft so the model is always feasible and the answer says what is missing.
 */
export function solveSchedule(problem: ScheduleProblem, timeoutMs = 10_000): ScheduleResult {
  const available = new Set(problem.availability.map((a) => avKey(a.staffId, a.day, a.slot)));
  const constraints = new Map<string, Constraint>();
  const variables = new Map<string, Coefficients>();
  const binaries = new Set<string>();
  const days = [...new Set(problem.shifts.map((s) => s.day))];
  for (const d of problem.shifts) constraints.set(`cover_${d.id}`, { equal: d.headcount });
  for (const s of problem.staff) {
    constraints.set(`hours_${s.id}`, { max: s.maxHoursPerWeek });
    for (const day of days) constraints.set(`day_${s.id}_${day}`, { max: problem.maxShiftsPerDay });
  }
  for (const d of problem.shifts) {
    for (const s of problem.staff) {
      if (!s.skills.includes(d.requiredSkill) || !available.has(avKey(s.id, d.day, d.slot))) continue;
      const name = `x_${s.id}_${d.id}`;
      variables.set(name, [
        ['cost', s.hourlyCost * d.hours],
        [`cover_${d.id}`, 1],
        [`hours_${s.id}`, d.hours],
        [`day_${s.id}_${d.day}`, 1],
      ]);
      binaries.add(name);
    }
    variables.set(`u_${d.id}`, [
      ['cost', problem.uncoveredPenalty],
      [`cover_${d.id}`, 1],
    ]);
  }
  const solution = solve(
    { direction: 'minimize', objective: 'cost', constraints, variables, binaries },
    { timeout: timeoutMs, includeZeroVariables: false },
  );
  if (solution.status !== 'optimal' && !(solution.status === 'timedout' && Number.isFinite(solution.result))) {
    return emptyResult(problem, solution.status);
  }
  const staffById = new Map(problem.staff.map((s) => [s.id, s]));
  const shiftById = new Map(problem.shifts.map((s) => [s.id, s]));
  const assignments: Assignment[] = [];
  for (const [name, value] of solution.variables) {
    if (!name.startsWith('x_') || value < 0.5) continue;
    const [, sid, did] = name.split('_');
    const s = staffById.get(Number(sid))!;
    const d = shiftById.get(Number(did))!;
    assignments.push({
      shiftId: d.id,
      staffId: s.id,
      day: d.day,
      slot: d.slot,
      hours: d.hours,
      cost: round(s.hourlyCost * d.hours),
    });
  }
  assignments.sort(
    (a, b) =>
      a.day.localeCompare(b.day) || a.slot.localeCompare(b.slot) || a.shiftId - b.shiftId || a.staffId - b.staffId,
  );
  return summarise(
    problem,
    assignments,
    solution.status === 'optimal' ? 'optimal' : 'feasible_not_proven_optimal',
    'yalps branch-and-bound MIP',
  );
}

function emptyResult(problem: ScheduleProblem, status: string): ScheduleResult {
  const r = summarise(problem, [], 'infeasible', `yalps (${status})`);
  return r;
}

/** Objective, coverage and an independent feasibility check of a set of assignments. */
export function summarise(
  problem: ScheduleProblem,
  assignments: readonly Assignment[],
  status: ScheduleResult['status'],
  solver: string,
): ScheduleResult {
  const required = problem.shifts.reduce((a, d) => a + d.headcount, 0);
  const perShift = new Map<number, number>();
  for (const a of assignments) perShift.set(a.shiftId, (perShift.get(a.shiftId) ?? 0) + 1);
  const uncovered = problem.shifts
    .map((d) => ({
      shiftId: d.id,
      day: d.day,
      slot: d.slot,
      requiredSkill: d.requiredSkill,
      missing: d.headcount - (perShift.get(d.id) ?? 0),
    }))
    .filter((u) => u.missing > 0);
  const missing = uncovered.reduce((a, u) => a + u.missing, 0);
  const laborCost = round(assignments.reduce((a, x) => a + x.cost, 0));
  const hoursByStaff = problem.staff.map((s) => {
    const mine = assignments.filter((a) => a.staffId === s.id);
    return {
      staffId: s.id,
      name: s.name,
      hours: mine.reduce((a, x) => a + x.hours, 0),
      maxHours: s.maxHoursPerWeek,
      cost: round(mine.reduce((a, x) => a + x.cost, 0)),
    };
  });
  return {
    status,
    solver,
    assignments: [...assignments],
    objective: {
      laborCost,
      uncoveredPersonShifts: missing,
      penalisedTotal: round(laborCost + missing * problem.uncoveredPenalty),
    },
    coverage: {
      required,
      assigned: required - missing,
      ratio: required === 0 ? 1 : round((required - missing) / required, 4),
    },
    uncovered,
    hoursByStaff,
    violations: verifySchedule(problem, assignments),
  };
}

/** Every constraint checked on the final assignments, independent of the solver. */
export function verifySchedule(problem: ScheduleProblem, assignments: readonly Assignment[]): string[] {
  const violations: string[] = [];
  const available = new Set(problem.availability.map((a) => avKey(a.staffId, a.day, a.slot)));
  const staffById = new Map(problem.staff.map((s) => [s.id, s]));
  const shiftById = new Map(problem.shifts.map((s) => [s.id, s]));
  const hours = new Map<number, number>();
  const perDay = new Map<string, number>();
  const perShift = new Map<number, Set<number>>();
  for (const a of assignments) {
    const s = staffById.get(a.staffId);
    const d = shiftById.get(a.shiftId);
    if (!s || !d) {
      violations.push(`unknown staff ${a.staffId} or shift ${a.shiftId}`);
      continue;
    }
    if (!s.skills.includes(d.requiredSkill))
      violations.push(`${s.name} lacks skill ${d.requiredSkill} for shift ${d.id}`);
    if (!available.has(avKey(s.id, d.day, d.slot))) violations.push(`${s.name} not available ${d.day} ${d.slot}`);
    hours.set(s.id, (hours.get(s.id) ?? 0) + d.hours);
    const dk = `${s.id}|${d.day}`;
    perDay.set(dk, (perDay.get(dk) ?? 0) + 1);
    const set = perShift.get(d.id) ?? new Set<number>();
    if (set.has(s.id)) violations.push(`${s.name} assigned twice to shift ${d.id}`);
    set.add(s.id);
    perShift.set(d.id, set);
  }
  for (const [sid, h] of hours) {
    const s = staffById.get(sid)!;
    if (h > s.maxHoursPerWeek) violations.push(`${s.name} works ${h}h > max ${s.maxHoursPerWeek}h`);
  }
  for (const [k, n] of perDay) {
    if (n > problem.maxShiftsPerDay) violations.push(`staff ${k} has ${n} shifts in one day`);
  }
  for (const [sid, set] of perShift) {
    const d = shiftById.get(sid)!;
    if (set.size > d.headcount) violations.push(`shift ${sid} overstaffed ${set.size} > ${d.headcount}`);
  }
  return violations;
}
