import { AppError } from '@switchyard/platform';
import type { FieldError } from './problem.js';

/**
 * Input errors found before routing (a body that is not JSON or too large, text PostgreSQL
 * cannot store) are kept on the request instead of answered at once: the role guard throws
 * them after it checked the caller's key and role, so a caller without the route's role
 * gets 401/403 whatever it sent, and learns nothing from how its body was judged.
 */
export const INPUT_ERROR = Symbol.for('switchyard.gateway.inputError');
type WithInputError = { [INPUT_ERROR]?: unknown };

/** The error kept for this request, if any. */
export const deferredInputError = (req: object): unknown => (req as WithInputError)[INPUT_ERROR];

/** Keep an input error for the guard (the first one wins). */
export function deferInputError(req: object, err: unknown): void {
  if (err !== undefined) (req as WithInputError)[INPUT_ERROR] ??= err;
}

/** Run a check that finds an input error (or nothing) in a request, and keep what it finds for the guard. */
export function deferCheck<R extends object>(req: R, check: (req: R) => unknown): void {
  if (deferredInputError(req) === undefined) deferInputError(req, check(req));
}

/** 400 naming each query parameter of a route that declares none. */
export function undeclaredQueryError(query: unknown): AppError | undefined {
  const names = query && typeof query === 'object' ? Object.keys(query) : [];
  if (names.length === 0) return undefined;
  const errors: FieldError[] = names.map((n) => ({
    path: n,
    message: 'unknown field',
    code: 'unrecognized_keys',
    in: 'query',
  }));
  return new AppError('validation', `invalid query field${names.length === 1 ? '' : 's'}: ${names.join(', ')}`, {
    errors,
  });
}

const templateRegex = (template: string): RegExp =>
  new RegExp(
    `^${template
      .split(/\{[^}]+\}/)
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^/]+')}/?$`,
  );

/**
 * The methods a path (e.g. `/api/v1/workflows/executions/wf_1`) has among the documented
 * routes (OpenAPI templates), upper case, with HEAD where GET is (Fastify answers it);
 * empty when no route has that path.
 */
export function allowedMethods(routes: readonly { method: string; path: string }[], path: string): string[] {
  const methods = new Set<string>();
  for (const r of routes) if (templateRegex(r.path).test(path)) methods.add(r.method.toUpperCase());
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}

/** A path as the router compares it: case and a trailing slash ignored. */
const routerKey = (path: string): string => path.toLowerCase().replace(/(.)\/$/, '$1');

/**
 * Documented paths without parameters that a parameterised route of some other method also
 * matches (`/executions/bulk` has POST only; GET reaches `/executions/{execution_id}`), with the
 * methods each has (HEAD where GET is). Such a request is answered 405 before routing: otherwise
 * it would run the parameterised route, whose role check (401/403) comes before the 404 that
 * would reveal the path has other methods.
 */
export function shadowedLiteralPaths(routes: readonly { method: string; path: string }[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const literal of new Set(routes.filter((r) => !r.path.includes('{')).map((r) => r.path))) {
    const own = allowedMethods(
      routes.filter((r) => r.path === literal),
      literal,
    );
    const reachable = allowedMethods(routes, literal);
    if (reachable.some((m) => !own.includes(m))) out.set(routerKey(literal), own);
  }
  return out;
}

/** The methods of a shadowed literal path when `method` is not among them (then: 405 with these). */
export function shadowedMethodNotAllowed(
  shadowed: ReadonlyMap<string, readonly string[]>,
  method: string,
  path: string,
): readonly string[] | undefined {
  const own = shadowed.get(routerKey(path));
  return own && !own.includes(method.toUpperCase()) ? own : undefined;
}
