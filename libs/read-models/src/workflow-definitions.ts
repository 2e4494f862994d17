import type pg from 'pg';
import { toDomainEvent, type RecordedEvent } from '@switchyard/event-store';
import { DEFINITION_STREAM_PREFIX, definitionEventTypes, type DefinitionEvent } from '@switchyard/domain';
import type { Projection } from './projection.js';

/** The table of registered definitions, one row per id and version (kept in the engine's schema, where its readers look). */
export const DEFINITIONS_TABLE = 'workflows.definitions';

/** Its DDL, idempotent; also part of the engine's schema so readers find the table before any projection ran. */
export const WORKFLOW_DEFINITIONS_DDL = `
create schema if not exists workflows;
-- Versioned definitions, a projection of the workflow_definition-<id> streams. A running
-- execution carries its own copy, so a row never changes: a version is inserted, and a delete
-- removes every version of its id.
create table if not exists ${DEFINITIONS_TABLE} (
  id text not null, version int not null, definition jsonb not null, source text not null,
  created_at timestamptz not null default now(), primary key (id, version));
-- Characters of the definition as JSON (its stored size is compressed: a definition of repeated
-- steps reads back ten times larger); null for rows from before the column. Added only when
-- missing (ALTER TABLE locks the table even when the column is there).
do $definition_bytes$ begin
  if not exists (select 1 from pg_attribute
                  where attrelid = '${DEFINITIONS_TABLE}'::regclass and attname = 'definition_bytes' and not attisdropped) then
    alter table ${DEFINITIONS_TABLE} add column definition_bytes integer;
  end if;
end $definition_bytes$;
`;

async function applyDefinitionEvent(c: pg.PoolClient, r: RecordedEvent): Promise<void> {
  const e = toDomainEvent<DefinitionEvent>(r);
  switch (e.type) {
    // A replay finds the row already there.
    case 'DefinitionRegistered': {
      const definition = JSON.stringify(e.data.definition);
      await c.query(
        `insert into ${DEFINITIONS_TABLE} (id, version, definition, source, created_at, definition_bytes)
         values ($1, $2, $3, $4, $5, $6) on conflict do nothing`,
        [e.data.definitionId, e.data.version, definition, e.data.source, e.data.registeredAt, definition.length],
      );
      return;
    }
    case 'DefinitionDeleted':
      await c.query(`delete from ${DEFINITIONS_TABLE} where id = $1 and version = any($2::int[])`, [
        e.data.definitionId,
        e.data.versions,
      ]);
      return;
  }
}

/** Name of the projection and of its checkpoint. */
export const WORKFLOW_DEFINITIONS_PROJECTION = 'workflow_definitions';

/** `workflows.definitions` from the DefinitionRegistered / DefinitionDeleted events. */
export const workflowDefinitionsProjection: Projection = {
  name: WORKFLOW_DEFINITIONS_PROJECTION,
  handles: definitionEventTypes,
  streamPrefixes: [DEFINITION_STREAM_PREFIX],
  // A definition registered is read at once by other processes (start, sub-workflow steps): its row must not be lost.
  durableCommit: true,
  async setup(c) {
    // The engine's schema setup creates the same table: take its lock, so the two never race.
    await c.query('select pg_advisory_xact_lock(hashtext($1))', ['workflows.setup']);
    await c.query(WORKFLOW_DEFINITIONS_DDL);
  },
  apply: applyDefinitionEvent,
  async reset(c) {
    // DELETE rather than TRUNCATE: the engine's role may change rows of its schema but not truncate them.
    await c.query(`delete from ${DEFINITIONS_TABLE}`);
  },
};
