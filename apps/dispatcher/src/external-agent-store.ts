/**
 * What the dispatcher keeps of run-time registered external agents outside the log: their bearer
 * tokens (the ExternalAgentRegistered event says `has_token`, never the token), and the DDL of
 * the dispatcher's tables. The registration flow (checks, events, registry) is the Dispatcher's.
 */
import type pg from 'pg';
import { migrateUnderLock } from '@switchyard/platform';
import { dispatcherLeaseTablesSql } from './leases.js';

/** Where the tokens live: a schema of their own, which only the dispatcher's role may read. */
const secretsSchema = (schema: string): string => `${schema}_secrets`;

/** A pool, or the connection `withAgentNameLock` holds. */
type Queryable = Pick<pg.Pool, 'query'>;

/**
 * Run `fn` while this name's registration is changed by no one else, in any dispatcher process:
 * a session advisory lock on one pooled connection, handed to `fn` for the token's row. A
 * registration writes the token and then its event, a removal its event and then deletes the
 * token; interleaved across two processes, a removal could delete the token of the registration
 * that followed it (an agent registered without its token). The lock goes with the connection
 * if the process dies.
 */
export function withAgentNameLock<T>(
  pool: pg.Pool,
  schema: string,
  name: string,
  fn: (db: Queryable) => Promise<T>,
): Promise<T> {
  // One at a time per pool: `fn` appends through the store, which may draw on this same pool, so
  // several held lock connections could take every connection and wait for one forever.
  const run = (lockTurns.get(pool) ?? Promise.resolve()).then(() => lockedOn(pool, schema, name, fn));
  lockTurns.set(
    pool,
    run.then(
      () => undefined,
      () => undefined,
    ),
  );
  return run;
}

/** The last lock turn queued per pool (see withAgentNameLock). */
const lockTurns = new WeakMap<pg.Pool, Promise<void>>();

async function lockedOn<T>(pool: pg.Pool, schema: string, name: string, fn: (db: Queryable) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  const key = `${schema}.external_agent:${name}`;
  let broken: Error | undefined;
  try {
    await client.query('select pg_advisory_lock(hashtextextended($1, 0))', [key]);
    try {
      return await fn(client);
    } finally {
      await client.query('select pg_advisory_unlock(hashtextextended($1, 0))', [key]).catch((err: Error) => {
        // The session is gone or unusable: dropping the connection releases the lock.
        broken = err;
      });
    }
  } finally {
    client.release(broken);
  }
}

/** Keep an agent's bearer token, or forget it when the registration gives none. */
export async function storeExternalAgentToken(
  pool: Queryable,
  schema: string,
  name: string,
  token: string | undefined,
): Promise<void> {
  if (token === undefined) {
    await deleteExternalAgentToken(pool, schema, name);
    return;
  }
  await pool.query(
    `insert into ${secretsSchema(schema)}.external_agent_tokens (name, token, updated_at) values ($1, $2, now())
     on conflict (name) do update set token = excluded.token, updated_at = excluded.updated_at`,
    [name, token],
  );
}

export async function deleteExternalAgentToken(pool: Queryable, schema: string, name: string): Promise<void> {
  await pool.query(`delete from ${secretsSchema(schema)}.external_agent_tokens where name = $1`, [name]);
}

/** The token kept for one agent (undefined: none). */
export async function externalAgentToken(pool: Queryable, schema: string, name: string): Promise<string | undefined> {
  const r = await pool.query<{ token: string }>(
    `select token from ${secretsSchema(schema)}.external_agent_tokens where name = $1`,
    [name],
  );
  return r.rows[0]?.token;
}

/** The tokens of the given agents, by name (an agent without one is absent). */
export async function externalAgentTokens(
  pool: pg.Pool,
  schema: string,
  names: readonly string[],
): Promise<Map<string, string>> {
  const rows = await pool.query<{ name: string; token: string }>(
    `select name, token from ${secretsSchema(schema)}.external_agent_tokens where name = any($1::text[])`,
    [names],
  );
  return new Map(rows.rows.map((r) => [r.name, r.token]));
}

/**
 * The dispatcher's tables: the external agents' tokens (`<schema>_secrets`, kept out of the log
 * and out of the read models) and the scale-out tables: partition leases, members, assignment
 * slots. Idempotent; skipped on a schema-managed pool. The registered agents themselves are
 * events; `<schema>.external_agents` is their read model (the delegation projections).
 *
 * Before, the tokens were a column of `<schema>.external_agents`, which other roles could read:
 * they move to the secrets table, and the column goes.
 */
export async function ensureExternalAgentsTable(pool: pg.Pool, schema = 'delegation'): Promise<void> {
  const secrets = secretsSchema(schema);
  await migrateUnderLock(
    pool,
    `${schema}.external_agents.setup`,
    `create schema if not exists ${schema};
     create schema if not exists ${secrets};
     create table if not exists ${secrets}.external_agent_tokens (
       name text primary key,
       token text not null,
       updated_at timestamptz not null);
     do $$ begin
       if exists (select 1 from information_schema.columns
                  where table_schema = '${schema}' and table_name = 'external_agents' and column_name = 'token') then
         insert into ${secrets}.external_agent_tokens (name, token, updated_at)
           select name, token, updated_at from ${schema}.external_agents where token is not null
           on conflict (name) do nothing;
         alter table ${schema}.external_agents drop column token;
       end if;
     end $$;
     ${dispatcherLeaseTablesSql(schema)}`,
  );
}
