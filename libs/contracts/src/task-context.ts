/**
 * The check of an agent task's `context` against its task type's input schema, shared by the
 * dispatcher (at submission) and the agents (before a handler runs), so both refuse and rename
 * the same way:
 * 1. the snake_case spelling of a camelCase field (`customer_id` for `customerId`) is an alias:
 *    renamed to the field before the schema sees it, as every other body of the API is snake_case;
 *    a context that gives both spellings of one field is refused (which one was meant is unknown);
 * 2. a field the schema does not know is refused by name (the schemas are strict: a typo must not
 *    run the task on its defaults), with the field that was probably meant.
 * Aliases are for the top-level fields only; nested records (execution records) take their fields
 * as the schema names them.
 */
import type { z } from 'zod';

/** One problem of a context, as the 400 lists it. */
export interface ContextIssue {
  /** `context.<field>`, or deeper (`context.executions.0.steps.1.stepId`). */
  readonly path: string;
  readonly message: string;
  /** `unknown_field`, `both_spellings`, or the schema's own issue code. */
  readonly code: string;
  /** For an unknown field: the field probably meant. */
  readonly suggestion?: string;
}

export type ContextCheck<T> =
  | {
      readonly success: true;
      /** The context as given, aliases renamed to their fields (what is recorded and sent on). */
      readonly context: Record<string, unknown>;
      /** The schema's output (defaults filled in). */
      readonly data: T;
    }
  | { readonly success: false; readonly issues: readonly ContextIssue[]; readonly message: string };

/** The snake_case spelling of a camelCase name (`customerId` -> `customer_id`); undefined when it has no capital. */
export function snakeCaseOf(name: string): string | undefined {
  return /[A-Z]/.test(name) ? name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) : undefined;
}

interface Def {
  readonly type: string;
  readonly shape?: Record<string, z.ZodType>;
  readonly innerType?: z.ZodType;
  readonly in?: z.ZodType;
  readonly element?: z.ZodType;
}
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The schema under the wrappers that do not change a value's shape (optional, default, nullable, a pipe's input). */
function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (let i = 0; i < 16; i++) {
    const d = defOf(s);
    const next =
      d.type === 'optional' || d.type === 'default' || d.type === 'nullable' || d.type === 'prefault'
        ? d.innerType
        : d.type === 'pipe'
          ? d.in
          : undefined;
    if (!next) return s;
    s = next;
  }
  return s;
}

/** The field names of an object schema (after its wrappers); undefined for any other schema. */
function fieldsOf(schema: z.ZodType): string[] | undefined {
  const d = defOf(unwrap(schema));
  return d.type === 'object' && d.shape ? Object.keys(d.shape) : undefined;
}

/** The fields of the object at `path` inside `schema` (array indexes step into the element). */
function fieldsAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] | undefined {
  let s: z.ZodType | undefined = schema;
  for (const seg of path) {
    if (!s) return undefined;
    const d = defOf(unwrap(s));
    if (d.type === 'array' && typeof seg === 'number') s = d.element;
    else if (d.type === 'object' && typeof seg === 'string') s = d.shape?.[seg];
    else return undefined;
  }
  return s ? fieldsOf(s) : undefined;
}

/** alias -> field for the top-level fields of a task's input schema (`customer_id` -> `customerId`). */
export function contextAliasesOf(schema: z.ZodType): Record<string, string> {
  const fields = fieldsOf(schema) ?? [];
  const out: Record<string, string> = {};
  for (const f of fields) {
    const alias = snakeCaseOf(f);
    if (alias !== undefined && !fields.includes(alias)) out[alias] = f;
  }
  return out;
}

const folded = (name: string): string => name.toLowerCase().replace(/[_\-\s]/g, '');

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The field an unknown name probably meant: the same name in another case or spelling
 * (`customerid`, `CustomerId`, `customer-id`), else the one closest to it within a typo or two
 * (`timefram`); undefined when none is close or two are equally close.
 */
export function suggestField(name: string, fields: readonly string[]): string | undefined {
  const f = folded(name);
  const same = fields.find((k) => folded(k) === f);
  if (same !== undefined) return same;
  const limit = Math.min(2, Math.floor(f.length / 3));
  let best: string | undefined;
  let bestDistance = limit + 1;
  let tie = false;
  for (const k of fields) {
    const d = distance(f, folded(k));
    if (d < bestDistance) [best, bestDistance, tie] = [k, d, false];
    else if (d === bestDistance) tie = true;
  }
  return best !== undefined && !tie ? best : undefined;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `context.a.0.b` for a path inside the context. */
const pathOf = (path: readonly PropertyKey[]): string => ['context', ...path.map(String)].join('.');

/**
 * Check a task's context against its input schema: aliases renamed, both spellings of a field
 * refused, unknown fields refused by name (with the field probably meant), then the schema's
 * own rules. `taskType` only names the type in the messages.
 */
export function checkTaskContext<S extends z.ZodType>(
  taskType: string,
  schema: S,
  raw: unknown,
): ContextCheck<z.output<S>> {
  const given = raw ?? {};
  const issues: ContextIssue[] = [];
  let context = given as Record<string, unknown>;
  if (isPlainObject(given)) {
    const aliases = contextAliasesOf(schema);
    context = {};
    for (const [k, v] of Object.entries(given)) {
      const field = Object.hasOwn(aliases, k) ? aliases[k]! : undefined;
      if (field === undefined) {
        // Set as a property of its own: a key named __proto__ must reach the schema as a key.
        Object.defineProperty(context, k, { value: v, enumerable: true, writable: true, configurable: true });
        continue;
      }
      if (Object.hasOwn(given, field)) {
        issues.push({
          path: pathOf([k]),
          code: 'both_spellings',
          message: `the same field as context.${field}: give one of the two`,
        });
        continue;
      }
      context[field] = v;
    }
  }
  const parsed = schema.safeParse(context);
  if (issues.length === 0 && parsed.success) return { success: true, context, data: parsed.data };
  for (const i of parsed.success ? [] : parsed.error.issues) {
    if (i.code !== 'unrecognized_keys') {
      issues.push({ path: pathOf(i.path), code: i.code, message: i.message });
      continue;
    }
    const fields = fieldsAt(schema, i.path) ?? [];
    const owner = i.path.length === 0 ? taskType : pathOf(i.path);
    for (const key of i.keys) {
      const suggestion = suggestField(key, fields);
      issues.push({
        path: pathOf([...i.path, key]),
        code: 'unknown_field',
        message:
          `not a field of ${owner}` +
          (suggestion !== undefined
            ? `; did you mean ${suggestion}?`
            : ` (its fields: ${fields.join(', ') || 'none'})`),
        ...(suggestion !== undefined ? { suggestion } : {}),
      });
    }
  }
  const text = issues
    .map((i) =>
      i.code === 'unknown_field' || i.code === 'both_spellings'
        ? `${i.path} is ${i.message}`
        : `${i.path} (${i.message})`,
    )
    .join('; ');
  return { success: false, issues, message: `invalid context for ${taskType}: ${text}` };
}
