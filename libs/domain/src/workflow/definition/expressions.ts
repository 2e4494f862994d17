/**
 * Expressions in workflow definitions.
 *
 * Language: CEL (Common Expression Language, https://github.com/google/cel-spec) through
 * `@marcbachmann/cel-js`. Why this one over the candidates:
 *  - CEL is a specified, non-Turing-complete language built for exactly this (policy and
 *    config expressions in Kubernetes, Envoy, GCP): no loops, no I/O, bounded cost.
 *  - cel-js is an interpreter (no `eval`/`Function`), has zero dependencies, declares
 *    `node >=20.19`, is actively released (8.0.0, 2026-08), and exposes the parsed AST and a
 *    type checker, which validation needs to find step references and undeclared variables.
 *    Property access is by own keys only (`input.__proto__` is "No such key").
 *  - jsonata 2.x evaluates asynchronously (a decider must be synchronous); filtrex compiles
 *    to JS with `new Function`; jexl's last release is from 2024 and it is lenient in ways
 *    that hide typos; expr-eval has a prototype-pollution CVE.
 *
 * Syntax (one rule, GitHub-Actions-like):
 *  - `if` and `for_each.items` are one CEL expression, written bare (`input.include_forecasts`)
 *    or wrapped (`${{ input.include_forecasts }}`).
 *  - In `with` and `outputs`, a string that is exactly one `${{ expr }}` takes the expression's
 *    value with its type (object, list, number...); a string with `${{ }}` inside other text is
 *    interpolated (each value stringified, objects as JSON); anything else is a literal.
 *    Objects and arrays are walked recursively.
 *  - Variables: `input` (the validated workflow input), `steps.<id>` with `{ status, output, error }`
 *    for steps listed (transitively) in `needs`, and `item` / `index` inside a `for_each` step;
 *    a for_each step's item compensation (`for_each.compensate`) sees its item's `item`, `index`
 *    and `output`.
 *    Missing keys are errors in CEL: use `has(input.x)` or input defaults for optional fields.
 *  - Numbers: JSON integers are CEL `int`, others `double`; mixed int/double arithmetic is allowed
 *    (registered below) so `steps.a.output.total * 1.2` works. Results come back as JSON numbers.
 */
import { Environment, type ASTNode } from '@marcbachmann/cel-js';
import type { RE2JS } from 're2js';
import { BoundedRe2Cache } from '../../bounded-re2.js';
import { workflowLimits } from './limits.js';

/** Raised when an expression does not parse, does not type-check, or fails while evaluating. */
export class ExpressionError extends Error {
  constructor(
    readonly expression: string,
    message: string,
  ) {
    super(message);
    this.name = 'ExpressionError';
  }
}

/** Raised when one decision's expressions spend more than their cost budget or time limit. */
export class ExpressionLimitError extends ExpressionError {
  readonly code = 'expression_limit_exceeded';
  constructor(expression: string, message: string) {
    super(expression, message);
    this.name = 'ExpressionLimitError';
  }
}

/**
 * Raised when a resolved mapping would be larger than its bound (WORKFLOW_MAX_STEP_INPUT_BYTES
 * for a step's input, WORKFLOW_MAX_OUTPUT_BYTES for the outputs, WORKFLOW_MAX_DECISION_INPUT_BYTES
 * for all of one decision's): the step (or the execution) fails, not retried.
 */
export class MappingLimitError extends ExpressionError {
  constructor(
    expression: string,
    message: string,
    readonly code: 'input_limit_exceeded' | 'output_limit_exceeded',
  ) {
    super(expression, message);
    this.name = 'MappingLimitError';
  }
}

/** What an expression can see while it is evaluated. */
export interface ExpressionContext {
  readonly input: unknown;
  readonly steps: Readonly<Record<string, StepView>>;
  /** Which execution is evaluating; `execution.id` makes per-execution idempotency keys possible. */
  readonly execution?: ExecutionView;
  readonly item?: unknown;
  readonly index?: number;
  /** One for_each item's output, for the compensation of that item (with its `item` and `index`). */
  readonly output?: unknown;
}

/** What expressions see of the execution itself (fixed for its whole life, so replays agree). */
export interface ExecutionView {
  readonly id: string;
  readonly definition_id: string;
  readonly definition_version: number;
  readonly correlation_id: string;
  readonly started_at: string;
}

/** The view of one step that expressions get: its status, output (null until it has one) and error. */
export interface StepView {
  readonly status: string;
  readonly output: unknown;
  readonly error: { readonly code: string; readonly message: string } | null;
  /**
   * A for_each step's items' outputs by index, null where an item has not succeeded (failed,
   * stopped, not run); null for any other step. What a step that failed part way made is here,
   * while `output` is set only once every item succeeded.
   */
  readonly item_outputs?: readonly unknown[] | null;
}

// One expression that is the whole value; `${{ a }}-${{ b }}` is two embedded ones, not one from `a }}-${{ b`.
const WRAPPED = /^\s*\$\{\{((?:(?!\}\})[\s\S])*)\}\}\s*$/;
/**
 * The embedded expressions of a template string: each `${{` with the first `}}` after it, as the
 * lazy pattern `/\$\{\{([\s\S]*?)\}\}/g` would find them, by one left-to-right scan. The pattern
 * re-scans to the end of the string from every `${{` that has no `}}` after it: a 500 KB string
 * of `${{` kept the event loop 11 s.
 */
function embeddedSpans(value: string): { start: number; end: number; expression: string }[] {
  const spans: { start: number; end: number; expression: string }[] = [];
  for (let from = 0; ;) {
    const start = value.indexOf('${{', from);
    if (start < 0) return spans;
    const close = value.indexOf('}}', start + 3);
    // No `}}` after this one: none after any later `${{` either.
    if (close < 0) return spans;
    spans.push({ start, end: close + 2, expression: value.slice(start + 3, close) });
    from = close + 2;
  }
}

const limits = { maxAstNodes: 2000, maxDepth: 64, maxListElements: 1000, maxMapEntries: 1000, maxCallArguments: 32 };

/**
 * The evaluation budget. cel-js (8.0) has parse-time limits only (above), nothing that bounds
 * evaluation: `l.map(a, l.map(b, l.map(c, ...)))` over 300 items is 27 million steps in one
 * synchronous call. Every child node is evaluated through its evaluator's `run`, so the guard
 * wraps that one method on our environments' evaluators: one unit per node evaluated (each
 * comprehension iteration evaluates its step node), plus the length of every list produced (not
 * a comprehension's accumulator on each step) and of every string (per 16 characters), which
 * bounds `l + l` and `s + s` growth. The budget is deterministic (the same definition and
 * input spend the same units, so decisions replay the same); the time limit is a second net for
 * costs the units do not see, checked every 1024 nodes, and only when the process injected a
 * clock (the domain has none of its own).
 * One budget covers one decision (`withExpressionBudget`), however many expressions it evaluates.
 */
interface Budget {
  used: number;
  /** Nodes evaluated: paces the clock reads (`used` jumps by list lengths). */
  nodes: number;
  max: number;
  deadline: number;
  clock: (() => number) | undefined;
  limitMs: number;
  tripped: 'cost' | 'time' | null;
  depth: number;
  /** Characters of JSON the decision's resolved mappings took so far (see resolveMapping). */
  mapped: number;
}
const budget: Budget = {
  used: 0,
  nodes: 0,
  max: Infinity,
  deadline: Infinity,
  clock: undefined,
  limitMs: 0,
  tripped: null,
  depth: 0,
  mapped: 0,
};

// One instance, thrown again and again: `exists`/`all` swallow element errors and go on, so once
// over budget every remaining step throws at once, and must not pay for a fresh stack trace each time.
const OVER_BUDGET = new Error('expression budget exceeded');

function trip(kind: 'cost' | 'time'): never {
  budget.tripped ??= kind;
  throw OVER_BUDGET;
}

type EvaluatorLike = { run(ast: unknown, ctx: unknown): unknown };
type NodeLike = { evaluate(ev: unknown, ast: unknown, ctx: unknown): unknown };

function installGuard(env: Environment): void {
  let ev: EvaluatorLike | undefined;
  // Function handlers are called with the evaluator as `this`: the only handle cel-js gives on it.
  env.registerFunction('__evaluator_probe(): bool', function (this: EvaluatorLike) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the probe's only job is to capture the evaluator it runs in
    ev = this;
    return true;
  });
  env.evaluate('__evaluator_probe()', {});
  if (!ev || typeof ev.run !== 'function')
    throw new Error('cel-js evaluator not reachable: the expression budget cannot be installed');
  ev.run = function run(this: EvaluatorLike, ast: unknown, ctx: unknown): unknown {
    if (++budget.used > budget.max) trip('cost');
    if ((++budget.nodes & 1023) === 0 && budget.clock && budget.clock() > budget.deadline) trip('time');
    const r = (ast as NodeLike).evaluate(this, ast, ctx);
    // A comprehension's accumulator comes back from every step: charged once, by its steps.
    if (Array.isArray(r)) {
      if (r !== (ctx as { accuValue?: unknown } | null)?.accuValue) budget.used += r.length;
    } else if (typeof r === 'string') budget.used += r.length >>> 4;
    return r;
  };
}

/**
 * Run `fn` under one expression budget (cost and time from `workflowLimits()`); nested calls
 * share the outer budget. A decision wraps itself in one, so the sum of its expressions is bounded.
 */
export function withExpressionBudget<T>(fn: () => T): T {
  if (budget.depth > 0) return fn();
  const l = workflowLimits();
  budget.used = 0;
  budget.nodes = 0;
  budget.max = l.expressionMaxCost;
  budget.clock = l.clock;
  budget.limitMs = l.expressionTimeLimitMs;
  budget.deadline = l.clock ? l.clock() + l.expressionTimeLimitMs : Infinity;
  budget.tripped = null;
  budget.mapped = 0;
  budget.depth++;
  try {
    return fn();
  } finally {
    budget.depth--;
  }
}

function limitError(expr: string): ExpressionLimitError {
  const l = workflowLimits();
  const what =
    budget.tripped === 'time'
      ? `its time limit (${budget.limitMs} ms, WORKFLOW_EXPRESSION_TIME_LIMIT_MS)`
      : `its cost budget (${l.expressionMaxCost} units, WORKFLOW_EXPRESSION_MAX_COST)`;
  return new ExpressionLimitError(expr, `expression "${expr}" exceeded ${what}`);
}

// RE2 (linear time) for `matches`, as the CEL spec asks; cel-js uses a backtracking RegExp.
const RE2_MATCHES = '__re2_matches';
const regexCache = new BoundedRe2Cache();
function re2(pattern: string): RE2JS {
  const re = regexCache.compile(pattern);
  if (typeof re === 'string') throw new Error(re);
  return re;
}

/** Point every `x.matches(re)` at the RE2 implementation (the name is resolved at type-check). */
function useRe2(node: unknown): void {
  if (Array.isArray(node)) {
    for (const n of node) useRe2(n);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const n = node as { op?: string; args?: unknown };
  if (n.op === 'rcall' && Array.isArray(n.args) && n.args[0] === 'matches') (n.args as unknown[])[0] = RE2_MATCHES;
  useRe2(n.args);
}

/** What an expression may name besides input, steps and execution: nothing, an item, or an item and its output. */
type Scope = 'plain' | 'item' | 'item_output';

function buildEnv(scope: Scope): Environment {
  const env = new Environment({ homogeneousAggregateLiterals: false, enableOptionalTypes: true, limits })
    .registerVariable('input', 'map')
    .registerVariable('steps', 'map')
    .registerVariable('execution', 'map');
  if (scope !== 'plain') env.registerVariable('item', 'dyn').registerVariable('index', 'int');
  if (scope === 'item_output') env.registerVariable('output', 'dyn');
  // CEL has no implicit int/double promotion; workflow authors write JSON numbers and would
  // otherwise trip over `total * 1.2` when total happens to be whole.
  const ops: Record<string, (a: number, b: number) => number> = {
    '+': (a, b) => a + b,
    '-': (a, b) => a - b,
    '*': (a, b) => a * b,
    '/': (a, b) => a / b,
  };
  for (const [op, f] of Object.entries(ops)) {
    env.registerOperator(`int ${op} double`, (a: bigint, b: number) => f(Number(a), b));
    env.registerOperator(`double ${op} int`, (a: number, b: bigint) => f(a, Number(b)));
  }
  env.registerFunction(`string.${RE2_MATCHES}(string): bool`, (s: string, pattern: string) => {
    let re: RE2JS;
    try {
      re = re2(pattern);
    } catch (e) {
      throw new Error(`invalid regular expression ${JSON.stringify(pattern)}: ${firstLine(e)}`, { cause: e });
    }
    // Each step of the RE2 simulation is bounded by the pattern; charge the text it scans.
    budget.used += s.length >>> 4;
    return re.matcher(s).find();
  });
  installGuard(env);
  return env;
}

const envs: Record<Scope, Environment> = {
  plain: buildEnv('plain'),
  item: buildEnv('item'),
  item_output: buildEnv('item_output'),
};

/** The result of looking at an expression without evaluating it. */
export interface ExpressionCheck {
  readonly ok: boolean;
  /** First line of the parse or type error, when not ok. */
  readonly message?: string;
  /** Step ids the expression reads through `steps.<id>` or `steps["<id>"]`. */
  readonly stepRefs: readonly string[];
}

/** Unwrap `${{ expr }}` to `expr`; bare expressions are returned trimmed. */
export function unwrapExpression(source: string): string {
  const m = WRAPPED.exec(source);
  return (m ? m[1]! : source).trim();
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]!.trim();
}

/**
 * Parse and type-check one CEL expression; `allowItem` admits `item`/`index` (for_each steps),
 * `allowItemOutput` those and `output` (the compensation of a for_each item).
 */
export function checkExpression(
  source: string,
  options: { allowItem?: boolean; allowItemOutput?: boolean } = {},
): ExpressionCheck {
  const expr = unwrapExpression(source);
  if (expr.length === 0) return { ok: false, message: 'empty expression', stepRefs: [] };
  const env = envs[options.allowItemOutput ? 'item_output' : options.allowItem ? 'item' : 'plain'];
  let parsed: ReturnType<Environment['parse']>;
  try {
    parsed = env.parse(expr);
  } catch (e) {
    return { ok: false, message: firstLine(e), stepRefs: [] };
  }
  const ast: ASTNode = parsed.ast;
  const stepRefs = [...collectStepRefs(ast)];
  useRe2(ast);
  const checked = parsed.check();
  if (!checked.valid)
    return { ok: false, message: firstLine(checked.error).replaceAll(RE2_MATCHES, 'matches'), stepRefs };
  return { ok: true, stepRefs };
}

/** Walk any AST shape and collect `steps.<id>` / `steps["<id>"]` references. */
function collectStepRefs(node: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(node)) {
    for (const n of node) collectStepRefs(n, out);
    return out;
  }
  if (node === null || typeof node !== 'object') return out;
  const n = node as { op?: string; args?: unknown };
  if ((n.op === '.' || n.op === '.?' || n.op === '[]' || n.op === '[?]') && Array.isArray(n.args)) {
    const [target, key] = n.args as [unknown, unknown];
    const t = target as { op?: string; args?: unknown } | null;
    if (t && t.op === 'id' && t.args === 'steps') {
      if (typeof key === 'string') out.add(key);
      else if (key && typeof key === 'object' && (key as { op?: string }).op === 'value') {
        const v = (key as { args?: unknown }).args;
        if (typeof v === 'string') out.add(v);
      }
    }
  }
  collectStepRefs(n.args, out);
  return out;
}

/** Every expression inside a mapping value (`with`, `outputs`), with a path relative to it. */
export function mappingExpressions(value: unknown, path = ''): { path: string; expression: string }[] {
  if (typeof value === 'string') {
    const wrapped = WRAPPED.exec(value);
    if (wrapped) return [{ path, expression: wrapped[1]!.trim() }];
    return embeddedSpans(value).map((m) => ({ path, expression: m.expression.trim() }));
  }
  if (Array.isArray(value)) return value.flatMap((v, i) => mappingExpressions(v, `${path}[${i}]`));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => mappingExpressions(v, path ? `${path}.${k}` : k));
  }
  return [];
}

// Parsed expressions are cached: definitions are re-evaluated on every decision.
interface Compiled {
  readonly run: (ctx: Record<string, unknown>) => unknown;
  /** The steps read as `steps.<id>` / `steps["<id>"]`; null when `steps` is used any other way. */
  readonly stepRefs: readonly string[] | null;
}
const cache = new Map<string, Compiled>();
/**
 * The cache starts over past either bound. The characters bound: an entry keeps its text and its
 * parsed form (about twice the text), and a definition may hold expressions of hundreds of KB, so
 * 5,000 of them from ad-hoc runs would have held gigabytes.
 */
const CACHED_EXPRESSIONS = 5_000;
const CACHED_EXPRESSION_CHARS = 8 * 1024 * 1024;
let cachedChars = 0;
/** Entries and characters of expression text the cache holds (for tests). */
export function cachedExpressions(): { entries: number; chars: number } {
  return { entries: cache.size, chars: cachedChars };
}
function compiled(expr: string, scope: Scope): Compiled {
  const key = `${scope === 'plain' ? 'p' : scope === 'item' ? 'i' : 'o'}:${expr}`;
  let c = cache.get(key);
  if (!c) {
    const env = envs[scope];
    const parsed = env.parse(expr);
    const usage = { refs: new Set<string>(), dynamic: false };
    stepsUsage(parsed.ast, usage);
    useRe2(parsed.ast);
    c = { run: (ctx) => parsed(ctx), stepRefs: usage.dynamic ? null : [...usage.refs] };
    if (cache.size >= CACHED_EXPRESSIONS || cachedChars + key.length > CACHED_EXPRESSION_CHARS) {
      cache.clear();
      cachedChars = 0;
    }
    // One longer than the whole budget is used, not kept.
    if (key.length <= CACHED_EXPRESSION_CHARS) {
      cache.set(key, c);
      cachedChars += key.length;
    }
  }
  return c;
}

/** How an expression reads `steps`: only by literal ids (then only those need converting), or otherwise. */
function stepsUsage(node: unknown, out: { refs: Set<string>; dynamic: boolean }): void {
  if (Array.isArray(node)) {
    for (const n of node) stepsUsage(n, out);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const n = node as { op?: string; args?: unknown };
  if (n.op === 'id' && n.args === 'steps') {
    out.dynamic = true;
    return;
  }
  if ((n.op === '.' || n.op === '.?' || n.op === '[]' || n.op === '[?]') && Array.isArray(n.args)) {
    const [target, key] = n.args as [{ op?: string; args?: unknown } | null, unknown];
    if (target && target.op === 'id' && target.args === 'steps') {
      const lit =
        typeof key === 'string'
          ? key
          : key && typeof key === 'object' && (key as { op?: string }).op === 'value'
            ? (key as { args?: unknown }).args
            : undefined;
      if (typeof lit === 'string') out.refs.add(lit);
      else out.dynamic = true;
      if (key && typeof key === 'object') stepsUsage(key, out);
      return;
    }
  }
  stepsUsage(n.args, out);
}

/** JSON value -> CEL value: whole numbers become `int` (bigint) so `== 1` and `+ 1` behave. */
function toCel(v: unknown): unknown {
  // Beyond 2^53 a JSON number is not exact anyway; keep it a double rather than overflow int64.
  if (typeof v === 'number') return Number.isSafeInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(toCel);
  if (v !== null && typeof v === 'object') {
    // A Map, not an object: any key is a key. Assigned on an object, `__proto__` set its
    // prototype (`{"__proto__":[1,2,3]}` became a list), and an own `constructor` key made the
    // library take the value for an unsupported type, so any row or payload with one failed.
    const out = new Map<string, unknown>();
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out.set(k, toCel(x));
    return out;
  }
  return v;
}

/**
 * A result JSON cannot carry, or CEL's int64 cannot hold: `1.5 / 0` and `1e308 * 10` were stored
 * as null (JSON has no Infinity) while `1 / 0` was an error, and `int(1e19)` passed. `what`: a
 * number out of range, or a value of a type JSON has no form for.
 */
class UnrepresentableNumber extends Error {
  constructor(
    readonly shown: string,
    readonly what: 'number' | 'value' = 'number',
  ) {
    super(shown);
  }
}
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * The library's own value classes, as JSON: a `uint` as its number, a `duration` as protobuf's
 * JSON form ("31536000s", "1.5s"); a `type` or anything else is refused. Their fields were stored
 * as `{}` before, without an error.
 */
function celValueAsJson(v: object): unknown {
  const kind = (v as { constructor?: { name?: unknown } }).constructor?.name;
  if (kind === 'UnsignedInt' || kind === 'UnsignedInteger') {
    const n = (v as { value?: unknown }).value;
    if (typeof n === 'number' || typeof n === 'bigint') return fromCel(BigInt(n));
  }
  if (kind === 'Duration') {
    const { seconds, nanos } = v as { seconds?: unknown; nanos?: unknown };
    if (
      (typeof seconds === 'number' || typeof seconds === 'bigint') &&
      (typeof nanos === 'number' || nanos === undefined)
    ) {
      // protobuf's form: the sign once, then whole seconds and the fraction (-0.5s has 0 seconds).
      const sign = Number(seconds) < 0 || (nanos ?? 0) < 0 ? '-' : '';
      const whole = String(seconds).replace(/^-/, '');
      const fraction = nanos ? `.${String(Math.abs(nanos)).padStart(9, '0').replace(/0+$/, '')}` : '';
      chargeMapped(SCALAR_CHARS);
      return `${sign}${whole}${fraction}s`;
    }
  }
  throw new UnrepresentableNumber(`a value of CEL type ${typeof kind === 'string' ? kind : 'unknown'}`, 'value');
}

/** CEL value -> JSON value: bigint to number, Map to object, Date to ISO string. Charged to the mapping meter as it goes. */
function fromCel(v: unknown): unknown {
  if (typeof v === 'string') {
    chargeMapped(v.length + 2);
    return v;
  }
  if (typeof v === 'number' && !Number.isFinite(v)) throw new UnrepresentableNumber(String(v));
  if (typeof v === 'bigint') {
    if (v < INT64_MIN || v > INT64_MAX) throw new UnrepresentableNumber(`${v} (outside int64)`);
    chargeMapped(SCALAR_CHARS);
    return Number(v);
  }
  if (Array.isArray(v)) {
    chargeMapped(2 + v.length);
    return v.map(fromCel);
  }
  if (v instanceof Date) {
    chargeMapped(26);
    return v.toISOString();
  }
  if (v instanceof Map) {
    chargeMapped(2);
    return Object.fromEntries(
      [...v.entries()].map(([k, x]) => {
        const key = String(k);
        chargeMapped(key.length + 4);
        return [key, fromCel(x)];
      }),
    );
  }
  if (v instanceof Uint8Array) {
    chargeMapped(2 + 4 * v.length);
    return Array.from(v);
  }
  if (v !== null && typeof v === 'object') {
    if (typeof (v as { hasValue?: unknown }).hasValue === 'function') {
      const o = v as { hasValue(): boolean; value(): unknown };
      return o.hasValue() ? fromCel(o.value()) : null;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) return celValueAsJson(v);
    chargeMapped(2);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      chargeMapped(k.length + 4);
      out[k] = fromCel(x);
    }
    return out;
  }
  chargeMapped(SCALAR_CHARS);
  return v;
}

/** What a number, boolean or null is counted as: about its JSON. */
const SCALAR_CHARS = 6;

/**
 * The bound of the mapping being resolved (null outside resolveMapping): the characters left,
 * and what to say when they run out. Counted while values are converted, so a mapping past its
 * bound stops at the bound instead of copying every reference first.
 */
let meter: { left: number; used: number; expr: string; error: () => MappingLimitError } | null = null;

function chargeMapped(chars: number): void {
  if (!meter) return;
  meter.used += chars;
  if (meter.used > meter.left) throw meter.error();
}

// Converted values by the (immutable) object they came from: a decision evaluates many
// expressions against the same input and step views, and converting them all for each one made
// starting 500 parallel steps quadratic (seconds). cel-js only reads context values.
const celOf = new WeakMap<object, unknown>();
function toCelCached(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return toCel(v);
  let c = celOf.get(v);
  if (c === undefined) {
    c = toCel(v);
    celOf.set(v, c);
  }
  return c;
}

/** The CEL context; `stepRefs` (when known) limits `steps` to the ones the expression reads. */
function celContext(ctx: ExpressionContext, stepRefs: readonly string[] | null): Record<string, unknown> {
  // A Map for the same reason as toCel's objects: a step may be named `constructor`.
  const steps = new Map<string, unknown>();
  if (stepRefs) {
    for (const id of stepRefs) if (Object.hasOwn(ctx.steps, id)) steps.set(id, toCelCached(ctx.steps[id]));
  } else {
    for (const [id, view] of Object.entries(ctx.steps)) steps.set(id, toCelCached(view));
  }
  const c: Record<string, unknown> = {
    input: toCelCached(ctx.input ?? {}),
    steps,
    execution: toCel(ctx.execution ?? {}),
  };
  if ('item' in ctx) c['item'] = toCel(ctx.item ?? null);
  if ('index' in ctx) c['index'] = BigInt(ctx.index ?? 0);
  if ('output' in ctx) c['output'] = toCel(ctx.output ?? null);
  return c;
}

/** Evaluate one expression (bare or wrapped) to a JSON value. Throws ExpressionError. */
export function evaluateExpression(source: string, ctx: ExpressionContext): unknown {
  const expr = unwrapExpression(source);
  return withExpressionBudget(() => {
    // Already over budget in this decision: do not start another evaluation.
    if (budget.tripped) throw limitError(expr);
    let value: unknown;
    try {
      const c = compiled(expr, 'output' in ctx ? 'item_output' : 'item' in ctx ? 'item' : 'plain');
      value = c.run(celContext(ctx, c.stepRefs));
    } catch (e) {
      if (budget.tripped) throw limitError(expr);
      throw new ExpressionError(
        expr,
        `expression "${expr}" failed: ${firstLine(e).replaceAll(RE2_MATCHES, 'matches')}`,
      );
    }
    // `exists`/`all` may swallow an error of one element (CEL semantics), the budget's included.
    if (budget.tripped) throw limitError(expr);
    try {
      return fromCel(value);
    } catch (e) {
      if (e instanceof UnrepresentableNumber)
        throw new ExpressionError(expr, `expression "${expr}" gave ${e.shown}, not a ${e.what} JSON can hold`);
      throw e;
    }
  });
}

/** Evaluate a condition; anything but a boolean is an error (no truthiness guessing). */
export function evaluateCondition(source: string, ctx: ExpressionContext): boolean {
  const v = evaluateExpression(source, ctx);
  if (typeof v !== 'boolean') {
    throw new ExpressionError(
      unwrapExpression(source),
      `condition "${unwrapExpression(source)}" gave ${typeof v}, not a boolean`,
    );
  }
  return v;
}

/**
 * Resolve a mapping (`with`, `outputs`) against a context: see the syntax rules at the top.
 * What it produces is bounded, in characters of JSON: a step's input (and a compensation's) by
 * WORKFLOW_MAX_STEP_INPUT_BYTES, the outputs (`kind: 'outputs'`) by WORKFLOW_MAX_OUTPUT_BYTES,
 * and all of one decision's mappings together by WORKFLOW_MAX_DECISION_INPUT_BYTES.
 */
export function resolveMapping(value: unknown, ctx: ExpressionContext, kind: 'input' | 'outputs' = 'input'): unknown {
  return metered(kind, () => resolveMappingIn(value, ctx));
}

/**
 * A for_each step's `items`, bounded like a mapping (the list is stored whole in StepExpanded):
 * `input.items.map(i, input.o)` over 1,000 items otherwise made one 40 MB event of a 44 KB input.
 * Counted against the decision's bound, WORKFLOW_MAX_DECISION_INPUT_BYTES.
 */
export function evaluateItems(source: string, ctx: ExpressionContext): unknown {
  return metered('items', () => {
    if (meter) meter.expr = unwrapExpression(source);
    return evaluateExpression(source, ctx);
  });
}

/** Run `fn` (which converts expression values) under a mapping meter of `kind`'s bound, within the decision's. */
function metered<T>(kind: 'input' | 'outputs' | 'items', fn: () => T): T {
  return withExpressionBudget(() => {
    const l = workflowLimits();
    const own =
      kind === 'outputs' ? l.maxOutputChars : kind === 'items' ? l.maxDecisionMappingChars : l.maxStepInputChars;
    const decisionLeft = l.maxDecisionMappingChars - budget.mapped;
    const perMapping = own <= decisionLeft && kind !== 'items';
    const m = {
      left: Math.min(own, decisionLeft),
      used: 0,
      expr: '',
      error: () =>
        new MappingLimitError(
          m.expr,
          perMapping
            ? kind === 'outputs'
              ? `the workflow's outputs would be larger than ${own} characters of JSON (WORKFLOW_MAX_OUTPUT_BYTES)`
              : `the step's input would be larger than ${own} characters of JSON (WORKFLOW_MAX_STEP_INPUT_BYTES)`
            : `the inputs, items and outputs this decision resolves would be larger than ${l.maxDecisionMappingChars} characters of JSON together (WORKFLOW_MAX_DECISION_INPUT_BYTES)`,
          kind === 'outputs' ? 'output_limit_exceeded' : 'input_limit_exceeded',
        ),
    };
    const outer = meter;
    meter = m;
    try {
      return fn();
    } finally {
      meter = outer;
      budget.mapped += m.used;
    }
  });
}

function resolveMappingIn(value: unknown, ctx: ExpressionContext): unknown {
  if (typeof value === 'string') {
    const wrapped = WRAPPED.exec(value);
    if (wrapped) {
      if (meter) meter.expr = wrapped[1]!.trim();
      return evaluateExpression(wrapped[1]!, ctx);
    }
    // The template's own text; what the expressions give is charged as they are converted.
    chargeMapped(value.length + 2);
    if (!value.includes('${{')) return value;
    let out = '';
    let at = 0;
    for (const { start, end, expression } of embeddedSpans(value)) {
      if (meter) meter.expr = expression.trim();
      const v = evaluateExpression(expression, ctx);
      out += value.slice(at, start) + (typeof v === 'string' ? v : JSON.stringify(v));
      at = end;
    }
    return out + value.slice(at);
  }
  if (Array.isArray(value)) {
    chargeMapped(2 + value.length);
    return value.map((v) => resolveMappingIn(v, ctx));
  }
  if (value !== null && typeof value === 'object') {
    chargeMapped(2);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      chargeMapped(k.length + 4);
      out[k] = resolveMappingIn(v, ctx);
    }
    return out;
  }
  chargeMapped(SCALAR_CHARS);
  return value;
}
