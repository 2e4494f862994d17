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
 *    for steps listed (transitively) in `needs`, and `item` / `index` inside a `for_each` step.
 *    Missing keys are errors in CEL: use `has(input.x)` or input defaults for optional fields.
 *  - Numbers: JSON integers are CEL `int`, others `double`; mixed int/double arithmetic is allowed
 *    (registered below) so `steps.a.output.total * 1.2` works. Results come back as JSON numbers.
 */
import { Environment, type ASTNode } from '@marcbachmann/cel-js';

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

/** What an expression can see while it is evaluated. */
export interface ExpressionContext {
  readonly input: unknown;
  readonly steps: Readonly<Record<string, StepView>>;
  /** Which execution is evaluating; `execution.id` makes per-execution idempotency keys possible. */
  readonly execution?: ExecutionView;
  readonly item?: unknown;
  readonly index?: number;
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
}

// One expression that is the whole value; `${{ a }}-${{ b }}` is two embedded ones, not one from `a }}-${{ b`.
const WRAPPED = /^\s*\$\{\{((?:(?!\}\})[\s\S])*)\}\}\s*$/;
const EMBEDDED = /\$\{\{([\s\S]*?)\}\}/g;

const limits = { maxAstNodes: 2000, maxDepth: 64, maxListElements: 1000, maxMapEntries: 1000, maxCallArguments: 32 };

function buildEnv(withItem: boolean): Environment {
  const env = new Environment({ homogeneousAggregateLiterals: false, enableOptionalTypes: true, limits })
    .registerVariable('input', 'map')
    .registerVariable('steps', 'map')
    .registerVariable('execution', 'map');
  if (withItem) env.registerVariable('item', 'dyn').registerVariable('index', 'int');
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
  return env;
}

const envPlain = buildEnv(false);
const envItem = buildEnv(true);

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

/** Parse and type-check one CEL expression; `allowItem` admits `item`/`index` (for_each steps). */
export function checkExpression(source: string, options: { allowItem?: boolean } = {}): ExpressionCheck {
  const expr = unwrapExpression(source);
  if (expr.length === 0) return { ok: false, message: 'empty expression', stepRefs: [] };
  const env = options.allowItem ? envItem : envPlain;
  let ast: ASTNode;
  try {
    ast = env.parse(expr).ast;
  } catch (e) {
    return { ok: false, message: firstLine(e), stepRefs: [] };
  }
  const stepRefs = [...collectStepRefs(ast)];
  const checked = env.check(expr);
  if (!checked.valid) return { ok: false, message: firstLine(checked.error), stepRefs };
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
    return [...value.matchAll(EMBEDDED)].map((m) => ({ path, expression: m[1]!.trim() }));
  }
  if (Array.isArray(value)) return value.flatMap((v, i) => mappingExpressions(v, `${path}[${i}]`));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => mappingExpressions(v, path ? `${path}.${k}` : k));
  }
  return [];
}

// Parsed expressions are cached: definitions are re-evaluated on every decision.
const cache = new Map<string, (ctx: Record<string, unknown>) => unknown>();
function compiled(expr: string, withItem: boolean): (ctx: Record<string, unknown>) => unknown {
  const key = `${withItem ? 'i' : 'p'}:${expr}`;
  let fn = cache.get(key);
  if (!fn) {
    const env = withItem ? envItem : envPlain;
    const parsed = env.parse(expr);
    fn = (ctx) => parsed(ctx);
    if (cache.size > 5000) cache.clear();
    cache.set(key, fn);
  }
  return fn;
}

/** JSON value -> CEL value: whole numbers become `int` (bigint) so `== 1` and `+ 1` behave. */
function toCel(v: unknown): unknown {
  // Beyond 2^53 a JSON number is not exact anyway; keep it a double rather than overflow int64.
  if (typeof v === 'number') return Number.isSafeInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(toCel);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = toCel(x);
    return out;
  }
  return v;
}

/** CEL value -> JSON value: bigint to number, Map to object, Date to ISO string. */
function fromCel(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(fromCel);
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Map) return Object.fromEntries([...v.entries()].map(([k, x]) => [String(k), fromCel(x)]));
  if (v instanceof Uint8Array) return Array.from(v);
  if (v !== null && typeof v === 'object') {
    if (typeof (v as { hasValue?: unknown }).hasValue === 'function') {
      const o = v as { hasValue(): boolean; value(): unknown };
      return o.hasValue() ? fromCel(o.value()) : null;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = fromCel(x);
    return out;
  }
  return v;
}

function celContext(ctx: ExpressionContext): Record<string, unknown> {
  const c: Record<string, unknown> = { input: toCel(ctx.input ?? {}), steps: toCel(ctx.steps), execution: toCel(ctx.execution ?? {}) };
  if ('item' in ctx) c['item'] = toCel(ctx.item ?? null);
  if ('index' in ctx) c['index'] = BigInt(ctx.index ?? 0);
  return c;
}

/** Evaluate one expression (bare or wrapped) to a JSON value. Throws ExpressionError. */
export function evaluateExpression(source: string, ctx: ExpressionContext): unknown {
  const expr = unwrapExpression(source);
  try {
    return fromCel(compiled(expr, 'item' in ctx)(celContext(ctx)));
  } catch (e) {
    throw new ExpressionError(expr, `expression "${expr}" failed: ${firstLine(e)}`);
  }
}

/** Evaluate a condition; anything but a boolean is an error (no truthiness guessing). */
export function evaluateCondition(source: string, ctx: ExpressionContext): boolean {
  const v = evaluateExpression(source, ctx);
  if (typeof v !== 'boolean') {
    throw new ExpressionError(unwrapExpression(source), `condition "${unwrapExpression(source)}" gave ${typeof v}, not a boolean`);
  }
  return v;
}

/** Resolve a mapping (`with`, `outputs`) against a context: see the syntax rules at the top. */
export function resolveMapping(value: unknown, ctx: ExpressionContext): unknown {
  if (typeof value === 'string') {
    const wrapped = WRAPPED.exec(value);
    if (wrapped) return evaluateExpression(wrapped[1]!, ctx);
    if (!value.includes('${{')) return value;
    return value.replace(EMBEDDED, (_, expr: string) => {
      const v = evaluateExpression(expr, ctx);
      return typeof v === 'string' ? v : JSON.stringify(v);
    });
  }
  if (Array.isArray(value)) return value.map((v) => resolveMapping(v, ctx));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = resolveMapping(v, ctx);
    return out;
  }
  return value;
}
