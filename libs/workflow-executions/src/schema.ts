import type pg from 'pg';
import { migrateUnderLock } from '@switchyard/platform';
import { WORKFLOW_DEFINITIONS_DDL } from '@switchyard/read-models';

/** Schema of the engine's own tables (definitions, the read model of their events; timers, partition checkpoints, active index with starters, members). */
export const WORKFLOW_SCHEMA = 'workflows';

const workflowDdl = `
create schema if not exists ${WORKFLOW_SCHEMA};
${WORKFLOW_DEFINITIONS_DDL}
-- Durable timers (step timeouts, retry backoff, compensation deadlines). One row per timer key;
-- the poller claims due rows with FOR UPDATE SKIP LOCKED and deletes them once their command ran.
create table if not exists ${WORKFLOW_SCHEMA}.timers (
  execution_id text not null, timer_key text not null, partition int not null,
  due_at timestamptz not null, command jsonb not null, primary key (execution_id, timer_key));
create index if not exists timers_due on ${WORKFLOW_SCHEMA}.timers (due_at);
-- Executions not yet ended, by partition: what a new partition owner must recover.
create table if not exists ${WORKFLOW_SCHEMA}.active_executions (
  execution_id text primary key, partition int not null, started_at timestamptz not null default now());
create index if not exists active_by_partition on ${WORKFLOW_SCHEMA}.active_executions (partition);
-- Its starter (startedBy): what WORKFLOW_MAX_OPEN_PER_STARTER counts. Rows of executions started
-- before the column existed have none and are not counted.
alter table ${WORKFLOW_SCHEMA}.active_executions add column if not exists started_by text;
create index if not exists active_by_starter on ${WORKFLOW_SCHEMA}.active_executions (started_by) where started_by is not null;
-- The saga's checkpoint in $all, one per partition (only the partition's owner moves it).
create table if not exists ${WORKFLOW_SCHEMA}.saga_checkpoints (
  partition int primary key, position bigint not null, updated_at timestamptz not null default now());
-- Sub-workflow executions by root: what WORKFLOW_MAX_EXECUTIONS_PER_ROOT counts.
create table if not exists ${WORKFLOW_SCHEMA}.execution_tree (
  execution_id text primary key, root_id text not null, parent_id text not null, depth int not null,
  created_at timestamptz not null default now());
create index if not exists execution_tree_by_root on ${WORKFLOW_SCHEMA}.execution_tree (root_id);
-- Persons whose API key was revoked (a projection of ApiKeyRevoked): the engines cancel the
-- executions they started (active_executions.started_by).
create table if not exists ${WORKFLOW_SCHEMA}.revoked_starters (
  actor text primary key, revoked_at timestamptz not null, position bigint not null, correlation_id text);
-- Live engine processes (heartbeats): how many share the partitions.
create table if not exists ${WORKFLOW_SCHEMA}.engine_members (
  member_id text primary key, heartbeat_at timestamptz not null, started_at timestamptz not null default now());
`;

/** Create the engine's tables; idempotent and safe from several processes at once. */
export async function ensureWorkflowSchema(pool: pg.Pool): Promise<void> {
  await migrateUnderLock(pool, `${WORKFLOW_SCHEMA}.setup`, workflowDdl);
}
