import { AppError } from '@switchyard/platform';
import type { FieldError, FieldLocation } from '../http/problem.js';

// NUL and unpaired UTF-16 surrogates: PostgreSQL text and jsonb cannot store them, so a
// value carrying one would fail deep inside a query as a 500. Refuse it at the edge.
// eslint-disable-next-line no-control-regex -- NUL is what this rejects (PostgreSQL cannot store it)
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const MAX_DEPTH = 64;

function scan(value: unknown, path: string, where: FieldLocation, out: FieldError[], depth = 0): void {
  if (out.length >= 10) return;
  if (typeof value === 'string') {
    if (UNSTORABLE.test(value))
      out.push({
        path: path || '(root)',
        message: 'contains NUL or an unpaired surrogate',
        code: 'invalid_string',
        in: where,
      });
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  if (depth >= MAX_DEPTH) {
    out.push({
      path: path || '(root)',
      message: `nested deeper than ${MAX_DEPTH} levels`,
      code: 'too_deep',
      in: where,
    });
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    const p = path ? `${path}.${k}` : k;
    if (UNSTORABLE.test(k))
      out.push({
        path: p,
        message: 'field name contains NUL or an unpaired surrogate',
        code: 'invalid_key',
        in: where,
      });
    scan(v, p, where, out, depth + 1);
  }
}

/**
 * After the body parser: a 400 problem naming the field when the path, query or JSON body
 * holds text PostgreSQL cannot store, or a body nested deeper than 64 levels (no API
 * takes that, and walking it costs stack in every later step); undefined when all is well.
 */
export function inputHygieneError(req: {
  readonly path: string;
  readonly query: unknown;
  readonly body?: unknown;
}): AppError | undefined {
  const errors: FieldError[] = [];
  let decodedPath: string | undefined;
  try {
    decodedPath = decodeURIComponent(req.path);
  } catch {
    decodedPath = undefined; // a malformed escape: the router answers it
  }
  if (decodedPath !== undefined && UNSTORABLE.test(decodedPath)) {
    errors.push({
      path: '(path)',
      message: 'contains NUL or an unpaired surrogate',
      code: 'invalid_string',
      in: 'params',
    });
  }
  scan(req.query, '', 'query', errors);
  if (req.body !== undefined) scan(req.body, '', 'body', errors);
  if (errors.length === 0) return undefined;
  return new AppError(
    'validation',
    `invalid ${[...new Set(errors.map((e) => e.in))].join(' and ')}: ${errors.map((e) => e.path).join(', ')}`,
    { errors },
  );
}
