/**
 * A property-based fuzzer of the HTTP API driven by its own OpenAPI document (for the specs
 * and `npm run fuzz`; not exported from the package). Requests are generated from the
 * document (json-schema-faker builds schema-valid values from a seed fast-check picks), then
 * some are mutated; ajv decides whether each request conforms to the document or violates
 * it, so the class of a request is never guessed by the generator. Every answer is checked
 * against the document: its status must be documented for the operation, its body valid
 * against the schema documented for that status and content type.
 */
import http from 'node:http';
import fc from 'fast-check';
import { generateSync } from 'json-schema-faker';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsImport from 'ajv-formats';

type Schema = Record<string, unknown>;
type FormatsPlugin = (ajv: Ajv2020) => Ajv2020;
const addFormats = ((addFormatsImport as unknown as { default?: FormatsPlugin }).default ??
  addFormatsImport) as unknown as FormatsPlugin;

export interface Param {
  readonly name: string;
  readonly in: 'path' | 'query' | 'header';
  readonly required: boolean;
  readonly schema: Schema;
}
interface MediaDoc {
  readonly schema?: Schema;
}
interface ResponseDoc {
  readonly content?: Record<string, MediaDoc>;
  readonly headers?: Record<string, unknown>;
}
export interface OpenApiDoc {
  readonly paths: Record<string, Record<string, OperationDoc>>;
  readonly components?: {
    readonly schemas?: Record<string, Schema>;
    readonly securitySchemes?: Record<string, unknown>;
  };
}
interface OperationDoc {
  readonly parameters?: Param[];
  readonly requestBody?: { readonly required?: boolean; readonly content?: Record<string, MediaDoc> };
  readonly responses: Record<string, ResponseDoc>;
  readonly security?: unknown[];
  readonly 'x-required-role'?: string | null;
}

export interface Operation {
  readonly method: string;
  readonly path: string;
  /** `public`, `viewer`, `operator` or `admin`. */
  readonly role: string;
  readonly params: readonly Param[];
  readonly body?: Schema;
  readonly bodyRequired: boolean;
  readonly responses: Record<string, ResponseDoc>;
  /** Methods documented on the same path. */
  readonly siblings: readonly string[];
}

export type Caller = 'none' | 'bad' | 'viewer' | 'operator' | 'admin';
/** What the request was made as: conforming, violating the document, hostile (may be either), or a method the path does not have. */
export type Kind = 'valid' | 'invalid' | 'hostile' | 'wrong-method';

export interface FuzzRequest {
  readonly op: Operation;
  readonly caller: Caller;
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
  readonly kind: Kind;
  /** How it was made (e.g. `body: drop required customer_id`). */
  readonly how: string;
}

export interface Outcome {
  readonly status: number | 'no answer';
  /** Empty when every property held. */
  readonly violations: string[];
}

const ROLE_RANK: Record<string, number> = { viewer: 0, operator: 1, admin: 2 };
/** Marks a request whose class the document does not settle (see Oracle.checkParams). */
const AMBIGUOUS = 'ambiguous number form:';
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'];

/** Every operation of the document, with its parameters, body and responses. */
export function operationsOf(doc: OpenApiDoc): Operation[] {
  return Object.entries(doc.paths).flatMap(([path, byMethod]) => {
    const siblings = Object.keys(byMethod).map((m) => m.toUpperCase());
    return Object.entries(byMethod).map(([method, op]) => ({
      method: method.toUpperCase(),
      path,
      role: op['x-required-role'] ?? 'admin',
      params: op.parameters ?? [],
      ...(op.requestBody?.content?.['application/json']?.schema
        ? { body: op.requestBody.content['application/json'].schema }
        : {}),
      bodyRequired: op.requestBody?.required === true,
      responses: op.responses,
      siblings,
    }));
  });
}

/** Whether a caller may call a route of this role (the answer must otherwise be 401 or 403). */
export function callerAllowed(caller: Caller, role: string): boolean {
  if (role === 'public') return true;
  if (caller === 'none' || caller === 'bad') return false;
  return ROLE_RANK[caller]! >= (ROLE_RANK[role] ?? 2);
}

// ---- the oracle: ajv over the document ----------------------------------------------

/**
 * Validators for the document's schemas. `#/components/schemas/X` references are resolved
 * against the document; query, path and header values are validated as an OpenAPI server
 * reads them (strings coerced to the parameter's type).
 */
export class Oracle {
  private readonly strict: Ajv2020;
  private readonly coercing: Ajv2020;
  private readonly cache = new Map<string, ValidateFunction>();

  constructor(private readonly doc: OpenApiDoc) {
    const make = (coerceTypes: boolean) => {
      const ajv = new Ajv2020({ strict: false, allErrors: false, coerceTypes, logger: false, validateFormats: true });
      addFormats(ajv);
      return ajv;
    };
    this.strict = make(false);
    this.coercing = make(true);
  }

  private deref(schema: unknown): unknown {
    if (Array.isArray(schema)) return schema.map((s) => this.deref(s));
    if (!schema || typeof schema !== 'object') return schema;
    const s = schema as Schema;
    const ref = s.$ref;
    if (typeof ref === 'string' && ref.startsWith('#/components/schemas/')) {
      return this.deref(this.doc.components?.schemas?.[ref.slice('#/components/schemas/'.length)] ?? {});
    }
    return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, this.deref(v)]));
  }

  private compile(key: string, schema: unknown, coerce: boolean): ValidateFunction {
    let fn = this.cache.get(key);
    if (!fn) {
      fn = (coerce ? this.coercing : this.strict).compile(this.deref(schema) as Schema);
      this.cache.set(key, fn);
    }
    return fn;
  }

  /** undefined when `value` is valid against `schema`, else the first error. */
  check(key: string, schema: unknown, value: unknown): string | undefined {
    const fn = this.compile(key, schema, false);
    if (fn(value)) return undefined;
    const e = fn.errors?.[0];
    return e
      ? `${e.instancePath || '(root)'} ${e.message ?? 'invalid'}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`
      : 'invalid';
  }

  /** undefined when the parameters of one location conform (values as strings, coerced), else why not. */
  checkParams(op: Operation, where: 'path' | 'query' | 'header', values: Record<string, string>): string | undefined {
    const params = op.params.filter((p) => p.in === where);
    const schema = {
      type: 'object',
      properties: Object.fromEntries(params.map((p) => [where === 'header' ? p.name.toLowerCase() : p.name, p.schema])),
      required: params.filter((p) => p.required).map((p) => (where === 'header' ? p.name.toLowerCase() : p.name)),
    };
    const fn = this.compile(`${op.method} ${op.path} ${where}`, schema, true);
    const copy: Record<string, unknown> = { ...values }; // coercion rewrites values in place
    // How a query or header string maps to a number is not in the document beyond plain decimal
    // digits: `1e3`, ` 5`, `+5`, `0x10` are read one way by ajv's coercion and another by the
    // gateway's. Such a request is neither valid nor invalid: it is kept as hostile.
    for (const p of params) {
      const name = where === 'header' ? p.name.toLowerCase() : p.name;
      const v = copy[name];
      if (
        typeof v === 'string' &&
        v !== '' &&
        /"type":"(integer|number)"/.test(JSON.stringify(p.schema)) &&
        !/^-?\d+(\.\d+)?$/.test(v)
      ) {
        if (v.trim() === '' || /^\s*[-+]?(\d|\.\d|0x|Infinity)/i.test(v))
          return `${AMBIGUOUS} ${where} ${name} = ${JSON.stringify(v)}`;
      }
    }
    if (fn(copy)) return undefined;
    const e = fn.errors?.[0];
    return e ? `${where} ${e.instancePath || '(root)'} ${e.message ?? 'invalid'}` : `${where} invalid`;
  }
}

// ---- values from schemas ----------------------------------------------------------------

/** date-time values with any RFC 3339 offset (-23:59..+23:59), not only `Z`. */
function dateTime(rng: { next(): number }): string {
  const random = () => rng.next();
  const ms = Date.UTC(2000, 0, 1) + Math.floor(random() * 100 * 365 * 86_400_000);
  const base = new Date(ms).toISOString().slice(0, 19);
  const r = random();
  if (r < 0.3) return `${base}Z`;
  const h = Math.floor(random() * 24);
  const m = Math.floor(random() * 60);
  const frac = random() < 0.3 ? `.${String(Math.floor(random() * 1000)).padStart(3, '0')}` : '';
  return `${base}${frac}${random() < 0.5 ? '+' : '-'}${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
}

/**
 * Narrowing of the generated (still valid) values so a run stays short: a `wait_ms` is kept
 * under a second (a positive case must not sit out the full wait), and so are timeouts.
 */
function narrowed(name: string, schema: Schema): Schema {
  if (/(^|_)wait_ms$|timeout_ms$|duration_ms$/.test(name) && (schema.type === 'integer' || schema.type === 'number')) {
    return { ...schema, maximum: Math.min(typeof schema.maximum === 'number' ? schema.maximum : 1_000, 1_000) };
  }
  return schema;
}

/** A schema-valid value, from json-schema-faker with a seed fast-check picked. */
export function sample(schema: Schema, seed: number, name = ''): unknown {
  const s = narrowed(name, schema);
  return generateSync(s, {
    seed,
    maxDepth: 4,
    maxItems: 3,
    maxLength: 40,
    optionalsProbability: 0.6,
    useDefaultValue: false,
    failOnInvalidTypes: false,
    formats: { 'date-time': dateTime },
  });
}

const asParam = (v: unknown): string => (typeof v === 'string' ? v : (JSON.stringify(v) ?? ''));

// ---- negative and hostile values ------------------------------------------------------

/** Values of every JSON type, and strings at the edges. */
const probe = fc.constantFrom<unknown>(
  12345,
  -1,
  0,
  1.5,
  1e308,
  -2147483649,
  // eslint-disable-next-line no-loss-of-precision -- a number past 2^53 on purpose
  9007199254740993,
  '',
  ' ',
  'x'.repeat(5_000),
  'not-a-date',
  '2026-13-45T25:61:61Z',
  '2026-08-09T03:36:25+16:00',
  '../../etc/passwd',
  true,
  false,
  null,
  [],
  [1, 'a'],
  {},
  { nested: { deep: true } },
);

const nastyConstants = [
  '__proto__',
  'constructor',
  'prototype',
  '../../etc/passwd',
  '..%2F..%2Fetc%2Fpasswd',
  '%2e%2e%2f',
  '..\\..\\windows',
  '%00',
  '\u0000',
  '-1',
  '-0',
  '1e309',
  'NaN',
  'Infinity',
  '9007199254740993',
  '0x10',
  '1.5',
  ' ',
  '',
  'null',
  'true',
  '[]',
  '{}',
  '${jndi:ldap://x/a}',
  "'; drop table security.api_keys; --",
  '<script>alert(1)</script>',
  '\u202egnp.exe',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 👩‍👩‍👧 ﷽',
  '\ud800',
  'Ω≈ç√∫',
  '\r\n',
];
const nastyString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...nastyConstants) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.integer({ min: 2_000, max: 30_000 }).map((n) => 'x'.repeat(n)) },
);
const nastyValue: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    nastyString,
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(nastyString, tie('v'), { maxKeys: 3 }),
  ),
})).v;

/** Paths of every value inside a JSON value (objects and arrays), the root first. */
function pathsOf(v: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(at);
  if (out.length > 60) return out;
  if (Array.isArray(v)) v.forEach((x, i) => pathsOf(x, [...at, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) pathsOf(x, [...at, k], out);
  return out;
}

function setAt(root: unknown, at: readonly (string | number)[], value: unknown, drop = false): unknown {
  if (at.length === 0) return value;
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let cur = copy;
  for (const k of at.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  const last = at[at.length - 1]!;
  if (drop) {
    if (Array.isArray(cur)) cur.splice(Number(last), 1);
    else delete cur[last];
  } else cur[last] = value;
  return copy;
}

/** A change to a valid JSON value: a value replaced by a probe, a field dropped, an unknown field added. */
function mutation(valid: unknown): fc.Arbitrary<{ value: unknown; how: string }> {
  const paths = pathsOf(valid);
  const objects = paths.filter((p) => {
    let cur: unknown = valid;
    for (const k of p) cur = (cur as Record<string | number, unknown>)[k];
    return cur !== null && typeof cur === 'object' && !Array.isArray(cur);
  });
  const fields = paths.filter((p) => p.length > 0);
  const where = (p: readonly (string | number)[]) => p.join('.') || '(root)';
  return fc.oneof(
    fc
      .tuple(fc.constantFrom(...paths), probe)
      .map(([p, v]) => ({ value: setAt(valid, p, v), how: `${where(p)} = ${JSON.stringify(v)?.slice(0, 40)}` })),
    ...(fields.length
      ? [fc.constantFrom(...fields).map((p) => ({ value: setAt(valid, p, undefined, true), how: `drop ${where(p)}` }))]
      : []),
    ...(objects.length
      ? [
          fc
            .tuple(fc.constantFrom(...objects), fc.constantFrom('zz_unknown', 'extra', '__proto__x'))
            .map(([p, k]) => ({ value: setAt(valid, [...p, k], 1), how: `add ${where([...p, k])}` })),
        ]
      : []),
  );
}

const deepJson = fc
  .tuple(fc.integer({ min: 70, max: 20_000 }), fc.boolean())
  .map(([d, arr]) => (arr ? '['.repeat(d) + ']'.repeat(d) : '{"a":'.repeat(d) + '1' + '}'.repeat(d)));
const invalidJson = fc.constantFrom(
  '{',
  '{"a":',
  '[1,]',
  "{'a':1}",
  'undefined',
  '{"a":1}}',
  '\u0000',
  'nul',
  '"\\ud800"',
  '{"a":"\\u0000"}',
);
const pollution = fc.constantFrom(
  '{"__proto__":{"polluted":"yes"}}',
  '{"constructor":{"prototype":{"polluted":"yes"}}}',
  '{"name":"x","role":"viewer","__proto__":{"role":"admin","polluted":"yes"}}',
);
const oddContentType = fc.constantFrom(
  'text/plain',
  'application/json; charset=utf-16',
  'application/json; charset=koi8-r',
  'application/x-www-form-urlencoded',
  'application/xml',
  ';;;',
  'application/json; charset=',
);

/**
 * encodeURIComponent, except that an unpaired surrogate (which it refuses) is sent as its
 * CESU-8 bytes: invalid UTF-8 the server must cope with.
 */
function enc(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return [...s]
      .map((ch) => {
        const c = ch.charCodeAt(0);
        if (ch.length !== 1 || c < 0xd800 || c > 0xdfff) return encodeURIComponent(ch);
        return [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)]
          .map((b) => `%${b.toString(16).toUpperCase()}`)
          .join('');
      })
      .join('');
  }
}
// Header values must be ByteStrings without CR, LF or NUL, or fetch refuses to send them.
const headerSafe = (s: string): string => s.replace(/[^\x20-\x7e\x80-\xff]/g, '?').slice(0, 4_000);

// ---- requests ------------------------------------------------------------------------------

interface Parts {
  path: Record<string, string>;
  query: [string, string][];
  headers: Record<string, string>;
  body: string | undefined;
  contentType: string | undefined;
  how: string;
  /** For hostile parts: the request is malformed before the document even applies (bad JSON, too deep, too large). */
  malformed?: boolean;
}

function validParts(op: Operation, seed: number): Parts {
  const path: Record<string, string> = {};
  const query: [string, string][] = [];
  const headers: Record<string, string> = {};
  let i = 0;
  for (const p of op.params) {
    i++;
    const optionalSkipped = !p.required && (seed + i) % 3 === 0;
    if (optionalSkipped) continue;
    const v = asParam(sample(p.schema, seed + i * 7919, p.name));
    if (p.in === 'path') path[p.name] = v;
    else if (p.in === 'query') query.push([p.name, v]);
    else headers[p.name.toLowerCase()] = headerSafe(v);
  }
  const body = op.body ? JSON.stringify(sample(op.body, seed)) : undefined;
  return {
    path,
    query,
    headers,
    body,
    contentType: body === undefined ? undefined : 'application/json',
    how: 'generated',
  };
}

function invalidParts(op: Operation, base: Parts, bodyValue: unknown): fc.Arbitrary<Parts> {
  const options: fc.Arbitrary<Parts>[] = [];
  if (op.body) {
    options.push(mutation(bodyValue).map((m) => ({ ...base, body: JSON.stringify(m.value), how: `body: ${m.how}` })));
    if (op.bodyRequired)
      options.push(fc.constant({ ...base, body: undefined, contentType: undefined, how: 'no body' }));
  }
  for (const p of op.params) {
    const bad = fc.oneof(
      probe.map(asParam),
      fc.constantFrom('', 'x', '-5', '0', '1e3', 'true', 'nope', '99999999999999999999'),
    );
    if (p.in === 'path')
      options.push(
        bad
          .filter((v) => !['', '.', '..'].includes(v))
          .map((v) => ({
            ...base,
            path: { ...base.path, [p.name]: v },
            how: `path ${p.name} = ${JSON.stringify(v).slice(0, 40)}`,
          })),
      );
    if (p.in === 'query')
      options.push(
        bad.map((v) => ({
          ...base,
          query: [...base.query.filter(([k]) => k !== p.name), [p.name, v]],
          how: `query ${p.name} = ${JSON.stringify(v).slice(0, 40)}`,
        })),
      );
    if (p.in === 'header')
      options.push(
        bad.map((v) => ({
          ...base,
          headers: { ...base.headers, [p.name.toLowerCase()]: headerSafe(v) },
          how: `header ${p.name} = ${JSON.stringify(v).slice(0, 40)}`,
        })),
      );
    if (p.required && p.in === 'query')
      options.push(
        fc.constant({ ...base, query: base.query.filter(([k]) => k !== p.name), how: `drop query ${p.name}` }),
      );
  }
  // A query parameter the route does not declare.
  options.push(
    fc
      .constantFrom('zz_unknown', 'debug', 'admin')
      .map((k) => ({ ...base, query: [...base.query, [k, '1'] as [string, string]], how: `unknown query ${k}` })),
  );
  return fc.oneof(...options);
}

function hostileParts(op: Operation, base: Parts): fc.Arbitrary<Parts> {
  const canHaveBody = !['GET', 'HEAD', 'OPTIONS'].includes(op.method);
  const options: fc.Arbitrary<Parts>[] = [
    nastyValue.map((v) => ({
      ...base,
      body: canHaveBody ? JSON.stringify(v) : base.body,
      contentType: canHaveBody ? 'application/json' : base.contentType,
      how: 'nasty body',
    })),
    fc
      .constantFrom('__proto__[x]=1', 'constructor[prototype][x]=1', 'a[b][c][d]=1', 'x=%E0%A4%A')
      .map((q) => ({ ...base, query: [...base.query, [q, ''] as [string, string]], how: `odd query ${q}` })),
    fc
      .tuple(
        fc.constantFrom(
          ...op.params
            .filter((p) => p.in !== 'header')
            .map((p) => p.name)
            .concat(['zz']),
        ),
        nastyString,
      )
      .map(([name, v]) => {
        const p = op.params.find((x) => x.name === name);
        return p?.in === 'path' && !['', '.', '..'].includes(v)
          ? { ...base, path: { ...base.path, [name]: v }, how: `nasty path ${name}` }
          : {
              ...base,
              query: [...base.query.filter(([k]) => k !== name), [name, v] as [string, string]],
              how: `nasty query ${name}`,
            };
      }),
  ];
  if (canHaveBody) {
    options.push(
      invalidJson.map((b) => ({
        ...base,
        body: b,
        contentType: 'application/json',
        how: 'invalid JSON',
        malformed: true,
      })),
      deepJson.map((b) => ({ ...base, body: b, contentType: 'application/json', how: 'deep JSON', malformed: true })),
      pollution.map((b) => ({ ...base, body: b, contentType: 'application/json', how: 'prototype pollution' })),
      oddContentType.map((t) => ({ ...base, contentType: t, body: base.body ?? '{}', how: `content-type ${t}` })),
      // Over the 1 MB body limit: 413.
      fc.integer({ min: 1_100_000, max: 1_300_000 }).map((n) => ({
        ...base,
        body: JSON.stringify({ name: 'x'.repeat(n) }),
        contentType: 'application/json',
        how: 'huge body',
        malformed: true,
      })),
    );
  }
  return fc.oneof(...options);
}

/**
 * Whether a request conforms to the document. Parameters are checked as strings coerced
 * to their types; a query parameter the operation does not declare counts as a violation
 * (the gateway refuses them, and its document says so); the body against its schema.
 */
export function conforms(oracle: Oracle, op: Operation, parts: Parts): string | undefined {
  const declaredQuery = new Set(op.params.filter((p) => p.in === 'query').map((p) => p.name));
  const unknown = parts.query.find(([k]) => !declaredQuery.has(k));
  if (unknown) return `undeclared query parameter ${unknown[0]}`;
  if (new Set(parts.query.map(([k]) => k)).size !== parts.query.length) return 'a repeated query parameter';
  for (const [where, values] of [
    ['path', parts.path],
    ['query', Object.fromEntries(parts.query)],
    ['header', parts.headers],
  ] as const) {
    const why = oracle.checkParams(op, where, values);
    if (why) return why;
  }
  // An empty or dot segment never reaches the route (URLs resolve `.` and `..`, even encoded).
  if (Object.values(parts.path).some((v) => v === '' || v === '.' || v === '..')) return 'an empty or dot path segment';
  if (op.body) {
    if (parts.body === undefined) return op.bodyRequired ? 'no body' : undefined;
    if (parts.contentType !== 'application/json') return `content-type ${parts.contentType}`;
    let value: unknown;
    try {
      value = JSON.parse(parts.body);
    } catch {
      return 'a body that is not JSON';
    }
    return oracle.check(`${op.method} ${op.path} body`, op.body, value);
  }
  return undefined;
}

/** One request for an operation of one kind, as a caller. */
export function requestArb(
  op: Operation,
  oracle: Oracle,
  keys: Record<Caller, string | undefined>,
): fc.Arbitrary<FuzzRequest> {
  const callers: Caller[] = ['none', 'bad', 'viewer', 'operator', 'admin'];
  const allowed = callers.filter((c) => callerAllowed(c, op.role));
  const callerArb = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...allowed) },
    { weight: 1, arbitrary: fc.constantFrom(...callers) },
  );
  const wrongMethods = METHODS.filter(
    (m) => !op.siblings.includes(m) && !(m === 'HEAD' && op.siblings.includes('GET')),
  );
  return fc
    .record({
      seed: fc.integer({ min: 0, max: 2 ** 30 }),
      caller: callerArb,
      kind: fc.constantFrom<Kind>(
        'valid',
        'valid',
        'invalid',
        'invalid',
        'hostile',
        ...(wrongMethods.length ? (['wrong-method'] as const) : []),
      ),
    })
    .chain(({ seed, caller, kind }) => {
      const base = validParts(op, seed);
      const bodyValue = base.body === undefined ? undefined : (JSON.parse(base.body) as unknown);
      const parts: fc.Arbitrary<Parts> =
        kind === 'invalid'
          ? invalidParts(op, base, bodyValue)
          : kind === 'hostile'
            ? hostileParts(op, base)
            : fc.constant(base);
      const method = kind === 'wrong-method' ? fc.constantFrom(...wrongMethods) : fc.constant(op.method);
      return fc.tuple(parts, method).map(([p, m]): FuzzRequest => {
        // The oracle has the last word on what a generated or mutated request is.
        const why = kind === 'wrong-method' ? undefined : p.malformed ? 'malformed' : conforms(oracle, op, p);
        const finalKind: Kind =
          kind === 'wrong-method'
            ? kind
            : why === undefined
              ? 'valid'
              : kind === 'hostile' || why.startsWith(AMBIGUOUS)
                ? 'hostile'
                : 'invalid';
        const url =
          op.path.replace(/\{([^}]+)\}/g, (_, name: string) => enc(p.path[name] ?? 'x')) +
          (p.query.length ? `?${p.query.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&')}` : '');
        const key = keys[caller];
        const headers: Record<string, string> = { ...p.headers, ...(key ? { authorization: `Bearer ${key}` } : {}) };
        const canHaveBody = !['GET', 'HEAD', 'OPTIONS', 'TRACE'].includes(m);
        if (canHaveBody && p.body !== undefined && p.contentType) headers['content-type'] = p.contentType;
        return {
          op,
          caller,
          method: m,
          url,
          headers,
          ...(canHaveBody && p.body !== undefined ? { body: p.body } : {}),
          kind: finalKind,
          how:
            kind === 'wrong-method'
              ? `method ${m}`
              : why && finalKind === 'valid'
                ? p.how
                : `${p.how}${why ? ` (${why.slice(0, 120)})` : ''}`,
        };
      });
    });
}

// ---- checking an answer -----------------------------------------------------------------

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | undefined>;
  readonly text: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/**
 * One request over node:http (fetch refuses TRACE and some header values a client may send).
 * An event stream is read only up to its headers.
 */
function send(base: string, req: FuzzRequest, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const body = req.body === undefined ? undefined : Buffer.from(req.body);
    const r = http.request(
      {
        host: u.hostname,
        port: u.port,
        method: req.method,
        path: req.url,
        agent,
        headers: { ...req.headers, ...(body ? { 'content-length': String(body.length) } : {}) },
        timeout: timeoutMs,
      },
      (res) => {
        const headers = Object.fromEntries(
          Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v]),
        );
        if ((headers['content-type'] ?? '').startsWith('text/event-stream')) {
          res.destroy();
          return resolve({ status: res.statusCode ?? 0, headers, text: '' });
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    r.on('error', reject);
    r.end(body);
  });
}

const VALIDATION_DETAIL = /^invalid (body|query|params|headers) fields?:/;

/**
 * A 400 whose every field error is a `custom` rule: a rule between fields (`until` before
 * `since`, `stream` with `stream_prefix`) that the JSON Schema of one parameter cannot carry;
 * the parameters' descriptions say it.
 */
function onlyCrossFieldRules(text: string): boolean {
  try {
    const errors = (JSON.parse(text) as { errors?: { code?: string }[] }).errors ?? [];
    return errors.length > 0 && errors.every((e) => e.code === 'custom');
  } catch {
    return false;
  }
}

/** Send one request and check every property; never throws. */
export async function exercise(base: string, req: FuzzRequest, oracle: Oracle, timeoutMs = 10_000): Promise<Outcome> {
  const shown = `${req.caller} ${req.method} ${req.url.slice(0, 200)}${req.body !== undefined ? ` body ${req.body.slice(0, 160)}` : ''} [${req.kind}: ${req.how.slice(0, 160)}]`;
  let res: Answer;
  try {
    res = await send(base, req, timeoutMs);
  } catch (err) {
    const e = err as Error;
    return { status: 'no answer', violations: [`no answer (${e.name}: ${e.message}) to ${shown}`] };
  }
  const status = res.status;
  const type = (res.headers['content-type'] ?? '').split(';')[0]!.trim();
  const text = res.text;
  const where = `${shown} -> ${status} ${type} ${text.slice(0, 300)}`;
  const v: string[] = [];
  const op = req.op;

  if (status >= 500 && !(status === 503 && op.responses['503'])) v.push(`unexpected ${status}: ${where}`);

  if (req.kind === 'wrong-method') {
    if (req.method === 'HEAD' && op.siblings.includes('GET')) return { status, violations: v };
    if (status !== 405) v.push(`a method the path does not have answered ${status}, not 405: ${where}`);
    const allow = res.headers.allow;
    if (status === 405 && (!allow || !op.siblings.every((m) => allow.split(/\s*,\s*/).includes(m))))
      v.push(`405 whose Allow (${allow}) does not list ${op.siblings.join(', ')}: ${where}`);
  } else {
    const documented = op.responses[String(status)] ?? op.responses[`${String(status)[0]}XX`] ?? op.responses.default;
    if (!documented) v.push(`status ${status} is not documented for ${op.method} ${op.path}: ${where}`);
    else if (req.method !== 'HEAD' && status !== 204 && status !== 304) {
      const content = documented.content;
      if (content && Object.keys(content).length > 0) {
        const media = content[type] ?? Object.entries(content).find(([t]) => t.split(';')[0]!.trim() === type)?.[1];
        if (!media)
          v.push(
            `content-type ${type || '(none)'} is not documented for ${status} (${Object.keys(content).join(', ')}): ${where}`,
          );
        else if (media.schema && /json/.test(type)) {
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            v.push(`a JSON answer that does not parse: ${where}`);
          }
          if (body !== undefined) {
            const why = oracle.check(`${op.method} ${op.path} ${status} ${type}`, media.schema, body);
            if (why) v.push(`answer does not match its documented schema (${why}): ${where}`);
          }
        }
      }
    }
    if (status >= 400 && type !== 'application/problem+json') v.push(`an error that is not problem+json: ${where}`);
    if (status >= 400 && type === 'application/problem+json') {
      try {
        const p = JSON.parse(text) as { status?: unknown };
        if (p.status !== status) v.push(`problem.status ${String(p.status)} differs from ${status}: ${where}`);
      } catch {
        /* reported above as not parsing */
      }
    }
    if (status === 401 && !res.headers['www-authenticate']) v.push(`401 without WWW-Authenticate: ${where}`);
    if (status === 429 && !res.headers['retry-after']) v.push(`429 without Retry-After: ${where}`);
    if (status === 405 && !res.headers.allow) v.push(`405 without Allow: ${where}`);

    const allowed = callerAllowed(req.caller, op.role);
    if (!allowed) {
      const want = req.caller === 'none' || req.caller === 'bad' ? 401 : 403;
      // Refused before the request is read (431: request line or headers too large) or
      // before the key is checked (429: per-address limit): no role can be known yet.
      if (status !== want && status !== 431 && status !== 429)
        v.push(`a ${req.caller} caller on a ${op.role} route got ${status}, not ${want}: ${where}`);
    } else if (req.kind === 'invalid' && status < 400) {
      v.push(`a request violating the document was accepted (${status}): ${where}`);
    } else if (req.kind === 'valid' && status === 400) {
      const detail = (() => {
        try {
          return String((JSON.parse(text) as { detail?: unknown }).detail ?? '');
        } catch {
          return '';
        }
      })();
      if (VALIDATION_DETAIL.test(detail) && !onlyCrossFieldRules(text))
        v.push(`a request conforming to the document was refused by validation: ${where}`);
    }
  }
  return { status, violations: v };
}

/** Counts per operation, kind and status, and the first violation of each (operation, status). */
export class Tally {
  readonly counts = new Map<string, Map<string, number>>();
  readonly violations = new Map<string, string>();
  requests = 0;

  add(req: FuzzRequest, out: Outcome): void {
    this.requests++;
    const route = `${req.op.method} ${req.op.path}`;
    const row = this.counts.get(route) ?? new Map<string, number>();
    const cell = `${req.kind}:${out.status}`;
    row.set(cell, (row.get(cell) ?? 0) + 1);
    this.counts.set(route, row);
    for (const m of out.violations) {
      const key = `${route} -> ${out.status}`;
      if (!this.violations.has(key)) this.violations.set(key, m);
    }
  }

  /** One line per route: kind:status=count. */
  summary(): string {
    return [...this.counts]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(
        ([route, row]) =>
          `${route.padEnd(62)} ${[...row]
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([c, n]) => `${c}=${n}`)
            .join(' ')}`,
      )
      .join('\n');
  }
}
