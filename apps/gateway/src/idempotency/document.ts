import { z } from 'zod';
import type { OpenApiRegistry } from '../openapi/registry.js';
import { COMMAND_METHODS, IDEMPOTENCY_HEADER, idempotencyKeyHeader } from './keys.js';

/**
 * Declare the `Idempotency-Key` header (and its 409 in flight, 422 reused) on every command
 * route of the document, as the interceptor honours it on every one. A route's own header
 * schema, if it has one, keeps its other headers. Runs once after bootstrap, like documentEnforcedRoles.
 */
export function documentIdempotencyKeys(registry: OpenApiRegistry): void {
  for (const spec of registry.routes()) {
    if (!COMMAND_METHODS.has(spec.method.toUpperCase()) || spec.doc?.query) continue;
    const own = spec.doc?.headers;
    const headers =
      own instanceof z.ZodObject
        ? own.extend({ [IDEMPOTENCY_HEADER]: idempotencyKeyHeader })
        : z.object({ [IDEMPOTENCY_HEADER]: idempotencyKeyHeader });
    const errors = [...new Set([...(spec.doc?.errors ?? []), 409, 422])];
    registry.register({ ...spec, doc: { ...spec.doc, headers, errors } });
  }
}
