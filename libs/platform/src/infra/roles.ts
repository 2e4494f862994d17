import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { createPgClient } from './pg.js';

/**
 * Least-privilege PostgreSQL roles of one Switchyard database. Roles are cluster-wide, so
 * their names start with a prefix derived from the database name: two databases on one
 * cluster (the test suites, a shared server) never share a role or its password.
 * - `<prefix>_app`: the schema owner. Runs every component's migrations and the demo loader in
 *   the launcher's migration phase, then grants; no running component logs in as it.
 * - `<prefix>_<component>` (see COMPONENT_GRANTS): one per internal component that touches
 *   PostgreSQL, with the table privileges it needs and nothing else (no DDL anywhere).
 * All: not superuser, no CREATEROLE/CREATEDB/REPLICATION/BYPASSRLS, member of no role.
 * - `<prefix>_mcp_reader`: the database MCP server. USAGE on the demo schema and SELECT on its
 *   tables, nothing else (no internal schema, no server-file or server-program role).
 * - `<prefix>_mcp_writer`: the `database_writer` MCP server. SELECT, INSERT, DELETE on the
 *   onboarding tables of the demo schema only.
 */
export interface DatabaseRoleNames {
  readonly app: string;
  readonly reader: string;
  readonly writer: string;
  /** One login role per internal component. */
  readonly components: Readonly<Record<Component, string>>;
}

export interface DatabaseRoles {
  readonly names: DatabaseRoleNames;
  /** Connection URLs (same host and database as the admin URL), one per role. Never log them. */
  readonly urls: {
    readonly app: string;
    readonly reader: string;
    readonly writer: string;
    readonly components: Readonly<Record<Component, string>>;
  };
}

/** The demo schema the MCP reader may read, and the tables the writer may change. */
export const DEMO_SCHEMA = 'business';
export const WRITER_TABLES = ['business.customers', 'business.subscriptions'] as const;

type TablePrivilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE';
/** Privileges on the tables of one schema: all of them (`tables` unset, also those created later) or the named ones. */
export interface SchemaGrant {
  readonly schema: string;
  readonly privileges: readonly TablePrivilege[];
  readonly tables?: readonly string[];
}

/** The event store's schema and the function an append calls (SECURITY INVOKER: the caller needs SELECT and INSERT on `events`). */
export const EVENTSTORE_SCHEMA = 'eventstore';
const RW: readonly TablePrivilege[] = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];
/** A projection's own tables: also emptied by a rebuild. */
const PROJECTION: readonly TablePrivilege[] = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'];
const READ: readonly TablePrivilege[] = ['SELECT'];
const eventsRead: SchemaGrant = { schema: EVENTSTORE_SCHEMA, tables: ['events'], privileges: READ };
// Reads a stream, then `append_batch`, which reads revisions and inserts: never UPDATE, DELETE or TRUNCATE.
const eventsAppend: SchemaGrant = { schema: EVENTSTORE_SCHEMA, tables: ['events'], privileges: ['SELECT', 'INSERT'] };
const checkpoints = (schema: string): SchemaGrant => ({
  schema,
  tables: ['checkpoints'],
  privileges: ['SELECT', 'INSERT', 'UPDATE'],
});

/**
 * What each internal component may do, derived from the statements it runs (none may run DDL:
 * the owner migrated before it started). `appends` says whether it may execute the event
 * store's append function.
 * - gateway: reads streams and appends commands' events; API keys, idempotency records, the
 *   shared rate-limit counters (`gateway.rate_limits`), the A2A task map; the
 *   definitions read model (it runs that projection); the silences and alert rules it edits; reads the read models.
 * - engine: appends; its `workflows` tables; the workflow read model in `read_models`; reads and
 *   marks the automation server's `automation.triggers` (the trigger starter), no other automation table.
 * - dispatcher: appends; its `delegation` tables (tasks, performance, external agents) and the
 *   external agents' tokens (`delegation_secrets`, which no other role reads).
 * - relay: reads the events, writes its checkpoint; nothing else (not `security`).
 * - projections: the status read model (`status`), reading `delegation`, `read_models` and
 *   `monitoring` it joins; reads events only.
 * - monitor: appends (alerts); `monitoring`; of the other schemas it reads only the engines' and
 *   dispatchers' heartbeat tables.
 * - agents: read the demo business data.
 * - automation: appends (webhook and schedule commands) and follows the events of its own read
 *   models (automation.webhooks, automation.schedules, their checkpoints in its schema); its schema.
 * - analytics: its own schema and reads the read models it reports on.
 * - sink: the launcher's audit of MCP calls, connector and agent events: appends only.
 */
export const COMPONENT_GRANTS = {
  gateway: {
    appends: true,
    grants: [
      eventsAppend,
      { schema: 'security', privileges: ['SELECT', 'INSERT', 'UPDATE'] },
      { schema: 'gateway', tables: ['idempotency_keys'], privileges: RW },
      // The shared rate limits (rate-limiter-flexible's RateLimiterPostgres): an upsert with
      // RETURNING (SELECT, INSERT, UPDATE) and the purge of expired rows (DELETE); no TRUNCATE, no DDL.
      { schema: 'gateway', tables: ['rate_limits'], privileges: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] },
      // The A2A peer's task map, its claims on new-task messages and push configs (the work itself lives in the event store).
      { schema: 'gateway', tables: ['a2a_tasks', 'a2a_push_configs', 'a2a_origin_claims'], privileges: RW },
      { schema: 'workflows', privileges: READ },
      { schema: 'workflows', tables: ['definitions'], privileges: RW },
      // What WORKFLOW_MAX_OPEN_PER_STARTER counts: a starter's executions not yet ended.
      { schema: 'workflows', tables: ['active_executions'], privileges: ['SELECT'] },
      { schema: 'read_models', privileges: READ },
      // It runs the definitions read model (workflows.definitions) too: that projection's checkpoint.
      checkpoints('read_models'),
      { schema: 'delegation', privileges: READ },
      { schema: 'status', privileges: READ },
      { schema: 'monitoring', privileges: READ },
      { schema: 'monitoring', tables: ['silences', 'alert_rules'], privileges: RW },
    ],
  },
  engine: {
    appends: true,
    grants: [
      eventsAppend,
      { schema: 'workflows', privileges: RW },
      { schema: 'read_models', privileges: PROJECTION },
      // The trigger starter claims pending rows (SELECT ... FOR UPDATE) and marks them started or failed.
      { schema: 'automation', tables: ['triggers'], privileges: ['SELECT', 'UPDATE'] },
    ],
  },
  dispatcher: {
    appends: true,
    // fences: its appends are fenced by partition lease epoch, which it raises on a takeover.
    grants: [
      eventsAppend,
      { schema: EVENTSTORE_SCHEMA, tables: ['fences'], privileges: ['SELECT', 'INSERT', 'UPDATE'] },
      { schema: 'delegation', privileges: PROJECTION },
      // The external agents' bearer tokens: only the dispatcher sends them, so only it reads them.
      { schema: 'delegation_secrets', privileges: RW },
      checkpoints('read_models'),
    ],
  },
  relay: { appends: false, grants: [eventsRead, { schema: 'relay', privileges: ['SELECT', 'INSERT', 'UPDATE'] }] },
  projections: {
    appends: false,
    grants: [
      eventsRead,
      { schema: 'status', privileges: PROJECTION },
      checkpoints('read_models'),
      { schema: 'read_models', privileges: READ },
      { schema: 'delegation', privileges: READ },
      { schema: 'monitoring', privileges: READ },
    ],
  },
  monitor: {
    appends: true,
    grants: [
      eventsAppend,
      { schema: 'monitoring', privileges: RW },
      // The engines' and dispatchers' heartbeats: each process is probed by the age of its own.
      { schema: 'workflows', tables: ['engine_members'], privileges: ['SELECT'] },
      { schema: 'delegation', tables: ['dispatcher_members'], privileges: ['SELECT'] },
    ],
  },
  agents: { appends: false, grants: [{ schema: DEMO_SCHEMA, privileges: READ }] },
  automation: { appends: true, grants: [eventsAppend, { schema: 'automation', privileges: RW }] },
  analytics: {
    appends: false,
    grants: [
      { schema: 'analytics', privileges: RW },
      { schema: 'read_models', privileges: READ },
    ],
  },
  sink: { appends: true, grants: [eventsAppend] },
} as const satisfies Record<string, { appends: boolean; grants: readonly SchemaGrant[] }>;

export type Component = keyof typeof COMPONENT_GRANTS;
export const COMPONENTS = Object.keys(COMPONENT_GRANTS) as Component[];

/**
 * The streams an appending component may write, by prefix, where it is not every stream. Every
 * process of a split deployment holds the sink's login (its audit appends), the connectors and
 * the agents included: without this, one of them compromised could append a WorkflowStarted or a
 * TaskCreated that the engine or the dispatcher would act on, and so reach tools its NATS user
 * may not call. The automation server writes its schedules and webhooks only, the monitor its
 * alerts, silences, service health and alert rules. The engine writes executions (sub-workflows
 * and triggers included), batches and the built-in definitions it seeds, the dispatcher tasks and
 * external agents: neither may mint an API key or create a schedule. PostgreSQL checks it (a
 * row-level security policy on `eventstore.events`); the gateway, which takes every command, may
 * write any stream.
 */
export const APPEND_STREAM_PREFIXES: Partial<Record<Component, readonly string[]>> = {
  sink: ['mcpaudit-', 'mcpserver-', 'agentaudit-'],
  automation: ['automation_schedule-', 'automation_webhook-'],
  monitor: ['alert-', 'silence-', 'service-', 'alertrules-'],
  engine: ['workflow_execution-', 'workflow_batch-', 'workflow_definition-'],
  dispatcher: ['task-', 'external_agent-'],
};

/**
 * The logins a running process may be handed instead of the administrative DATABASE_URL: one per
 * component, and the database MCP servers' reader and writer. The owner (`app`) is not one of
 * them: only the one-shot setup migrates.
 */
export const DATABASE_LOGINS = [...COMPONENTS, 'mcp_reader', 'mcp_writer'] as const;
export type DatabaseLogin = (typeof DATABASE_LOGINS)[number];

/** `DATABASE_URL_GATEWAY`, `DATABASE_PASSWORD_MCP_READER`, ...: the variable of one login. */
export const databaseLoginEnv = (login: DatabaseLogin, what: 'URL' | 'PASSWORD'): string =>
  `DATABASE_${what}_${login.toUpperCase()}`;

/** The role name of a login in a database's role names. */
export function loginRoleName(names: DatabaseRoleNames, login: DatabaseLogin): string {
  if (login === 'mcp_reader') return names.reader;
  if (login === 'mcp_writer') return names.writer;
  return names.components[login];
}

/** The values of `env`'s `DATABASE_URL_<LOGIN>` (or `DATABASE_PASSWORD_<LOGIN>`) variables, by login. */
export function givenDatabaseLoginValues(
  env: Readonly<Record<string, unknown>>,
  what: 'URL' | 'PASSWORD',
): Partial<Record<DatabaseLogin, string>> {
  const out: Partial<Record<DatabaseLogin, string>> = {};
  for (const login of DATABASE_LOGINS) {
    const v = env[databaseLoginEnv(login, what)];
    if (typeof v === 'string' && v) out[login] = v;
  }
  return out;
}

export interface ProvisionRolesOptions {
  readonly logger?: Logger;
  /** Role name prefix; default: derived from the database name. */
  readonly prefix?: string;
  /**
   * Passwords to set instead of the generated ones (a split deployment hands each process its
   * logins' URLs, so it must know them); they replace what is stored. Every process that
   * provisions the same database must be given the same ones.
   */
  readonly passwords?: Partial<Record<DatabaseLogin, string>>;
}

/** Schemas the roles module keeps for itself: the generated passwords, readable by the admin only. */
export const ROLE_SECRETS_SCHEMA = 'switchyard_roles';
/**
 * The advisory lock (by `hashtext`) of everything that changes the database's schemas, roles and
 * grants: the roles' provisioning and the launcher's migration phase. Launchers started together
 * take turns, since concurrent DDL or GRANTs on one catalog row fail with "tuple concurrently updated".
 */
export const SCHEMA_CHANGES_LOCK = 'switchyard.migrations';

/** Predefined roles that reach the server's files or programs, or every table: none of ours may hold them. */
export const DANGEROUS_ROLES = [
  'pg_read_server_files',
  'pg_write_server_files',
  'pg_execute_server_program',
  'pg_read_all_data',
  'pg_write_all_data',
  'pg_read_all_settings',
  'pg_monitor',
  'pg_signal_backend',
] as const;

const ident = (s: string): string => `"${s.replace(/"/g, '""')}"`;

/** Role names for a database: `<db>_app` etc., the db name shortened with a hash when long or unusual. */
export function roleNamesFor(database: string, prefix?: string): DatabaseRoleNames {
  let p = prefix ?? database.toLowerCase();
  if (!/^[a-z_][a-z0-9_]{0,39}$/.test(p)) {
    const clean = p
      .replace(/[^a-z0-9_]/g, '_')
      .replace(/^([^a-z_])/, '_$1')
      .slice(0, 30);
    p = `${clean}_${createHash('sha256').update(p).digest('hex').slice(0, 8)}`;
  }
  const components = Object.fromEntries(COMPONENTS.map((c) => [c, `${p}_${c}`])) as Record<Component, string>;
  return { app: `${p}_app`, reader: `${p}_mcp_reader`, writer: `${p}_mcp_writer`, components };
}

/** Every login role of a database: the owner, the reader, the writer and the components'. */
export function allRoleNames(names: DatabaseRoleNames): string[] {
  return [names.app, names.reader, names.writer, ...COMPONENTS.map((c) => names.components[c])];
}

/**
 * A SCRAM-SHA-256 verifier for `password` (RFC 5802/7677, as `psql \password` sends it), so the
 * clear password never travels in an ALTER ROLE statement that the server might log on error.
 */
export function scramVerifier(password: string, iterations = 4096): string {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

function urlAs(adminUrl: string, user: string, password: string): string {
  const u = new URL(adminUrl);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.toString();
}

/**
 * Create or refresh the three roles of the database `adminUrl` points at, and hand the
 * application schemas to the app role. Runs as one transaction under an advisory lock, so
 * concurrent launchers agree and a failure leaves nothing half-done. Passwords are generated
 * on first use and kept in `switchyard_roles.passwords` (no grant to anyone but the admin
 * that created it); each run sets the role's SCRAM verifier from it, so the clear password
 * is never in a statement. Returns undefined, with a warning saying why, when the admin
 * login may not do this (neither superuser nor CREATEROLE, or not allowed to grant on the
 * database): the caller then goes on with the admin URL.
 */
export async function provisionDatabaseRoles(
  adminUrl: string,
  opts: ProvisionRolesOptions = {},
): Promise<DatabaseRoles | undefined> {
  const log = opts.logger?.child({ component: 'db-roles' });
  const client = createPgClient(
    { connectionString: adminUrl, application_name: 'switchyard-roles' },
    { name: 'db-roles', ...(opts.logger ? { logger: opts.logger } : {}) },
  );
  await client.connect();
  try {
    const who = await client.query<{ db: string; me: string; rolsuper: boolean; rolcreaterole: boolean }>(
      `select current_database() as db, current_user as me, r.rolsuper, r.rolcreaterole from pg_roles r where r.rolname = current_user`,
    );
    const { db, me, rolsuper, rolcreaterole } = who.rows[0]!;
    const names = roleNamesFor(db, opts.prefix);
    if (!rolsuper && !rolcreaterole) {
      log?.warn(
        { user: me, database: db },
        'the DATABASE_URL user may not create roles (neither superuser nor CREATEROLE): every component runs as that user, the database_writer server is not started, and the database MCP server reads with its privileges',
      );
      return undefined;
    }
    const roles = allRoleNames(names);
    if (roles.includes(me)) {
      log?.warn({ user: me }, 'DATABASE_URL already logs in as one of the least-privilege roles; not provisioning');
      return undefined;
    }
    let passwords: Map<string, string>;
    await client.query('begin');
    try {
      // The migration phase's lock: another launcher's DDL and GRANTs on the same catalog rows
      // ("tuple concurrently updated") wait until the roles are done, and these wait for them.
      await client.query('select pg_advisory_xact_lock(hashtext($1))', [SCHEMA_CHANGES_LOCK]);
      const given = new Map(
        Object.entries(opts.passwords ?? {}).map(([login, pw]) => [loginRoleName(names, login as DatabaseLogin), pw]),
      );
      passwords = await passwordsFor(client, roles, given);
      for (const role of roles) {
        const exists = await client.query('select 1 from pg_roles where rolname = $1', [role]);
        const attrs = 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT';
        const verifier = scramVerifier(passwords.get(role)!);
        if (exists.rowCount === 0)
          await client.query(`CREATE ROLE ${ident(role)} WITH ${attrs} PASSWORD '${verifier}'`);
        else await client.query(`ALTER ROLE ${ident(role)} WITH ${attrs} PASSWORD '${verifier}'`);
        // Member of nothing: no predefined role (server files, programs, all data) reaches it.
        const memberships = await client.query<{ r: string }>(
          `select g.rolname as r from pg_auth_members m join pg_roles g on g.oid = m.roleid join pg_roles u on u.oid = m.member where u.rolname = $1`,
          [role],
        );
        for (const { r } of memberships.rows) await client.query(`REVOKE ${ident(r)} FROM ${ident(role)}`);
        // No per-role settings that could lift a limit (e.g. a long statement_timeout).
        await client.query(`ALTER ROLE ${ident(role)} RESET ALL`);
      }
      await client.query(`GRANT CONNECT, TEMPORARY, CREATE ON DATABASE ${ident(db)} TO ${ident(names.app)}`);
      await client.query(
        `GRANT CONNECT ON DATABASE ${ident(db)} TO ${roles
          .filter((r) => r !== names.app)
          .map(ident)
          .join(', ')}`,
      );
      // No login but the owner creates anything, temporary tables included (PUBLIC has TEMPORARY by default).
      await client.query(
        `REVOKE CREATE, TEMPORARY ON DATABASE ${ident(db)} FROM PUBLIC, ${roles
          .filter((r) => r !== names.app)
          .map(ident)
          .join(', ')}`,
      );
      // The reader and the writer must not create anything anywhere (PostgreSQL 15+ already
      // revokes CREATE on public from PUBLIC; older servers do not).
      await bestEffort(client, `REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
      // A CREATEROLE admin that is not superuser may hand its objects only to a role it can SET ROLE to.
      if (!rolsuper) await bestEffort(client, `GRANT ${ident(names.app)} TO ${ident(me)}`);
      await handOverSchemas(client, names.app);
      await retireLegacyRoles(client);
      // A demo schema already loaded (an existing installation): grant on it now.
      if ((await client.query('select 1 from pg_namespace where nspname = $1', [DEMO_SCHEMA])).rowCount)
        await grantDemoAccess(client, names);
      await client.query('commit');
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      log?.warn(
        { err: { message: (err as Error).message, code: (err as { code?: string }).code }, user: me, database: db },
        'could not provision the least-privilege database roles: every component runs as the DATABASE_URL user and the database_writer server is not started',
      );
      return undefined;
    }
    const pw = passwords;
    log?.info({ roles: names, database: db }, 'least-privilege database roles ready');
    return {
      names,
      urls: {
        app: urlAs(adminUrl, names.app, pw.get(names.app)!),
        reader: urlAs(adminUrl, names.reader, pw.get(names.reader)!),
        writer: urlAs(adminUrl, names.writer, pw.get(names.writer)!),
        components: Object.fromEntries(
          COMPONENTS.map((c) => [c, urlAs(adminUrl, names.components[c], pw.get(names.components[c])!)]),
        ) as Record<Component, string>,
      },
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The stored password of each role, generated (256 bits) and stored when missing; a given one replaces it. */
async function passwordsFor(
  client: pg.Client,
  roles: readonly string[],
  given: ReadonlyMap<string, string>,
): Promise<Map<string, string>> {
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${ROLE_SECRETS_SCHEMA}`);
  await client.query(`REVOKE ALL ON SCHEMA ${ROLE_SECRETS_SCHEMA} FROM PUBLIC`);
  await client.query(
    `CREATE TABLE IF NOT EXISTS ${ROLE_SECRETS_SCHEMA}.passwords (role text PRIMARY KEY, password text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
  );
  await client.query(`REVOKE ALL ON ${ROLE_SECRETS_SCHEMA}.passwords FROM PUBLIC`);
  for (const role of roles) {
    await client.query(
      `INSERT INTO ${ROLE_SECRETS_SCHEMA}.passwords (role, password) VALUES ($1, $2) ON CONFLICT (role) DO NOTHING`,
      [role, randomBytes(32).toString('base64url')],
    );
  }
  for (const [role, password] of given) {
    await client.query(`UPDATE ${ROLE_SECRETS_SCHEMA}.passwords SET password = $2 WHERE role = $1`, [role, password]);
  }
  const r = await client.query<{ role: string; password: string }>(
    `SELECT role, password FROM ${ROLE_SECRETS_SCHEMA}.passwords WHERE role = ANY($1)`,
    [roles],
  );
  return new Map(r.rows.map((x) => [x.role, x.password]));
}

/**
 * Every application schema of the database (all but the system ones, `public` and the role
 * secrets) and everything in it goes to the app role, so the components can keep migrating
 * them without the superuser. Installations from before the roles had them owned by the admin.
 */
async function handOverSchemas(client: pg.Client, app: string): Promise<void> {
  const skip = `n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT IN ('information_schema', 'public', '${ROLE_SECRETS_SCHEMA}')`;
  const schemas = await client.query<{ s: string }>(
    `SELECT n.nspname AS s FROM pg_namespace n WHERE ${skip} AND pg_get_userbyid(n.nspowner) <> $1`,
    [app],
  );
  for (const { s } of schemas.rows) await client.query(`ALTER SCHEMA ${ident(s)} OWNER TO ${ident(app)}`);
  // Tables, views, sequences not owned by a column (those follow their table), foreign tables.
  const rels = await client.query<{ stmt: string }>(
    `SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
              n.nspname, c.relname, $1::text) AS stmt
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${skip} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND pg_get_userbyid(c.relowner) <> $1
        AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
      ORDER BY c.relkind <> 'S', c.oid`,
    [app],
  );
  for (const { stmt } of rels.rows) await client.query(stmt);
  const routines = await client.query<{ stmt: string }>(
    `SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, $1::text) AS stmt
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${skip} AND pg_get_userbyid(p.proowner) <> $1`,
    [app],
  );
  for (const { stmt } of routines.rows) await client.query(stmt);
  const types = await client.query<{ stmt: string }>(
    `SELECT format('ALTER TYPE %I.%I OWNER TO %I', n.nspname, t.typname, $1::text) AS stmt
       FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE ${skip} AND t.typtype IN ('e', 'd', 'r', 'm') AND pg_get_userbyid(t.typowner) <> $1`,
    [app],
  );
  for (const { stmt } of types.rows) await client.query(stmt);
}

/**
 * Roles of earlier versions: `switchyard_onboarding` had a password derived from the admin URL
 * (predictable with the embedded defaults). Dropped; when it still holds privileges in another
 * database, it keeps existing but may no longer log in.
 */
const LEGACY_ROLES = ['switchyard_onboarding'];

async function retireLegacyRoles(client: pg.Client): Promise<void> {
  for (const role of LEGACY_ROLES) {
    if (!(await client.query('select 1 from pg_roles where rolname = $1', [role])).rowCount) continue;
    await bestEffort(client, `DROP OWNED BY ${ident(role)}`);
    await bestEffort(client, `DROP ROLE ${ident(role)}`);
    if ((await client.query('select 1 from pg_roles where rolname = $1', [role])).rowCount) {
      await bestEffort(client, `ALTER ROLE ${ident(role)} WITH NOLOGIN PASSWORD NULL`);
    }
  }
}

/** A statement that may fail without failing the provisioning (inside a savepoint). */
async function bestEffort(client: pg.Client, sql: string): Promise<void> {
  await client.query('SAVEPOINT best_effort');
  try {
    await client.query(sql);
    await client.query('RELEASE SAVEPOINT best_effort');
  } catch {
    await client.query('ROLLBACK TO SAVEPOINT best_effort');
  }
}

/**
 * The reader's SELECT on the demo schema and the writer's grants on the onboarding tables.
 * Run by the admin, or by the app role (it owns the schema) after loading the demo data,
 * which may have recreated the schema and lost earlier grants. Idempotent.
 */
export async function grantDemoAccess(
  client: pg.Client | pg.PoolClient | pg.Pool,
  names: DatabaseRoleNames,
): Promise<void> {
  const s = ident(DEMO_SCHEMA);
  await client.query(`GRANT USAGE ON SCHEMA ${s} TO ${ident(names.reader)}, ${ident(names.writer)}`);
  await client.query(`GRANT SELECT ON ALL TABLES IN SCHEMA ${s} TO ${ident(names.reader)}`);
  const present = await client.query<{ t: string }>(
    `SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL`,
    [[...WRITER_TABLES]],
  );
  if (present.rows.length > 0) {
    await client.query(
      `GRANT SELECT, INSERT, DELETE ON ${present.rows.map((r) => r.t).join(', ')} TO ${ident(names.writer)}`,
    );
  }
}

/**
 * The grants of every component role (COMPONENT_GRANTS), run by the owner after the migrations
 * (it owns the schemas and tables, so it may grant on them). In one transaction under an
 * advisory lock: every privilege of the component roles on the owner's schemas is revoked and
 * granted again, so a component never sees a moment without its grants and a privilege dropped
 * from the table does not linger. Schema-wide grants also become the owner's default privileges,
 * so a table a later migration creates is covered. Idempotent.
 */
export async function grantComponentAccess(pool: pg.Pool, names: DatabaseRoleNames): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock(hashtext($1))', ['switchyard.roles.grants']);
    const owned = await client.query<{ s: string }>(
      `select n.nspname as s from pg_namespace n where n.nspowner = (select oid from pg_roles where rolname = $1) order by 1`,
      [names.app],
    );
    const schemas = new Set(owned.rows.map((r) => r.s));
    const roles = COMPONENTS.map((c) => ident(names.components[c])).join(', ');
    const all = [...schemas].map(ident).join(', ');
    const owner = ident(names.app);
    if (all) {
      await client.query(`REVOKE ALL ON ALL TABLES IN SCHEMA ${all} FROM ${roles}`);
      await client.query(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${all} FROM ${roles}`);
      await client.query(`REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ${all} FROM ${roles}`);
      await client.query(`REVOKE ALL ON SCHEMA ${all} FROM ${roles}`);
      await client.query(
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA ${all} REVOKE ALL ON TABLES FROM ${roles}`,
      );
      await client.query(
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA ${all} REVOKE ALL ON SEQUENCES FROM ${roles}`,
      );
    }
    if (schemas.has(EVENTSTORE_SCHEMA)) {
      // Functions are executable by PUBLIC by default: the append is for the appending components only.
      await client.query(`REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ${ident(EVENTSTORE_SCHEMA)} FROM PUBLIC`);
      await client.query(
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA ${ident(EVENTSTORE_SCHEMA)} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC`,
      );
    }
    // Row-level security on the events: who may append to which streams (APPEND_STREAM_PREFIXES);
    // everyone with SELECT on the table reads every row. The owner (migrations) is not subject to it.
    // What of the event store this database has (none with EventStoreDB), asked once.
    const present = (
      await client.query<{ events: boolean; append: boolean; fence: boolean }>(
        `select to_regclass($1) is not null as events, to_regprocedure($2) is not null as append,
                to_regprocedure($3) is not null as fence`,
        [
          `${EVENTSTORE_SCHEMA}.events`,
          `${EVENTSTORE_SCHEMA}.append_batch(jsonb)`,
          `${EVENTSTORE_SCHEMA}.raise_fence(text,bigint)`,
        ],
      )
    ).rows[0]!;
    const eventsTable = present.events ? `${ident(EVENTSTORE_SCHEMA)}.events` : undefined;
    if (eventsTable) {
      await client.query(`ALTER TABLE ${eventsTable} ENABLE ROW LEVEL SECURITY`);
      await client.query(`DROP POLICY IF EXISTS reads ON ${eventsTable}`);
      await client.query(`CREATE POLICY reads ON ${eventsTable} FOR SELECT USING (true)`);
    }
    for (const component of COMPONENTS) {
      const role = ident(names.components[component]);
      const spec: { appends: boolean; grants: readonly SchemaGrant[] } = COMPONENT_GRANTS[component];
      for (const g of spec.grants) {
        if (!schemas.has(g.schema)) continue; // not migrated in this database (e.g. no demo data yet)
        const s = ident(g.schema);
        const privs = g.privileges.join(', ');
        await client.query(`GRANT USAGE ON SCHEMA ${s} TO ${role}`);
        if (g.tables) {
          const present = await client.query<{ t: string }>(
            `select t from unnest($1::text[]) as t where to_regclass(format('%I.%I', $2::text, t)) is not null`,
            [g.tables, g.schema],
          );
          if (present.rows.length)
            await client.query(
              `GRANT ${privs} ON ${present.rows.map((r) => `${s}.${ident(r.t)}`).join(', ')} TO ${role}`,
            );
        } else {
          await client.query(`GRANT ${privs} ON ALL TABLES IN SCHEMA ${s} TO ${role}`);
          await client.query(
            `ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA ${s} GRANT ${privs} ON TABLES TO ${role}`,
          );
        }
        if (g.privileges.includes('INSERT')) {
          // Identity and serial columns draw from a sequence.
          await client.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${s} TO ${role}`);
          await client.query(
            `ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA ${s} GRANT USAGE, SELECT ON SEQUENCES TO ${role}`,
          );
        }
      }
      if (spec.appends && present.append) {
        await client.query(`GRANT EXECUTE ON FUNCTION ${ident(EVENTSTORE_SCHEMA)}.append_batch(jsonb) TO ${role}`);
      }
      if (spec.appends && eventsTable) {
        const prefixes = APPEND_STREAM_PREFIXES[component];
        const policy = ident(`appends_${component}`);
        await client.query(`DROP POLICY IF EXISTS ${policy} ON ${eventsTable}`);
        await client.query(
          `CREATE POLICY ${policy} ON ${eventsTable} FOR INSERT TO ${role} WITH CHECK (${
            prefixes ? `stream_id ^@ ANY (ARRAY[${prefixes.map((x) => `'${x}'`).join(', ')}]::text[])` : 'true'
          })`,
        );
      }
      // Raising a fence (a partition takeover) is the dispatcher's only.
      if (component === 'dispatcher' && present.fence) {
        await client.query(
          `GRANT EXECUTE ON FUNCTION ${ident(EVENTSTORE_SCHEMA)}.raise_fence(text, bigint) TO ${role}`,
        );
      }
    }
    await client.query('commit');
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

const schemaManagedPools = new WeakSet<object>();

/**
 * Mark a pool whose login may not run DDL because the owner role migrated every schema before
 * the component started: the components' start-up migrations (`migrateUnderLock`, the event
 * store's and the projections' setup, ...) skip their DDL on it. Returns the pool.
 */
export function markSchemaManaged<P extends object>(pool: P): P {
  schemaManagedPools.add(pool);
  return pool;
}

/** True for a pool marked by markSchemaManaged: its owner must not run DDL through it. */
export function isSchemaManaged(pool: object): boolean {
  return schemaManagedPools.has(pool);
}
