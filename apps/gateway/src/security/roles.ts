import { z } from 'zod';

/**
 * Roles, lowest first. Each includes the ones before it:
 * - viewer: read (events, status, listings)
 * - operator: start/cancel workflows, delegate tasks, call tools
 * - admin: registries, rules, API keys, audit
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];
export const roleSchema = z.enum(ROLES);

/** What a route needs: a role, or nothing at all (public). */
export type Access = { readonly kind: 'public' } | { readonly kind: 'role'; readonly role: Role };

/** `@ApiRoute({ role: PUBLIC })` marks a route that needs no key. */
export const PUBLIC = 'public';

/**
 * Routes that answer without a key even though they declare no role: probes (load
 * balancers and orchestrators call them without credentials) and the API docs (the
 * document only describes routes; every route still checks its own role). The Swagger
 * UI assets under /docs/assets are static files served before Nest and are public too.
 * /metrics (the system feature) is not public: it declares `viewer`, since it reveals the
 * system's internals; a Prometheus scraper sends a viewer key (`authorization.credentials`).
 */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set([
  '/livez',
  '/readyz',
  '/docs',
  '/docs/openapi.json',
  '/docs/init.js',
]);

// Roles used by routes written before this scheme; `auditor` reads the event log, which is a read.
const ALIASES: Readonly<Record<string, Role>> = { auditor: 'viewer', read: 'viewer', reader: 'viewer' };

const rank = (r: Role): number => ROLES.indexOf(r);

/** Whether a key of role `have` may call a route needing `need`. */
export const roleSatisfies = (have: Role, need: Role): boolean => rank(have) >= rank(need);

/**
 * The access a route gets from its declared role and its path (OpenAPI form, `/a/{id}`).
 * No declared role, or one we do not know, means admin: a forgotten declaration must
 * not open a route. Pure, so the guard and the role-walk test agree on it.
 */
export function accessFor(declaredRole: string | null | undefined, path: string): Access {
  if (declaredRole === PUBLIC) return { kind: 'public' };
  if (declaredRole === undefined || declaredRole === null || declaredRole === '') {
    return PUBLIC_PATHS.has(path) ? { kind: 'public' } : { kind: 'role', role: 'admin' };
  }
  const parsed = roleSchema.safeParse(declaredRole);
  if (parsed.success) return { kind: 'role', role: parsed.data };
  const alias = ALIASES[declaredRole];
  return { kind: 'role', role: alias ?? 'admin' };
}

/** What the OpenAPI document shows as `x-required-role`: the role the guard enforces, or `public`. */
export const shownRole = (access: Access): string => (access.kind === 'public' ? PUBLIC : access.role);
