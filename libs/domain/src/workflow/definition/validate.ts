import { checkExpression, mappingExpressions } from './expressions.js';
import { formatPath, inputPatternProblems } from './input.js';
import { workflowLimits, type WorkflowLimits } from './limits.js';
import { parseUses, workflowDefinitionSchema, type StepDefinition, type WorkflowDefinition } from './schema.js';

/** One thing wrong with a definition; the gateway answers 400 with the list. */
export interface DefinitionProblem {
  /** Where, e.g. `steps[2].needs[0]` or `steps[1].with.email`. */
  readonly path: string;
  readonly code:
    | 'schema'
    | 'duplicate_id'
    | 'unknown_ref'
    | 'cycle'
    | 'unknown_server'
    | 'unknown_tool'
    | 'unknown_task_type'
    | 'unknown_definition'
    | 'bad_expression'
    | 'bad_compensation'
    | 'bad_wait'
    | 'limit_exceeded';
  readonly message: string;
}

/** What exists to be called: MCP servers with their tools, agent task types, workflow definition ids. */
export interface ToolCatalog {
  /** `tools` absent: the server is known but has not listed its tools yet (connecting, down); they are not checked. */
  readonly servers: readonly { readonly name: string; readonly tools?: readonly string[] }[];
  readonly taskTypes: readonly string[];
  readonly definitions: readonly string[];
}

export type DefinitionValidation =
  | { readonly ok: true; readonly definition: WorkflowDefinition; readonly problems: readonly [] }
  | { readonly ok: false; readonly problems: readonly DefinitionProblem[] };

/** Step ids that only run as compensations (named by some `on_error.compensate` or `for_each.compensate`). */
export function compensationStepIds(def: Pick<WorkflowDefinition, 'steps'>): Set<string> {
  const out = new Set<string>();
  for (const s of def.steps) {
    if (typeof s.on_error === 'object') out.add(s.on_error.compensate);
    if (s.for_each?.compensate !== undefined) out.add(s.for_each.compensate);
  }
  return out;
}

/** Every step reachable through `needs` from `stepId` (not including itself). Cycle-safe. */
export function upstreamOf(def: Pick<WorkflowDefinition, 'steps'>, stepId: string): Set<string> {
  const byId = new Map(def.steps.map((s) => [s.id, s]));
  const seen = new Set<string>();
  const stack = [...(byId.get(stepId)?.needs ?? [])];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    for (const n of byId.get(id)?.needs ?? []) if (!seen.has(n)) stack.push(n);
  }
  seen.delete(stepId);
  return seen;
}

/** Cycles named one by one at most: a graph of every step needing every other has one per pair. */
const MAX_CYCLES_NAMED = 20;

/**
 * The cycles found by DFS over `needs` (one per back edge), each as `a -> b -> a`, reported once,
 * at most MAX_CYCLES_NAMED of them; `more` when there are others.
 */
function findCycles(steps: readonly StepDefinition[]): { found: { at: number; cycle: string[] }[]; more: boolean } {
  const byId = new Map(steps.map((s, i) => [s.id, { s, i }]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const found: { at: number; cycle: string[] }[] = [];
  let more = false;
  const seenKeys = new Set<string>();
  const visit = (id: string): void => {
    state.set(id, 'visiting');
    stack.push(id);
    for (const n of byId.get(id)?.s.needs ?? []) {
      if (!byId.has(n)) continue;
      if (state.get(n) === 'visiting') {
        if (found.length >= MAX_CYCLES_NAMED) {
          more = true;
          continue;
        }
        const cycle = [...stack.slice(stack.indexOf(n)), n];
        // The same cycle found from another entry point is the same problem.
        const key = [...cycle.slice(0, -1)].sort().join(',');
        if (!seenKeys.has(key)) {
          seenKeys.add(key);
          found.push({ at: byId.get(cycle[0]!)!.i, cycle });
        }
      } else if (!state.has(n)) visit(n);
    }
    stack.pop();
    state.set(id, 'done');
  };
  for (const s of steps) if (!state.has(s.id)) visit(s.id);
  return { found, more };
}

/**
 * Check a definition and return every problem found: schema errors first (when the shape is
 * wrong the deeper checks are skipped), then duplicate ids, unknown `needs`, cycles (named),
 * unknown servers/tools/task types/definitions (when a catalog is given), compensation rules
 * and expressions (parse and type errors, references to steps that are not upstream).
 */
export function validateDefinition(
  def: unknown,
  catalog?: ToolCatalog,
  limits: WorkflowLimits = workflowLimits(),
): DefinitionValidation {
  // Bounds first, before any work proportional to the definition (see ./limits.ts).
  const over = definitionLimitProblems(def, limits);
  if (over.length > 0) return { ok: false, problems: over };
  if (catalog) return checkDefinition(def, catalog);
  // Without a catalog the answer depends only on the definition and the limits: every start of an
  // execution checks its definition, mostly the same few, so the answer is kept (by their JSON).
  // Only small definitions, within a budget of characters: keyed by the whole JSON, 500 distinct
  // definitions of 480 KB (each start of an ad-hoc run differing by one character) held 0.5 GB.
  const key = `${JSON.stringify(limits)}\n${JSON.stringify(def)}`;
  if (key.length > MAX_CACHED_DEFINITION_CHARS) return checkDefinition(def);
  let v = checked.get(key);
  if (v === undefined) {
    v = checkDefinition(def);
    if (checked.size >= MAX_CACHED_DEFINITIONS || checkedChars + key.length > CACHED_DEFINITIONS_BUDGET_CHARS) {
      checked.clear();
      checkedChars = 0;
    }
    checked.set(key, v);
    checkedChars += key.length;
  }
  return v;
}

/** Answers of validateDefinition without a catalog (shared: nobody changes a definition or an answer). */
const checked = new Map<string, DefinitionValidation>();
let checkedChars = 0;
const MAX_CACHED_DEFINITIONS = 500;
const MAX_CACHED_DEFINITION_CHARS = 64 * 1024;
const CACHED_DEFINITIONS_BUDGET_CHARS = 4 * 1024 * 1024;

/** What the answers' cache holds (for tests): entries and the characters of their keys. */
export function cachedDefinitionChecks(): { entries: number; chars: number } {
  return { entries: checked.size, chars: checkedChars };
}

function checkDefinition(def: unknown, catalog?: ToolCatalog): DefinitionValidation {
  const parsed = workflowDefinitionSchema.safeParse(def);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((i) => ({ path: formatPath(i.path), code: 'schema', message: i.message })),
    };
  }
  const d = parsed.data;
  const problems: DefinitionProblem[] = [];
  const add = (path: string, code: DefinitionProblem['code'], message: string) =>
    problems.push({ path, code, message });

  // 1. Ids are unique.
  const firstIndex = new Map<string, number>();
  d.steps.forEach((s, i) => {
    if (firstIndex.has(s.id))
      add(`steps[${i}].id`, 'duplicate_id', `duplicate step id "${s.id}" (first at steps[${firstIndex.get(s.id)}])`);
    else firstIndex.set(s.id, i);
  });
  const ids = new Set(firstIndex.keys());
  const compensations = compensationStepIds(d);

  // 2. `needs` name existing steps, never a compensation-only step.
  d.steps.forEach((s, i) =>
    s.needs.forEach((n, j) => {
      if (!ids.has(n)) add(`steps[${i}].needs[${j}]`, 'unknown_ref', `step "${s.id}" needs unknown step "${n}"`);
      else if (compensations.has(n) && !compensations.has(s.id)) {
        add(
          `steps[${i}].needs[${j}]`,
          'bad_compensation',
          `"${n}" is a compensation step and never runs in the normal flow, so "${s.id}" cannot need it`,
        );
      }
    }),
  );

  // 3. No cycles; each named.
  const cycles = findCycles(d.steps);
  for (const { at, cycle } of cycles.found) {
    add(`steps[${at}].needs`, 'cycle', `dependency cycle: ${cycle.join(' -> ')}`);
  }
  if (cycles.more)
    add('steps', 'cycle', `more dependency cycles than the ${MAX_CYCLES_NAMED} named: break these and check again`);

  // 4. What each step uses exists.
  d.steps.forEach((s, i) => {
    if (s.uses === undefined) return; // a wait step (checked in 9.)
    const u = parseUses(s.uses);
    const path = `steps[${i}].uses`;
    if (u.kind === 'workflow' && u.definitionId === d.id)
      add(path, 'unknown_definition', `step "${s.id}" runs its own workflow "${d.id}" (recursion)`);
    if (!catalog) return;
    if (u.kind === 'mcp') {
      const server = catalog.servers.find((x) => x.name === u.server);
      if (!server)
        add(
          path,
          'unknown_server',
          `unknown MCP server "${u.server}" (known: ${catalog.servers.map((x) => x.name).join(', ') || 'none'})`,
        );
      else if (server.tools && !server.tools.includes(u.tool))
        add(
          path,
          'unknown_tool',
          `MCP server "${u.server}" has no tool "${u.tool}" (known: ${server.tools.join(', ')})`,
        );
    } else if (u.kind === 'agent') {
      if (!catalog.taskTypes.includes(u.taskType))
        add(path, 'unknown_task_type', `unknown agent task type "${u.taskType}"`);
    } else if (!catalog.definitions.includes(u.definitionId) && u.definitionId !== d.id) {
      add(path, 'unknown_definition', `unknown workflow definition "${u.definitionId}"`);
    }
  });

  // 5. Compensation targets exist, are not the failing step itself, and do not fan out. A
  //    compensation names none of its own: it only runs as one, so its on_error would never be
  //    read, and two steps compensating each other left no main step (the run did nothing and
  //    "completed"). Nor is it a sub-workflow: the engine does not run one as a compensation, so
  //    every undo would fail.
  /** Why step `target` cannot run as a compensation (of a step or of for_each items), if it cannot. */
  const unfitCompensation = (target: string): string | undefined => {
    const t = d.steps.find((x) => x.id === target);
    if (t?.for_each) return `compensation step "${target}" cannot use for_each`;
    if (t?.wait) return `compensation step "${target}" cannot be a wait step`;
    if (t?.uses !== undefined && parseUses(t.uses).kind === 'workflow')
      return `compensation step "${target}" cannot be a sub-workflow`;
    return undefined;
  };
  d.steps.forEach((s, i) => {
    if (typeof s.on_error !== 'object') return;
    const target = s.on_error.compensate;
    const path = `steps[${i}].on_error.compensate`;
    if (compensations.has(s.id) && target !== s.id)
      add(
        path,
        'bad_compensation',
        `step "${s.id}" is a compensation (another step compensates with it) and cannot name a compensation of its own`,
      );
    const unfit = unfitCompensation(target);
    if (!ids.has(target)) add(path, 'unknown_ref', `step "${s.id}" compensates with unknown step "${target}"`);
    else if (target === s.id) add(path, 'bad_compensation', `step "${s.id}" cannot compensate itself`);
    else if (unfit) add(path, 'bad_compensation', unfit);
  });

  // 5b. The compensation of for_each items exists, is a plain step, and undoes that step's items
  //     only: its expressions read one step's `item`, `index` and `output`, and its runs are keyed
  //     by the item's index. Named by any on_error too (this step's own included), it would also
  //     run as a step-level compensation, where `output` is unknown: that run could never work.
  const itemCompensations = new Set<string>();
  d.steps.forEach((s, i) => {
    const target = s.for_each?.compensate;
    if (target === undefined) return;
    const path = `steps[${i}].for_each.compensate`;
    const others = d.steps.filter(
      (x) =>
        (typeof x.on_error === 'object' && x.on_error.compensate === target) ||
        (x !== s && x.for_each?.compensate === target),
    );
    const unfit = unfitCompensation(target);
    if (!ids.has(target))
      add(path, 'unknown_ref', `step "${s.id}" compensates its items with unknown step "${target}"`);
    else if (target === s.id) add(path, 'bad_compensation', `step "${s.id}" cannot compensate its items with itself`);
    else if (unfit) add(path, 'bad_compensation', unfit);
    else if (others.length > 0)
      add(
        path,
        'bad_compensation',
        others[0] === s
          ? `compensation step "${target}" undoes the items of "${s.id}" and cannot also be its on_error compensation (a step-level run has no item output)`
          : `compensation step "${target}" undoes the items of "${s.id}" and cannot also compensate "${others[0]!.id}"`,
      );
    else itemCompensations.add(target);
  });

  // 6. Expressions parse, type-check and only read upstream steps.
  // Each step's upstream set once, not once per expression (a long chain made that quadratic).
  const upstreams = new Map<string, Set<string>>();
  const upstreamFor = (stepId: string): Set<string> => {
    let u = upstreams.get(stepId);
    if (!u) upstreams.set(stepId, (u = upstreamOf(d, stepId)));
    return u;
  };
  const checkOne = (
    path: string,
    expression: string,
    stepId: string | null,
    allowItem: boolean,
    allowItemOutput = false,
  ) => {
    const r = checkExpression(expression, { allowItem, allowItemOutput });
    if (!r.ok) add(path, 'bad_expression', `bad expression "${expression}": ${r.message}`);
    const upstream = stepId === null ? ids : upstreamFor(stepId);
    for (const ref of r.stepRefs) {
      if (!ids.has(ref)) add(path, 'bad_expression', `expression "${expression}" reads unknown step "${ref}"`);
      else if (!upstream.has(ref)) {
        add(
          path,
          'bad_expression',
          `expression "${expression}" reads step "${ref}", which is not upstream of "${stepId}" (add it to needs)`,
        );
      }
    }
  };
  d.steps.forEach((s, i) => {
    if (s.if !== undefined) checkOne(`steps[${i}].if`, s.if, s.id, false);
    if (s.for_each) checkOne(`steps[${i}].for_each.items`, s.for_each.items, s.id, false);
    if (s.wait && typeof s.wait.timeout_ms === 'string') {
      for (const { expression } of mappingExpressions(s.wait.timeout_ms))
        checkOne(`steps[${i}].wait.timeout_ms`, expression, s.id, false);
    }
    for (const { path, expression } of mappingExpressions(s.with)) {
      checkOne(
        `steps[${i}].with${path.startsWith('[') ? '' : '.'}${path}`,
        expression,
        s.id,
        s.for_each !== undefined,
        itemCompensations.has(s.id),
      );
    }
  });
  for (const { path, expression } of mappingExpressions(d.outputs)) {
    checkOne(`outputs${path.startsWith('[') ? '' : '.'}${path}`, expression, null, false);
  }

  // 7. Input patterns are RE2 (they are matched with it, in linear time).
  for (const p of inputPatternProblems(d.input)) add(p.path, 'schema', p.message);

  // 8. Backoff bounds make sense.
  d.steps.forEach((s, i) => {
    if (s.retry && s.retry.backoff.maxMs < s.retry.backoff.initialMs) {
      add(`steps[${i}].retry.backoff.maxMs`, 'schema', 'maxMs must be >= initialMs');
    }
  });

  // 9. Wait steps only wait: no call settings, no fan-out, no compensation of their own.
  d.steps.forEach((s, i) => {
    if (!s.wait) return;
    const bad = (field: string, why: string) => add(`steps[${i}].${field}`, 'bad_wait', `wait step "${s.id}": ${why}`);
    if (s.for_each) bad('for_each', 'cannot use for_each');
    if (s.retry) bad('retry', 'cannot retry (it has no call to retry; its timeout is wait.timeout_ms)');
    if (s.timeout_ms !== undefined) bad('timeout_ms', 'its timeout is wait.timeout_ms, not timeout_ms');
    if (Object.keys(s.with).length > 0) bad('with', 'takes no input (its output is the signal payload)');
    if (typeof s.on_error === 'object') bad('on_error', "cannot be compensated (on_error: 'fail' or 'continue')");
  });

  return problems.length === 0 ? { ok: true, definition: d, problems: [] } : { ok: false, problems };
}

/**
 * A definition's size and shape against the limits, cheapest first: step count, JSON nesting
 * depth (never deeper than the limit itself), serialized size. Nothing here allocates per node
 * unless a limit is exceeded: a refused definition must cost little to refuse.
 */
export function definitionLimitProblems(def: unknown, limits: WorkflowLimits = workflowLimits()): DefinitionProblem[] {
  const steps = (def as { steps?: unknown } | null)?.steps;
  if (Array.isArray(steps) && steps.length > limits.maxSteps) {
    return [
      {
        path: 'steps',
        code: 'limit_exceeded',
        message: `definition has ${steps.length} steps; at most ${limits.maxSteps} (WORKFLOW_MAX_STEPS)`,
      },
    ];
  }
  const needs = Array.isArray(steps)
    ? steps.reduce<number>((n, s) => {
        const ns = (s as { needs?: unknown } | null)?.needs;
        return n + (Array.isArray(ns) ? ns.length : 0);
      }, 0)
    : 0;
  if (needs > limits.maxNeeds) {
    return [
      {
        path: 'steps',
        code: 'limit_exceeded',
        message: `the steps have ${needs} needs entries together; at most ${limits.maxNeeds} (WORKFLOW_MAX_NEEDS)`,
      },
    ];
  }
  const deep = deeperThan(def, limits.maxNestingDepth, 0);
  if (deep !== null) {
    return [
      {
        path: formatPath(deep.reverse()),
        code: 'limit_exceeded',
        message: `definition nests deeper than ${limits.maxNestingDepth} levels (WORKFLOW_MAX_NESTING_DEPTH)`,
      },
    ];
  }
  let bytes: number;
  try {
    bytes = utf8Length(JSON.stringify(def) ?? '');
  } catch {
    return [{ path: '', code: 'schema', message: 'definition is not JSON' }];
  }
  if (bytes > limits.maxDefinitionBytes) {
    return [
      {
        path: '',
        code: 'limit_exceeded',
        message: `definition is ${bytes} bytes as JSON; at most ${limits.maxDefinitionBytes} (WORKFLOW_MAX_DEFINITION_BYTES)`,
      },
    ];
  }
  return [];
}

/**
 * The path (innermost key first) to a value nested deeper than `max` objects/arrays, or null.
 * Recursion is bounded by `max` itself: it stops one level past the limit.
 */
function deeperThan(v: unknown, max: number, depth: number): PropertyKey[] | null {
  if (v === null || typeof v !== 'object') return null;
  if (depth + 1 > max) return [];
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = deeperThan(v[i], max, depth + 1);
      if (p) return (p.push(i), p);
    }
    return null;
  }
  for (const k in v) {
    if (!Object.hasOwn(v, k)) continue;
    const p = deeperThan((v as Record<string, unknown>)[k], max, depth + 1);
    if (p) return (p.push(k), p);
  }
  return null;
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
