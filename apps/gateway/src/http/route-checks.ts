import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { AppError } from '@switchyard/platform';
import type { FieldError } from './problem.js';

/**
 * Input errors found before routing (a body that is not JSON or too large, text PostgreSQL
 * cannot store) are kept on the request instead of answered at once: the role guard throws
 * them after it checked the caller's key and role, so a caller without the route's role
 * gets 401/403 whatever it sent, and learns nothing from how its body was judged.
 */
export const INPUT_ERROR = Symbol.for('switchyard.gateway.inputError');
type WithInputError = Request & { [INPUT_ERROR]?: unknown };

/** The error kept for this request, if any. */
export const deferredInputError = (req: Request): unknown => (req as WithInputError)[INPUT_ERROR];

/** Run a middleware; an error it passes on is kept for the guard (the first one wins) and the request goes on. */
export function deferInputErrors(middleware: RequestHandler): RequestHandler {
  return (req, res, next) => {
    void middleware(req, res, (err?: unknown) => {
      if (err !== undefined && err !== null && err !== 'route' && err !== 'router') {
        (req as WithInputError)[INPUT_ERROR] ??= err;
        // A body that failed to parse is not a body.
        req.body = undefined;
      }
      next();
    });
  };
}

/** A check that finds an input error (or nothing) in a request, as a middleware that keeps it for the guard. */
export function deferCheck(check: (req: Request) => unknown): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    if (deferredInputError(req) === undefined) {
      const err = check(req);
      if (err !== undefined) (req as WithInputError)[INPUT_ERROR] = err;
    }
    next();
  };
}

/** 400 naming each query parameter of a route that declares none. */
export function undeclaredQueryError(query: unknown): AppError | undefined {
  const names = query && typeof query === 'object' ? Object.keys(query) : [];
  if (names.length === 0) return undefined;
  const errors: FieldError[] = names.map((n) => ({ path: n, message: 'unknown field', code: 'unrecognized_keys', in: 'query' }));
  return new AppError('validation', `invalid query field${names.length === 1 ? '' : 's'}: ${names.join(', ')}`, { errors });
}

const templateRegex = (template: string): RegExp =>
  new RegExp(`^${template.split(/\{[^}]+\}/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[^/]+')}/?$`);

/**
 * The methods a path (e.g. `/api/v1/workflows/executions/wf_1`) has among the documented
 * routes (OpenAPI templates), upper case, with HEAD where GET is (Express answers it);
 * empty when no route has that path.
 */
export function allowedMethods(routes: readonly { method: string; path: string }[], path: string): string[] {
  const methods = new Set<string>();
  for (const r of routes) if (templateRegex(r.path).test(path)) methods.add(r.method.toUpperCase());
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}
