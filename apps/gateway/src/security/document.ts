import type { OpenApiRegistry } from '../openapi/registry.js';
import { accessFor, shownRole } from './roles.js';

/**
 * Fill in the documented role of each route that declared none with the one the guard
 * enforces, so `x-required-role` in /docs/openapi.json is never null: `admin`, or
 * `public` for the probes and docs. A declared role is left as written (an alias such
 * as `auditor` stays; the guard reads it as `viewer`, see roles.ts).
 * Runs once after Nest's bootstrap (when the explorer has registered every controller route).
 */
export function documentEnforcedRoles(registry: OpenApiRegistry): void {
  for (const spec of registry.routes()) {
    if (spec.doc?.role) continue;
    registry.register({ ...spec, doc: { ...spec.doc, role: shownRole(accessFor(undefined, spec.path)) } });
  }
}
