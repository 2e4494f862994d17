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
create table if not exists gateway.a2a_push_configs (
  task_id text not null,
  id text not null,
  config jsonb not null,
  wire_version text not null,
  created_at timestamptz not null default now(),
  primary key (task_id, id)
);
`;

export async function migrateA2a(pool: Pool): Promise<void> {
  await migrateUnderLock(pool, 'switchyard:a2a:migrate', A2A_SCHEMA_SQL);
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
      `insert into gateway.a2a_tasks (id, endpoint, backend_kind, backend_id, owner, task) values ($1, $2, $3, $4, $5, $6)
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
      ],
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
 * Push notification configs one task may have. Every state change of the task is delivered to
 * each of them: without a bound, one key could turn one task into any number of requests to a
 * URL of its choice (the egress guard keeps private addresses out, not public ones).
 */
export const MAX_PUSH_CONFIGS_PER_TASK = 10;

/** Push notification configs on `gateway.a2a_push_configs`, with the wire version each was registered over (0.3 or 1.0). */
export class PgPushNotificationStore implements PushNotificationStore {
  constructor(private readonly pool: Pool) {}

  async save(taskId: string, context: ServerCallContext, config: TaskPushNotificationConfig): Promise<void> {
    if (!config.id) config.id = newId();
    // The task's advisory lock, then the count in a statement that starts after it: concurrent
    // saves for one task cannot pass the bound together. A replaced config (same id) never counts twice.
    const r = await withTransaction(this.pool, async (client) => {
      await client.query(`select pg_advisory_xact_lock(hashtext('a2a_push:' || $1))`, [taskId]);
      return client.query(
        `insert into gateway.a2a_push_configs (task_id, id, config, wire_version)
         select $1, $2, $3, $4
          where exists (select 1 from gateway.a2a_push_configs where task_id = $1 and id = $2)
             or (select count(*) from gateway.a2a_push_configs where task_id = $1) < $5
         on conflict (task_id, id) do update set config = excluded.config, wire_version = excluded.wire_version`,
        [
          taskId,
          config.id,
          JSON.stringify({ ...config, taskId }),
          context.requestedVersion || '1.0',
          MAX_PUSH_CONFIGS_PER_TASK,
        ],
      );
    });
    if (r.rowCount === 0)
      throw new RequestMalformedError(
        `task ${taskId} has ${MAX_PUSH_CONFIGS_PER_TASK} push notification configs already (the most it may have); delete one first`,
      );
  }

  async load(taskId: string): Promise<TaskPushNotificationConfig[]> {
    return (await this.loadWithMetadata(taskId)).map((s) => s.config);
  }

  async loadWithMetadata(taskId: string): Promise<StoredPushNotificationConfig[]> {
    const r = await this.pool.query<{ config: TaskPushNotificationConfig; wire_version: string }>(
      `select config, wire_version from gateway.a2a_push_configs where task_id = $1 order by created_at`,
      [taskId],
    );
    return r.rows.map((row) => ({ config: row.config, wireVersion: row.wire_version }));
  }

  async delete(taskId: string, _context: ServerCallContext, configId?: string): Promise<void> {
    if (configId === undefined)
      await this.pool.query(`delete from gateway.a2a_push_configs where task_id = $1`, [taskId]);
    else
      await this.pool.query(`delete from gateway.a2a_push_configs where task_id = $1 and id = $2`, [taskId, configId]);
  }
}
