import type pg from 'pg';
import type { RecordedEvent } from '@switchyard/event-store';
import type { Projection } from '@switchyard/read-models';
import { tasksProjection } from '../delegation/projections.js';
import { setupWorkflowReadModel, READ_SCHEMA } from '../workflows/projection.js';
import { latencyBucket } from './histogram.js';

/** Schema of the status read model tables. */
export const STATUS_SCHEMA = 'status';

/** Event types of apps/connectors/src/events.ts this projection folds (streams `mcpserver-<name>`). */
export const MCP_STATUS_EVENT_TYPES = [
  'McpToolCalled',
  'McpToolSucceeded',
  'McpToolFailed',
  'McpCircuitOpened',
  'McpCircuitHalfOpened',
  'McpCircuitClosed',
  'McpServerWentDown',
  'McpServerRecovered',
] as const;

/** Minute buckets older than this (relative to the newest event of the server) are deleted. */
export const MINUTE_RETENTION_MS = 2 * 3_600_000;

const ident = (schema: string): string => {
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(schema)) throw new Error(`bad schema name ${schema}`);
  return schema;
};

// The event data this projection reads. The full contract (zod) is in @switchyard/connectors;
// only the fields used here are named, so a newer connector adding fields changes nothing.
interface Called { server: string; at: string }
interface Finished { server: string; duration_ms: number; at: string; outcome: string; error_code?: string; error_message?: string }
interface Opened { server: string; last_error: string; at: string }
interface Transition { server: string; at: string }
interface WentDown { server: string; error: string; at: string }

/**
 * Helper indexes on other read models of this app that the status query filters on "ended in
 * the last hour": without them those counts scan every task / execution ever finished.
 * Their owners' DDL runs first (idempotent), so the indexes exist whichever runner starts first.
 */
export async function ensureStatusIndexes(c: pg.PoolClient, delegationSchema = 'delegation'): Promise<void> {
  const d = ident(delegationSchema);
  await tasksProjection(d).setup(c);
  await c.query(`create index if not exists tasks_ended_idx on ${d}.tasks (completed_at) where completed_at is not null`);
  await setupWorkflowReadModel(c);
  await c.query(`create index if not exists workflow_executions_ended on ${READ_SCHEMA}.workflow_executions (ended_at) where ended_at is not null`);
}

/**
 * Status of every MCP server from the connector events:
 * - `<schema>.mcp_servers`: one row per server: health and since when, breaker and since when,
 *   the last error, the last call, lifetime totals.
 * - `<schema>.mcp_minutes`: one row per server and minute (of the event's `at`): calls,
 *   failures, tool errors and a latency histogram (see histogram.ts), so "the last hour" is a
 *   sum over at most 60 rows. Rows older than two hours are pruned as new minutes open.
 * Times come from the events' `at` (not the clock): a replay builds the same rows.
 */
export function mcpStatusProjection(options: { schema?: string; delegationSchema?: string } = {}): Projection {
  const s = ident(options.schema ?? STATUS_SCHEMA);
  const delegationSchema = options.delegationSchema ?? 'delegation';
  const ensureServer = (c: pg.PoolClient, server: string) =>
    c.query(`insert into ${s}.mcp_servers (server) values ($1) on conflict (server) do nothing`, [server]);
  return {
    name: `${s}.mcp_servers`,
    handles: MCP_STATUS_EVENT_TYPES,
    streamPrefixes: ['mcpserver-'],
    async setup(c) {
      await c.query(`create schema if not exists ${s}`);
      await c.query(`create table if not exists ${s}.mcp_servers (
        server text primary key,
        health text not null default 'unknown',
        health_since timestamptz,
        health_error text,
        breaker text not null default 'closed',
        breaker_since timestamptz,
        last_error text,
        last_error_code text,
        last_error_at timestamptz,
        last_call_at timestamptz,
        calls_total bigint not null default 0,
        failures_total bigint not null default 0)`);
      await c.query(`create table if not exists ${s}.mcp_minutes (
        server text not null,
        minute timestamptz not null,
        calls int not null default 0,
        failures int not null default 0,
        tool_errors int not null default 0,
        hist int[] not null default '{}',
        primary key (server, minute))`);
      await ensureStatusIndexes(c, delegationSchema);
    },
    async reset(c) {
      await c.query(`truncate ${s}.mcp_servers, ${s}.mcp_minutes`);
    },
    async apply(c: pg.PoolClient, e: RecordedEvent) {
      switch (e.type) {
        case 'McpToolCalled': {
          const d = e.data as Called;
          await c.query(
            `insert into ${s}.mcp_servers as m (server, last_call_at) values ($1, $2)
             on conflict (server) do update set last_call_at = greatest(m.last_call_at, excluded.last_call_at)`,
            [d.server, d.at],
          );
          return;
        }
        case 'McpToolSucceeded':
        case 'McpToolFailed': {
          const d = e.data as Finished;
          const failed = e.type === 'McpToolFailed';
          const toolError = failed && d.outcome === 'tool_error';
          // A call the breaker rejected never reached the server: it counts as a failed call, but
          // its ~0 ms would drag the latency percentiles down, so it stays out of the histogram.
          const bucket = d.outcome === 'rejected' ? null : latencyBucket(d.duration_ms);
          // The array spans only the buckets in use (its lower bound need not be 1): the status
          // query unnests far fewer elements than a 1-based array padded with NULLs.
          const r = await c.query<{ inserted: boolean }>(
            bucket === null
              ? `insert into ${s}.mcp_minutes as m (server, minute, calls, failures, tool_errors)
                 values ($1, date_trunc('minute', $2::timestamptz at time zone 'UTC') at time zone 'UTC', 1, $3::int, $4::int)
                 on conflict (server, minute) do update set
                   calls = m.calls + 1, failures = m.failures + excluded.failures, tool_errors = m.tool_errors + excluded.tool_errors
                 returning (xmax = 0) as inserted`
              : `insert into ${s}.mcp_minutes as m (server, minute, calls, failures, tool_errors, hist)
                 values ($1, date_trunc('minute', $2::timestamptz at time zone 'UTC') at time zone 'UTC', 1, $3::int, $4::int,
                         array_fill(1, array[1], array[$5::int]))
                 on conflict (server, minute) do update set
                   calls = m.calls + 1, failures = m.failures + excluded.failures, tool_errors = m.tool_errors + excluded.tool_errors,
                   hist[$5::int] = coalesce(m.hist[$5::int], 0) + 1
                 returning (xmax = 0) as inserted`,
            bucket === null ? [d.server, d.at, failed ? 1 : 0, toolError ? 1 : 0] : [d.server, d.at, failed ? 1 : 0, toolError ? 1 : 0, bucket],
          );
          // The call's time is when it started (as McpToolCalled says), not when it ended.
          const callStart = new Date(Date.parse(d.at) - d.duration_ms).toISOString();
          if (r.rows[0]?.inserted) {
            // A new minute opened: drop what has fallen out of every window we answer for.
            await c.query(`delete from ${s}.mcp_minutes where server = $1 and minute < $2::timestamptz - make_interval(secs => $3)`, [
              d.server,
              d.at,
              MINUTE_RETENTION_MS / 1000,
            ]);
          }
          await c.query(
            `insert into ${s}.mcp_servers as m (server, last_call_at, calls_total, failures_total, last_error, last_error_code, last_error_at)
             values ($1, $6::timestamptz, 1, $3::int, $4::text, $5::text, case when $3::int = 1 then $2::timestamptz end)
             on conflict (server) do update set
               last_call_at = greatest(m.last_call_at, excluded.last_call_at),
               calls_total = m.calls_total + 1,
               failures_total = m.failures_total + excluded.failures_total,
               last_error = case when excluded.failures_total = 1 then excluded.last_error else m.last_error end,
               last_error_code = case when excluded.failures_total = 1 then excluded.last_error_code else m.last_error_code end,
               last_error_at = case when excluded.failures_total = 1 then excluded.last_error_at else m.last_error_at end`,
            [d.server, d.at, failed ? 1 : 0, failed ? (d.error_message ?? null) : null, failed ? (d.error_code ?? null) : null, callStart],
          );
          return;
        }
        case 'McpCircuitOpened': {
          const d = e.data as Opened;
          await ensureServer(c, d.server);
          await c.query(
            `update ${s}.mcp_servers set breaker = 'open', breaker_since = $2, last_error = $3, last_error_code = 'circuit_open', last_error_at = $2 where server = $1`,
            [d.server, d.at, d.last_error],
          );
          return;
        }
        case 'McpCircuitHalfOpened':
        case 'McpCircuitClosed': {
          const d = e.data as Transition;
          await ensureServer(c, d.server);
          await c.query(`update ${s}.mcp_servers set breaker = $2, breaker_since = $3 where server = $1`, [
            d.server,
            e.type === 'McpCircuitClosed' ? 'closed' : 'half_open',
            d.at,
          ]);
          return;
        }
        case 'McpServerWentDown': {
          const d = e.data as WentDown;
          await ensureServer(c, d.server);
          await c.query(
            `update ${s}.mcp_servers set health = 'down', health_since = $2, health_error = $3, last_error = $3, last_error_code = 'server_down', last_error_at = $2 where server = $1`,
            [d.server, d.at, d.error],
          );
          return;
        }
        case 'McpServerRecovered': {
          const d = e.data as Transition;
          await ensureServer(c, d.server);
          await c.query(`update ${s}.mcp_servers set health = 'up', health_since = $2, health_error = null where server = $1`, [d.server, d.at]);
          return;
        }
        default:
          return;
      }
    },
  };
}

/** The status read models for a ProjectionRunner (today: the MCP servers' status). */
export const statusProjections = (options: { schema?: string; delegationSchema?: string } = {}): Projection[] => [mcpStatusProjection(options)];
