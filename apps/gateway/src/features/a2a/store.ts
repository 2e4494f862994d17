import type { Pool } from 'pg';
import { Task, type ListTasksRequest, type ListTasksResponse, type TaskPushNotificationConfig } from '@a2a-js/sdk';
import type {
  PushNotificationStore,
  ServerCallContext,
  StoredPushNotificationConfig,
  TaskStore,
} from '@a2a-js/sdk/server';
import { RequestMalformedError } from '@a2a-js/sdk/errors';
import { migrateUnderLock, newId, withTransaction } from '@switchyard/platform';

/**
 * Durable A2A state in PostgreSQL (schema `gateway`, tables `a2a_tasks` and `a2a_push_configs`): the tasks as the A2A peer last published
 * them, with the Switchyard task or workflow execution each one maps to, and the push
 * notification configs. `tasks/get` after a gateway restart reads them back; a task that was
 * still running then is brought up to date from the delegation or execution it maps to
 * (see the request handler), so nothing here is the source of truth for the work itself.
 */
export const A2A_SCHEMA_SQL = `
create schema if not exists gateway;
create table if not exists gateway.a2a_tasks (
  id text primary key,
  endpoint text not null,
  backend_kind text,
  backend_id text,
  owner text not null,
  task jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index if not exists a2a_tasks_backend on gateway.a2a_tasks (backend_kind, backend_id);
-- The messageId of the message that made the task: a message/send retried with the same messageId
-- by the same key finds its task instead of starting the work again.
alter table gateway.a2a_tasks add column if not exists origin_message_id text;
create index if not exists a2a_tasks_origin on gateway.a2a_tasks (endpoint, owner, origin_message_id)
  where origin_message_id is not null;
-- tasks/list: an endpoint's latest first, without reading every other endpoint's (a scan of all tasks before).
create index if not exists a2a_tasks_endpoint_updated on gateway.a2a_tasks (endpoint, updated_at desc);
-- The retention's oldest ended tasks, without reading the ones still under way.
create index if not exists a2a_tasks_ended_updated on gateway.a2a_tasks (updated_at)
  where task->'status'->>'state' in ('TASK_STATE_COMPLETED', 'TASK_STATE_FAILED', 'TASK_STATE_CANCELED', 'TASK_STATE_REJECTED');
-- Who is making the task for a new-task message (endpoint, key, messageId): the same message sent
-- to two gateways at once would otherwise make two tasks, each gateway finding no task yet. The
-- maker refreshes its claim until its task row exists; a claim left by a gateway that died before
-- that goes stale and another takes it over.
create table if not exists gateway.a2a_origin_claims (
  endpoint text not null,
  owner text not null,
  message_id text not null,
  claimed_at timestamptz not null default now(),
  primary key (endpoint, owner, message_id)
);
create table if not exists gateway.a2a_push_configs (
  task_id text not null,
  id text not null,
  config jsonb not null,
  wire_version text not null,
  created_at timestamptz not null default now(),
  primary key (task_id, id)
);
-- The key that set a config: only it (or an admin) replaces or deletes it.
alter table gateway.a2a_push_configs add column if not exists owner text not null default '';
`;

export async function migrateA2a(pool: Pool): Promise<void> {
  await migrateUnderLock(pool, 'switchyard:a2a:migrate', A2A_SCHEMA_SQL);
}

/**
 * How long an ended A2A task (completed, failed, canceled, rejected) is kept after its last
 * change. It answers `tasks/get` and `tasks/list` for a client that comes back for it; the work
 * it stood for stays in the event log and the REST read models. Without a limit the table grows
 * with every task any client ever sent (each row holds the task's whole history and artifacts).
 */
export const DEFAULT_A2A_TASK_RETENTION_DAYS = 30;

/** Ended tasks one statement deletes (with their push configs): a round's locks stay short. */
const A2A_PURGE_BATCH = 1_000;

/**
 * Delete up to `limit` ended tasks last changed before `cutoff`, oldest first, and their push
 * notification configs. Tasks still under way are never taken; rows another gateway's round
 * holds are skipped.
 */
export async function purgeEndedA2aTasks(
  pool: Pool,
  cutoff: Date,
  limit = A2A_PURGE_BATCH,
): Promise<{ tasks: number; push_configs: number; claims: number }> {
  const r = await pool.query<{ tasks: number; push_configs: number; claims: number }>(
    `with gone as (
       delete from gateway.a2a_tasks where id in (
         select id from gateway.a2a_tasks
          where task->'status'->>'state' in ('TASK_STATE_COMPLETED', 'TASK_STATE_FAILED', 'TASK_STATE_CANCELED', 'TASK_STATE_REJECTED')
            and updated_at < $1
          order by updated_at limit $2 for update skip locked)
       returning id),
     configs as (delete from gateway.a2a_push_configs c using gone where c.task_id = gone.id returning 1),
     -- A claim is needed only while its task is being made (then the task row answers a repeat);
     -- one an hour old is either behind a task row or abandoned.
     claims as (delete from gateway.a2a_origin_claims where ctid in (
         select ctid from gateway.a2a_origin_claims where claimed_at < now() - interval '1 hour' limit $2) returning 1)
     select (select count(*) from gone)::int as tasks, (select count(*) from configs)::int as push_configs,
            (select count(*) from claims)::int as claims`,
    [cutoff, limit],
  );
  return r.rows[0] ?? { tasks: 0, push_configs: 0, claims: 0 };
}

/** Who is asking, as the A2A layer knows it (the user name the gateway's UserBuilder set: `apikey:<id>` or `anonymous`). */
const ownerOf = (context: ServerCallContext | undefined): string => context?.user?.userName || 'anonymous';

/** Link between an A2A task and the Switchyard work that carries it out. */
export interface BackendLink {
  readonly kind: 'task' | 'workflow';
  readonly id: string;
}

/**
 * TaskStore on `gateway.a2a_tasks`. Every key sees every task of its endpoint (as REST shows any
 * task to a viewer); the owner is kept for the record. Tasks are stored as their JSON form.
 */
export class PgTaskStore implements TaskStore {
  constructor(
    private readonly pool: Pool,
    private readonly endpoint: string,
  ) {}

  async save(task: Task, context: ServerCallContext): Promise<void> {
    const link = linkOf(task);
    await this.pool.query(
      `insert into gateway.a2a_tasks (id, endpoint, backend_kind, backend_id, owner, task, origin_message_id) values ($1, $2, $3, $4, $5, $6, $7)
       on conflict (id) do update set task = excluded.task, updated_at = now(),
         backend_kind = coalesce(excluded.backend_kind, gateway.a2a_tasks.backend_kind), backend_id = coalesce(excluded.backend_id, gateway.a2a_tasks.backend_id)
       where gateway.a2a_tasks.endpoint = excluded.endpoint`,
      [
        task.id,
        this.endpoint,
        link?.kind ?? null,
        link?.id ?? null,
        ownerOf(context),
        JSON.stringify(Task.toJSON(task)),
        // Set when the row is made (the task's first message); an update leaves it.
        task.history?.[0]?.messageId || null,
      ],
    );
  }

  /** The task a message with this messageId made for this caller on this endpoint, if any. */
  async findByOriginMessage(messageId: string, context: ServerCallContext): Promise<string | undefined> {
    const r = await this.pool.query<{ id: string }>(
      `select id from gateway.a2a_tasks where endpoint = $1 and owner = $2 and origin_message_id = $3 order by created_at limit 1`,
      [this.endpoint, ownerOf(context), messageId],
    );
    return r.rows[0]?.id;
  }

  /**
   * Claim the making of the task for a new-task message of this caller: true when the claim is
   * this call's (no one held it, or the holder stopped refreshing it `staleMs` ago), false while
   * another call (here or on another gateway) holds it.
   */
  async claimOrigin(messageId: string, context: ServerCallContext, staleMs: number): Promise<boolean> {
    const r = await this.pool.query(
      `insert into gateway.a2a_origin_claims (endpoint, owner, message_id) values ($1, $2, $3)
       on conflict (endpoint, owner, message_id) do update set claimed_at = now()
       where gateway.a2a_origin_claims.claimed_at < now() - make_interval(secs => $4::float8 / 1000)
       returning 1`,
      [this.endpoint, ownerOf(context), messageId, staleMs],
    );
    return r.rowCount === 1;
  }

  /** Keep a claim fresh while its task is being made. */
  async refreshOrigin(messageId: string, context: ServerCallContext): Promise<void> {
    await this.pool.query(
      `update gateway.a2a_origin_claims set claimed_at = now() where endpoint = $1 and owner = $2 and message_id = $3`,
      [this.endpoint, ownerOf(context), messageId],
    );
  }

  /** Give a claim up (its call made no task): the next repeat of the message makes it. */
  async releaseOrigin(messageId: string, context: ServerCallContext): Promise<void> {
    await this.pool.query(
      `delete from gateway.a2a_origin_claims where endpoint = $1 and owner = $2 and message_id = $3`,
      [this.endpoint, ownerOf(context), messageId],
    );
  }

  async load(taskId: string): Promise<Task | undefined> {
    const r = await this.pool.query<{ task: unknown }>(
      `select task from gateway.a2a_tasks where id = $1 and endpoint = $2`,
      [taskId, this.endpoint],
    );
    return r.rows[0] ? Task.fromJSON(r.rows[0].task) : undefined;
  }

  async list(params: ListTasksRequest): Promise<ListTasksResponse> {
    const size = Math.min(Math.max(params.pageSize ?? 50, 1), 100);
    const r = await this.pool.query<{ task: unknown }>(
      `select task from gateway.a2a_tasks where endpoint = $1 and ($2::text = '' or task->>'contextId' = $2) order by updated_at desc limit $3`,
      [this.endpoint, params.contextId ?? '', size],
    );
    const tasks = r.rows.map((row) => Task.fromJSON(row.task));
    return { tasks, nextPageToken: '', pageSize: size, totalSize: tasks.length };
  }
}

/** The Switchyard work an A2A task maps to, from the metadata the executor puts on it. */
export function linkOf(task: Task): BackendLink | undefined {
  const m = task.metadata;
  if (typeof m?.switchyard_task_id === 'string') return { kind: 'task', id: m.switchyard_task_id };
  if (typeof m?.switchyard_execution_id === 'string') return { kind: 'workflow', id: m.switchyard_execution_id };
  return undefined;
}

/**
 * Push notification configs one key may set on one task, and all keys together. Every state
 * change of the task is delivered to each of them: without a bound, one key could turn one task
 * into any number of requests to a URL of its choice (the egress guard keeps private addresses
 * out, not public ones); with one bound for the task only, one key could take every place and
 * leave none to the key that sent the task.
 */
export const MAX_PUSH_CONFIGS_PER_KEY = 10;
export const MAX_PUSH_CONFIGS_PER_TASK = 30;

/** Whether the caller may replace or delete any key's config (an admin; everyone when auth is off). */
const actsForAll = (context: ServerCallContext | undefined): boolean =>
  (context?.user as { actsForAllKeys?: boolean } | undefined)?.actsForAllKeys !== false;

/**
 * Push notification configs on `gateway.a2a_push_configs`, with the wire version each was
 * registered over (0.3 or 1.0) and the key that set it. Every config of a task is delivered to,
 * whoever set it; a config is replaced or deleted only by its key or an admin.
 */
export class PgPushNotificationStore implements PushNotificationStore {
  constructor(private readonly pool: Pool) {}

  async save(taskId: string, context: ServerCallContext, config: TaskPushNotificationConfig): Promise<void> {
    if (!config.id) config.id = newId();
    const owner = ownerOf(context);
    // The task's advisory lock, then the counts in a statement that starts after it: concurrent
    // saves for one task cannot pass the bounds together. A replaced config (same id) never counts twice.
    const outcome = await withTransaction(this.pool, async (client) => {
      await client.query(`select pg_advisory_xact_lock(hashtext('a2a_push:' || $1))`, [taskId]);
      const held = await client.query<{ owner: string }>(
        `select owner from gateway.a2a_push_configs where task_id = $1 and id = $2`,
        [taskId, config.id],
      );
      const existing = held.rows[0];
      if (existing && existing.owner !== owner && !actsForAll(context)) return 'another key' as const;
      const r = await client.query(
        `insert into gateway.a2a_push_configs (task_id, id, config, wire_version, owner)
         select $1, $2, $3, $4, $5
          where exists (select 1 from gateway.a2a_push_configs where task_id = $1 and id = $2)
             or ((select count(*) from gateway.a2a_push_configs where task_id = $1 and owner = $5) < $6
                 and (select count(*) from gateway.a2a_push_configs where task_id = $1) < $7)
         on conflict (task_id, id) do update set config = excluded.config, wire_version = excluded.wire_version`,
        [
          taskId,
          config.id,
          JSON.stringify({ ...config, taskId }),
          context.requestedVersion || '1.0',
          owner,
          MAX_PUSH_CONFIGS_PER_KEY,
          MAX_PUSH_CONFIGS_PER_TASK,
        ],
      );
      return r.rowCount === 0 ? ('full' as const) : ('saved' as const);
    });
    if (outcome === 'another key')
      throw new RequestMalformedError(
        `push notification config ${config.id} of task ${taskId} was set by another key: choose another id`,
      );
    if (outcome === 'full')
      throw new RequestMalformedError(
        `task ${taskId} has its push notification configs already (at most ${MAX_PUSH_CONFIGS_PER_KEY} from one key, ${MAX_PUSH_CONFIGS_PER_TASK} in all); delete one first`,
      );
  }

  async load(taskId: string): Promise<TaskPushNotificationConfig[]> {
    return (await this.loadWithMetadata(taskId)).map((s) => s.config);
  }

  /**
   * A task's configs with their wire version and owner (the key that set it), leaving out those
   * whose key was revoked since: a revoked key's push URLs get nothing more.
   */
  async loadWithMetadata(taskId: string): Promise<(StoredPushNotificationConfig & { owner: string })[]> {
    const r = await this.pool.query<{ config: TaskPushNotificationConfig; wire_version: string; owner: string }>(
      `select c.config, c.wire_version, c.owner from gateway.a2a_push_configs c
        where c.task_id = $1
          and not exists (select 1 from security.api_keys k where 'apikey:' || k.id = c.owner and k.revoked_at is not null)
        order by c.created_at`,
      [taskId],
    );
    return r.rows.map((row) => ({ config: row.config, wireVersion: row.wire_version, owner: row.owner }));
  }

  /** The ids of a task's configs that the caller did not set (those it reads cut to their origin). */
  async setByOthers(taskId: string, context: ServerCallContext): Promise<ReadonlySet<string>> {
    if (actsForAll(context)) return new Set();
    const r = await this.pool.query<{ id: string }>(
      `select id from gateway.a2a_push_configs where task_id = $1 and owner <> $2`,
      [taskId, ownerOf(context)],
    );
    return new Set(r.rows.map((row) => row.id));
  }

  /** Deletes one config, or all the caller's (an admin's: all) when no id is given; another key's config is refused. */
  async delete(taskId: string, context: ServerCallContext, configId?: string): Promise<void> {
    const all = actsForAll(context);
    if (configId === undefined) {
      await this.pool.query(`delete from gateway.a2a_push_configs where task_id = $1 and ($2 or owner = $3)`, [
        taskId,
        all,
        ownerOf(context),
      ]);
      return;
    }
    const r = await this.pool.query<{ owner: string; deleted: boolean }>(
      `with target as (select owner from gateway.a2a_push_configs where task_id = $1 and id = $2),
            gone as (delete from gateway.a2a_push_configs where task_id = $1 and id = $2 and ($3 or owner = $4) returning 1)
       select (select owner from target) as owner, exists (select 1 from gone) as deleted`,
      [taskId, configId, all, ownerOf(context)],
    );
    const row = r.rows[0];
    if (row?.owner !== null && row?.owner !== undefined && !row.deleted)
      throw new RequestMalformedError(
        `push notification config ${configId} of task ${taskId} was set by another key; only it or an admin deletes it`,
      );
  }
}
