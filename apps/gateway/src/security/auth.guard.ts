import 'reflect-metadata';
import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants.js';
import type { EdgeReply as Response } from '../http/edge.js';
import { AppError } from '@switchyard/platform';
import { openApiPath } from '../openapi/explorer.js';
import { API_ROUTE, type RouteDoc } from '../openapi/registry.js';
import { GATEWAY_OPTIONS, type ResolvedGatewayOptions } from '../tokens.js';
import { deferredInputError, undeclaredQueryError } from '../http/route-checks.js';
import { REQUEST_SCHEMAS, type RequestSchemas } from '../http/validation.js';
import { AUTH_FAILED, type AuthRequest } from './middleware.js';
import { accessFor, ROLES, roleSatisfies, roleSchema, type Access, type Role } from './roles.js';

const firstPath = (p: unknown): string => (Array.isArray(p) ? String(p[0] ?? '/') : typeof p === 'string' ? p : '/');

/**
 * Enforces each route's role from its `@ApiRoute({ role })` metadata (see accessFor:
 * no role means admin, except the public probes and docs). Runs before pipes, so an
 * unauthenticated caller learns nothing from validation errors.
 * - no key or a bad key: 401 with `WWW-Authenticate: Bearer`
 * - a key whose role is too low: 403
 * Only then the input errors found before routing (body not JSON or too large, NUL in a
 * value: see route-checks.ts), and query parameters on a route that declares none: 400.
 */
@Injectable()
export class RoleGuard implements CanActivate {
  private readonly cache = new WeakMap<object, Access>();
  // Whether a handler declares a query schema: read from its metadata once, not per request.
  private readonly declaresQuery = new WeakMap<object, boolean>();

  constructor(@Inject(GATEWAY_OPTIONS) private readonly options: ResolvedGatewayOptions) {}

  /** The access a Nest handler needs (its declared role and its path, as the OpenAPI document shows them). */
  accessOf(context: ExecutionContext): Access {
    const handler = context.getHandler();
    let access = this.cache.get(handler);
    if (!access) {
      const doc = Reflect.getMetadata(API_ROUTE, handler) as RouteDoc | undefined;
      const path = openApiPath(
        firstPath(Reflect.getMetadata(PATH_METADATA, context.getClass())),
        firstPath(Reflect.getMetadata(PATH_METADATA, handler)),
      );
      access = accessFor(doc?.role, path);
      this.cache.set(handler, access);
    }
    return access;
  }

  canActivate(context: ExecutionContext): boolean {
    if (context.getType() !== 'http') return true;
    this.checkRole(context);
    const req = context.switchToHttp().getRequest<AuthRequest>();
    const deferred = deferredInputError(req);
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- the error a route check threw, rethrown as it was
    if (deferred !== undefined) throw deferred;
    const handler = context.getHandler();
    let declared = this.declaresQuery.get(handler);
    if (declared === undefined) {
      const schemas = Reflect.getMetadata(REQUEST_SCHEMAS, context.getClass().prototype as object, handler.name) as
        RequestSchemas | undefined;
      declared = Boolean(schemas?.query);
      this.declaresQuery.set(handler, declared);
    }
    if (!declared) {
      const err = undeclaredQueryError(req.query);
      if (err) throw err;
    }
    return true;
  }

  private checkRole(context: ExecutionContext): void {
    if (!this.options.auth.enabled) return;
    const access = this.accessOf(context);
    if (access.kind === 'public') return;
    const req = context.switchToHttp().getRequest<AuthRequest>();
    const res = context.switchToHttp().getResponse<Response>();
    const key = req.apiKey;
    if (!key) {
      const bad = req[AUTH_FAILED] === true;
      res.setHeader(
        'WWW-Authenticate',
        bad ? 'Bearer realm="switchyard", error="invalid_token"' : 'Bearer realm="switchyard"',
      );
      throw new AppError(
        'unauthorized',
        bad ? 'the API key is invalid or revoked' : 'an API key is required (Authorization: Bearer <key>)',
      );
    }
    // A known role needs no parse; anything else fails the parse as before.
    const role = (ROLES as readonly string[]).includes(key.role) ? (key.role as Role) : roleSchema.parse(key.role);
    if (!roleSatisfies(role, access.role)) {
      throw new AppError('forbidden', `this route needs the ${access.role} role; the key has ${role}`, {
        requiredRole: access.role,
        keyRole: role,
      });
    }
  }
}
