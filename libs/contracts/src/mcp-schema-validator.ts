import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsImport from 'ajv-formats';
import { RE2JS } from 're2js';
import { canonicalJson, valueNestsDeeperThan } from '@switchyard/platform';

type FormatsPlugin = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsImport as unknown as { default?: FormatsPlugin }).default ??
  addFormatsImport) as unknown as FormatsPlugin;

/** The result the MCP SDK expects of a schema validator (its `JsonSchemaValidatorResult`). */
export type SchemaCheck<T = unknown> =
  { valid: true; data: T; errorMessage: undefined } | { valid: false; data: undefined; errorMessage: string };

/**
 * The MCP SDK's `jsonSchemaValidator` (`getValidator(schema)`), for schemas that come from a
 * server we do not control: a tool's `outputSchema`, which the SDK client compiles on every
 * `tools/list` and checks each `structuredContent` against, synchronously.
 *
 * The SDK's default (Ajv with JavaScript RegExps) lets that server freeze the process: an
 * `outputSchema` `pattern` like `^(a+)+$` and a result of 44 a's and a `!` hold the event loop
 * for minutes, and in the all-in-one launcher that loop is the whole system's. Here:
 * - `pattern` and `patternProperties` run on RE2 (re2js: linear time, no backtracking);
 * - a schema larger than MAX_SCHEMA_CHARS of JSON or nested deeper than MAX_SCHEMA_DEPTH is not
 *   compiled (compiling is code generation: its cost grows with the schema);
 * - a schema that cannot be compiled (too large, a pattern RE2 does not support such as a
 *   lookahead, an unknown `$ref`) checks nothing: the result passes as the server sent it, and
 *   `onUnusable` hears why. Refusing every result of such a tool would break servers whose
 *   schemas are merely unusual, and the content goes back to the caller unchanged anyway;
 * - compiled validators are kept by the schema's JSON (bounded), so a re-listing recompiles
 *   nothing, and errors stop at the first (a result's error text stays short);
 * - `uniqueItems` checks in one pass over the items (each item's canonical JSON in a set):
 *   Ajv's compares every pair of non-scalar items, and 20,000 rows (220 KB) of a result held
 *   the event loop 6.6 s.
 */
export class SafeMcpSchemaValidator {
  static readonly MAX_SCHEMA_CHARS = 64 * 1024;
  static readonly MAX_SCHEMA_DEPTH = 32;
  private static readonly CACHE_SIZE = 500;
  private ajv: Ajv | undefined;
  private compiles = 0;
  private readonly compiled = new Map<string, ValidateFunction | string>();

  constructor(private readonly onUnusable?: (why: string) => void) {}

  /** Ajv keeps every schema it compiled, by object: a new instance now and then bounds what it holds. */
  private ajvForNext(): Ajv {
    if (!this.ajv || this.compiles >= SafeMcpSchemaValidator.CACHE_SIZE) {
      this.ajv = newAjv();
      this.compiles = 0;
    }
    this.compiles++;
    return this.ajv;
  }

  getValidator<T>(schema: unknown): (input: unknown) => SchemaCheck<T> {
    const validate = this.compile(schema);
    if (typeof validate === 'string') return (input) => ({ valid: true, data: input as T, errorMessage: undefined });
    return (input) =>
      validate(input)
        ? { valid: true, data: input as T, errorMessage: undefined }
        : { valid: false, data: undefined, errorMessage: errorsText(validate) };
  }

  /** The schema's validator, or why it was not compiled. */
  private compile(schema: unknown): ValidateFunction | string {
    let text: string;
    try {
      text = JSON.stringify(schema) ?? 'null';
    } catch (err) {
      return this.unusable(`not JSON: ${String(err)}`);
    }
    const cached = this.compiled.get(text);
    if (cached !== undefined) return cached;
    let result: ValidateFunction | string;
    if (text.length > SafeMcpSchemaValidator.MAX_SCHEMA_CHARS)
      result = this.unusable(`${text.length} characters of JSON, over ${SafeMcpSchemaValidator.MAX_SCHEMA_CHARS}`);
    else if (valueNestsDeeperThan(schema, SafeMcpSchemaValidator.MAX_SCHEMA_DEPTH))
      result = this.unusable(`nested deeper than ${SafeMcpSchemaValidator.MAX_SCHEMA_DEPTH}`);
    else {
      try {
        result = this.ajvForNext().compile(JSON.parse(text) as object);
      } catch (err) {
        result = this.unusable(err instanceof Error ? err.message : String(err));
      }
    }
    if (this.compiled.size >= SafeMcpSchemaValidator.CACHE_SIZE)
      this.compiled.delete(this.compiled.keys().next().value!);
    this.compiled.set(text, result);
    return result;
  }

  private unusable(why: string): string {
    this.onUnusable?.(why);
    return why;
  }
}

function newAjv(): Ajv {
  const regExp = Object.assign(
    (pattern: string, flags: string) => {
      const re = RE2JS.compile(pattern, flags.includes('i') ? RE2JS.CASE_INSENSITIVE : 0);
      // JSON Schema's `pattern` matches anywhere in the string unless the pattern anchors itself.
      // Ajv keeps compiled patterns by their toString(): it must tell patterns apart.
      return { test: (s: string) => re.matcher(s).find(), toString: () => `re2:/${pattern}/${flags}` };
    },
    { code: 're2js' },
  );
  const ajv = new Ajv({
    strict: false,
    validateFormats: true,
    validateSchema: false,
    allErrors: false,
    code: { regExp },
  });
  addFormats(ajv);
  ajv.removeKeyword('uniqueItems');
  ajv.addKeyword({
    keyword: 'uniqueItems',
    type: 'array',
    schemaType: 'boolean',
    errors: false,
    validate: (unique: boolean, items: unknown[]) => !unique || distinctItems(items),
  });
  return ajv;
}

/**
 * JSON Schema's `uniqueItems`: no two items equal as JSON values (objects whatever their key
 * order, 1 and 1.0 alike). Linear in the items' size: each item's canonical JSON goes in a set.
 */
function distinctItems(items: readonly unknown[]): boolean {
  const seen = new Set<string>();
  for (const item of items) {
    const key = canonicalJson(item);
    if (seen.has(key)) return false;
    seen.add(key);
  }
  return true;
}

/** Ajv's text for a validator's last errors (the same wording as its errorsText). */
function errorsText(validate: ValidateFunction): string {
  return (
    (validate.errors ?? []).map((e) => `data${e.instancePath} ${e.message ?? 'is invalid'}`).join(', ') || 'invalid'
  );
}
