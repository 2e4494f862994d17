/**
 * Where run-time registered external agents are kept: `<schema>.external_agents` (one row per
 * agent, with its token, which the ExternalAgentRegistered event leaves out), and the DDL of
 * the dispatcher's tables. The registration flow (checks, events, registry) is the Dispatcher's.
 */
import type pg from 'pg';
import type { z } from 'zod';
import { migrateUnderLock } from '@switchyard/platform';
import type { externalAgentSchema } from '@switchyard/contracts';
import { dispatcherLeaseTablesSql } from './leases.js';

/** A stored row, as selected. */
export interface StoredExternalAgent {
  readonly name: string;
  readonly url: string;
  readonly task_types: string[];
  readonly token: string | null;
  readonly max_concurrency: number;
  readonly description: string;
  readonly a2a_card_url: string | null;
}

/** Insert or replace an agent's row. */
export async function storeExternalAgent(
  pool: pg.Pool,
  schema: string,
  a: z.output<typeof externalAgentSchema>,
  at: string,
): Promise<void> {
  await pool.query(
    `insert into ${schema}.external_agents (name, url, task_types, token, max_concurrency, description, registered_at, updated_at, a2a_card_url)
     values ($1, $2, $3, $4, $5, $6, $7, $7, $8)
     on conflict (name) do update set url = excluded.url, task_types = excluded.task_types, token = excluded.token,
       max_concurrency = excluded.max_concurrency, description = excluded.description, updated_at = excluded.updated_at, a2a_card_url = excluded.a2a_card_url`,
    [a.name, a.url, a.task_types, a.token ?? null, a.max_concurrency, a.description, at, a.a2a_card_url ?? null],
  );
}

/** Delete an agent's row; false when there was none. */
export async function deleteExternalAgent(pool: pg.Pool, schema: string, name: string): Promise<boolean> {
  const gone = await pool.query(`delete from ${schema}.external_agents where name = $1`, [name]);
  return gone.rowCount !== 0;
}

/** Every stored agent, by name. */
export async function storedExternalAgents(pool: pg.Pool, schema: string): Promise<StoredExternalAgent[]> {
  const rows = await pool.query<StoredExternalAgent>(
    `select name, url, task_types, token, max_concurrency, description, a2a_card_url from ${schema}.external_agents order by name`,
  );
  return rows.rows;
}

/** One stored agent (without its A2A card URL, as a refresh after another dispatcher's change reads it), or undefined. */
export async function storedExternalAgent(
  pool: pg.Pool,
  schema: string,
  name: string,
): Promise<Omit<StoredExternalAgent, 'a2a_card_url'> | undefined> {
  const rows = await pool.query<Omit<StoredExternalAgent, 'a2a_card_url'>>(
    `select name, url, task_types, token, max_concurrency, description from ${schema}.external_agents where name = $1`,
    [name],
  );
  return rows.rows[0];
}

/**
 * `<schema>.external_agents` (the registered external agents) and the scale-out tables: partition
 * leases, members, assignment slots (idempotent; skipped on a schema-managed pool).
 */
export async function ensureExternalAgentsTable(pool: pg.Pool, schema = 'delegation'): Promise<void> {
  await migrateUnderLock(
    pool,
    `${schema}.external_agents.setup`,
    `create schema if not exists ${schema};
     create table if not exists ${schema}.external_agents (
       name text primary key,
       url text not null,
       task_types text[] not null,
       token text,
       max_concurrency int not null,
       description text not null default '',
       registered_at timestamptz not null,
       updated_at timestamptz not null);
     alter table ${schema}.external_agents add column if not exists a2a_card_url text;
     ${dispatcherLeaseTablesSql(schema)}`,
  );
}
