import type pg from 'pg';
import type { RecordedEvent } from '@switchyard/event-store';
import type { Projection } from '../projection.js';
import { tasksProjection } from '../delegation.js';
import { setupWorkflowReadModel, READ_SCHEMA } from '../workflow-executions.js';
import { latencyBucket } from './histogram.js';

/** Schema of the status read model tables. */
export const STATUS_SCHEMA = 'status';

/** Event types of libs/contracts/src/mcp-events.ts this projection folds (streams `mcpserver-<name>`). */
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
interface Called {
  server: string;
  at: string;
}
interface Finished {
  server: string;
  duration_ms: number;
  at: string;
  outcome: string;
  error_code?: string;
  error_message?: string;
}
interface Opened {
  server: string;
  last_error: string;
  at: string;
}
interface Transition {
  server: string;
  at: string;
}
interface WentDown {
  server: string;
  error: string;
  at: string;
}

/**
 * Helper indexes on other read models of this app that the status query filters on "ended in
 * the last hour": without them those counts scan every task / execution ever finished.
 * Their owners' DDL runs first (idempotent), so the indexes exist whichever runner starts first.
 */
export async function ensureStatusIndexes(c: pg.PoolClient, delegationSchema = 'delegation'): Promise<void> {
  const d = ident(delegationSchema);
  await tasksProjection(d).setup(c);
  await c.query(
    `create index if not exists tasks_ended_idx on ${d}.tasks (completed_at) where completed_at is not null`,
  );
  await setupWorkflowReadModel(c);
  await c.query(
    `create index if not exists workflow_executions_ended on ${READ_SCHEMA}.workflow_executions (ended_at) where ended_at is not null`,
  );
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
    // A lone live event costs fewer round trips event-wise (no read of its minute row first).
    applyBatch(c, events) {
      return events.length === 1 ? this.apply(c, events[0]!) : applyMcpStatusBatch(c, s, events);
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
            bucket === null
              ? [d.server, d.at, failed ? 1 : 0, toolError ? 1 : 0]
              : [d.server, d.at, failed ? 1 : 0, toolError ? 1 : 0, bucket],
          );
          // The call's time is when it started (as McpToolCalled says), not when it ended.
          const callStart = new Date(Date.parse(d.at) - d.duration_ms).toISOString();
          if (r.rows[0]?.inserted) {
            // A new minute opened: drop what has fallen out of every window we answer for.
            await c.query(
              `delete from ${s}.mcp_minutes where server = $1 and minute < $2::timestamptz - make_interval(secs => $3)`,
              [d.server, d.at, MINUTE_RETENTION_MS / 1000],
            );
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
            [
              d.server,
              d.at,
              failed ? 1 : 0,
              failed ? (d.error_message ?? null) : null,
              failed ? (d.error_code ?? null) : null,
              callStart,
            ],
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
          await c.query(
            `update ${s}.mcp_servers set health = 'up', health_since = $2, health_error = null where server = $1`,
            [d.server, d.at],
          );
          return;
        }
        default:
          return;
      }
    },
  };
}

/** One server's changes in a batch, folded: counters add up, the other columns take their last value. */
interface ServerFold {
  lastCall?: { ms: number; at: string };
  calls: number;
  failures: number;
  error?: { message: string | null; code: string | null; at: string };
  breaker?: { state: string; at: string };
  health?: { state: string; at: string; error: string | null };
}

/** One minute row as the batch leaves it: `hist` holds the non-null buckets only. */
interface MinuteRow {
  calls: number;
  failures: number;
  toolErrors: number;
  hist: Map<number, number>;
}

const MINUTE_MS = 60_000;

/** An int[] literal with its own lower bound (`[3:5]={1,NULL,2}`), as `hist[b] = ...` assignments build it. */
function histLiteral(hist: ReadonlyMap<number, number>): string {
  if (hist.size === 0) return '{}';
  const keys = [...hist.keys()];
  const lo = Math.min(...keys);
  const hi = Math.max(...keys);
  const values: string[] = [];
  for (let b = lo; b <= hi; b++) values.push(hist.has(b) ? String(hist.get(b)) : 'NULL');
  return `[${lo}:${hi}]={${values.join(',')}}`;
}

/**
 * The MCP status read model for a whole batch, each touched row written once (four statements
 * however long the batch):
 * 1. the minute rows the batch touches are read (one query), then every event is played in
 *    memory in order exactly as `apply` plays it in SQL: a call opening a minute row deletes the
 *    server's rows older than the retention from its `at`, a later call may open that minute again;
 * 2. the rows the retention deleted go (per server, below the latest threshold of the batch),
 *    then the touched minutes are written with their final values;
 * 3. the server rows: ensured, then one update with summed counters, the latest call time and
 *    the last error / breaker / health of the batch.
 * Times are compared in memory at millisecond precision, which is what the connectors write.
 */
async function applyMcpStatusBatch(c: pg.PoolClient, s: string, events: readonly RecordedEvent[]): Promise<void> {
  const servers = new Map<string, ServerFold>();
  const server = (name: string): ServerFold => {
    let f = servers.get(name);
    if (!f) servers.set(name, (f = { calls: 0, failures: 0 }));
    return f;
  };
  const touched = new Map<string, Set<number>>();
  for (const e of events) {
    if (e.type !== 'McpToolSucceeded' && e.type !== 'McpToolFailed') continue;
    const d = e.data as Finished;
    let set = touched.get(d.server);
    if (!set) touched.set(d.server, (set = new Set()));
    set.add(Math.floor(Date.parse(d.at) / MINUTE_MS) * MINUTE_MS);
  }
  // 1. The touched minute rows as stored before the batch.
  const minutes = new Map<string, Map<number, MinuteRow>>();
  if (touched.size > 0) {
    const keyServer: string[] = [],
      keyMinute: string[] = [];
    for (const [name, set] of touched) {
      minutes.set(name, new Map());
      for (const m of set) {
        keyServer.push(name);
        keyMinute.push(new Date(m).toISOString());
      }
    }
    const r = await c.query<{
      server: string;
      minute: Date;
      calls: number;
      failures: number;
      tool_errors: number;
      lo: number | null;
      hist: (number | null)[] | null;
    }>(
      `select m.server, m.minute, m.calls, m.failures, m.tool_errors, array_lower(m.hist, 1) as lo, array_to_json(m.hist) as hist
       from ${s}.mcp_minutes m join unnest($1::text[], $2::timestamptz[]) as k(server, minute) on m.server = k.server and m.minute = k.minute`,
      [keyServer, keyMinute],
    );
    for (const row of r.rows) {
      const hist = new Map<number, number>();
      (row.hist ?? []).forEach((v, i) => {
        if (v !== null) hist.set((row.lo ?? 1) + i, v);
      });
      minutes
        .get(row.server)!
        .set(row.minute.getTime(), { calls: row.calls, failures: row.failures, toolErrors: row.tool_errors, hist });
    }
  }
  /** Per server, the `at` of the call whose retention threshold is the latest. */
  const prune = new Map<string, { ms: number; at: string }>();
  for (const e of events) {
    switch (e.type) {
      case 'McpToolCalled': {
        const d = e.data as Called;
        const f = server(d.server);
        const ms = Date.parse(d.at);
        if (!f.lastCall || ms > f.lastCall.ms) f.lastCall = { ms, at: d.at };
        break;
      }
      case 'McpToolSucceeded':
      case 'McpToolFailed': {
        const d = e.data as Finished;
        const failed = e.type === 'McpToolFailed';
        const bucket = d.outcome === 'rejected' ? null : latencyBucket(d.duration_ms);
        const rows = minutes.get(d.server)!;
        const atMs = Date.parse(d.at);
        const minute = Math.floor(atMs / MINUTE_MS) * MINUTE_MS;
        let row = rows.get(minute);
        if (!row) {
          rows.set(minute, (row = { calls: 0, failures: 0, toolErrors: 0, hist: new Map() }));
          // A new minute opened: the retention as `apply` runs it (its own row is never older).
          const threshold = atMs - MINUTE_RETENTION_MS;
          for (const m of [...rows.keys()]) if (m < threshold) rows.delete(m);
          const p = prune.get(d.server);
          if (!p || atMs > p.ms) prune.set(d.server, { ms: atMs, at: d.at });
        }
        row.calls++;
        if (failed) row.failures++;
        if (failed && d.outcome === 'tool_error') row.toolErrors++;
        if (bucket !== null) row.hist.set(bucket, (row.hist.get(bucket) ?? 0) + 1);
        const f = server(d.server);
        const callStart = new Date(atMs - d.duration_ms).toISOString();
        const startMs = Date.parse(callStart);
        if (!f.lastCall || startMs > f.lastCall.ms) f.lastCall = { ms: startMs, at: callStart };
        f.calls++;
        if (failed) {
          f.failures++;
          f.error = { message: d.error_message ?? null, code: d.error_code ?? null, at: d.at };
        }
        break;
      }
      case 'McpCircuitOpened': {
        const d = e.data as Opened;
        const f = server(d.server);
        f.breaker = { state: 'open', at: d.at };
        f.error = { message: d.last_error ?? null, code: 'circuit_open', at: d.at };
        break;
      }
      case 'McpCircuitHalfOpened':
      case 'McpCircuitClosed': {
        const d = e.data as Transition;
        server(d.server).breaker = { state: e.type === 'McpCircuitClosed' ? 'closed' : 'half_open', at: d.at };
        break;
      }
      case 'McpServerWentDown': {
        const d = e.data as WentDown;
        const f = server(d.server);
        f.health = { state: 'down', at: d.at, error: d.error ?? null };
        f.error = { message: d.error ?? null, code: 'server_down', at: d.at };
        break;
      }
      case 'McpServerRecovered': {
        const d = e.data as Transition;
        server(d.server).health = { state: 'up', at: d.at, error: null };
        break;
      }
      default:
        break;
    }
  }
  // 2. Retention, then the touched minutes with their final values.
  if (prune.size > 0) {
    await c.query(
      `delete from ${s}.mcp_minutes m using unnest($1::text[], $2::timestamptz[]) as p(server, at)
       where m.server = p.server and m.minute < p.at - make_interval(secs => $3)`,
      [[...prune.keys()], [...prune.values()].map((p) => p.at), MINUTE_RETENTION_MS / 1000],
    );
  }
  const mServer: string[] = [],
    mMinute: string[] = [],
    mCalls: number[] = [],
    mFailures: number[] = [],
    mToolErrors: number[] = [],
    mHist: string[] = [];
  for (const [name, rows] of minutes) {
    const keep = touched.get(name)!;
    for (const [m, row] of rows) {
      if (!keep.has(m)) continue;
      mServer.push(name);
      mMinute.push(new Date(m).toISOString());
      mCalls.push(row.calls);
      mFailures.push(row.failures);
      mToolErrors.push(row.toolErrors);
      mHist.push(histLiteral(row.hist));
    }
  }
  if (mServer.length > 0) {
    await c.query(
      `insert into ${s}.mcp_minutes as m (server, minute, calls, failures, tool_errors, hist)
       select server, minute, calls, failures, tool_errors, hist::int[]
       from unnest($1::text[], $2::timestamptz[], $3::int[], $4::int[], $5::int[], $6::text[]) as v(server, minute, calls, failures, tool_errors, hist)
       on conflict (server, minute) do update set calls = excluded.calls, failures = excluded.failures, tool_errors = excluded.tool_errors, hist = excluded.hist`,
      [mServer, mMinute, mCalls, mFailures, mToolErrors, mHist],
    );
  }
  // 3. The server rows.
  if (servers.size === 0) return;
  const names = [...servers.keys()];
  const f = [...servers.values()];
  await c.query(`insert into ${s}.mcp_servers (server) select unnest($1::text[]) on conflict (server) do nothing`, [
    names,
  ]);
  await c.query(
    `update ${s}.mcp_servers m set
       last_call_at = greatest(m.last_call_at, v.last_call_at),
       calls_total = m.calls_total + v.calls,
       failures_total = m.failures_total + v.failures,
       last_error = case when v.has_error then v.last_error else m.last_error end,
       last_error_code = case when v.has_error then v.last_error_code else m.last_error_code end,
       last_error_at = case when v.has_error then v.last_error_at else m.last_error_at end,
       breaker = coalesce(v.breaker, m.breaker),
       breaker_since = case when v.breaker is null then m.breaker_since else v.breaker_since end,
       health = coalesce(v.health, m.health),
       health_since = case when v.health is null then m.health_since else v.health_since end,
       health_error = case when v.health is null then m.health_error else v.health_error end
     from unnest($1::text[], $2::timestamptz[], $3::int[], $4::int[], $5::bool[], $6::text[], $7::text[], $8::timestamptz[],
                 $9::text[], $10::timestamptz[], $11::text[], $12::timestamptz[], $13::text[])
       as v(server, last_call_at, calls, failures, has_error, last_error, last_error_code, last_error_at, breaker, breaker_since, health, health_since, health_error)
     where m.server = v.server`,
    [
      names,
      f.map((x) => x.lastCall?.at ?? null),
      f.map((x) => x.calls),
      f.map((x) => x.failures),
      f.map((x) => x.error !== undefined),
      f.map((x) => x.error?.message ?? null),
      f.map((x) => x.error?.code ?? null),
      f.map((x) => x.error?.at ?? null),
      f.map((x) => x.breaker?.state ?? null),
      f.map((x) => x.breaker?.at ?? null),
      f.map((x) => x.health?.state ?? null),
      f.map((x) => x.health?.at ?? null),
      f.map((x) => x.health?.error ?? null),
    ],
  );
}

/** The status read models for a ProjectionRunner (today: the MCP servers' status). */
export const statusProjections = (options: { schema?: string; delegationSchema?: string } = {}): Projection[] => [
  mcpStatusProjection(options),
];
