import type pg from 'pg';
import { AppError } from '@switchyard/platform';
import { isCallerError } from '@switchyard/domain';
import { READ_SCHEMA } from '../workflow-executions.js';
import { quantileOfBuckets } from './histogram.js';
import { STATUS_SCHEMA } from './mcp-projection.js';
import type { AgentStatus, IntegrationReadModels, McpServerStatus } from './schemas.js';

export interface ReadIntegrationStatusOptions {
  /** The instant "now" (the last hour ends here). */
  readonly now: Date;
  readonly statusSchema?: string;
  readonly delegationSchema?: string;
}

const HOUR_MS = 3_600_000;
const ident = (schema: string): string => {
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(schema)) throw new AppError('validation', `bad schema name ${schema}`);
  return schema;
};

type Part = 'mcp' | 'agents' | 'workflows' | 'alerts' | 'instances';
type Presence = Readonly<Record<Part, boolean>>;

/**
 * Which read models exist, per pool and schema set. Once everything is there the answer is
 * kept (tables are not dropped in operation; an undefined-table error clears it); while
 * something is missing it is asked again at every read, so new tables show up at once.
 */
const presenceCache = new WeakMap<pg.Pool, Map<string, Presence>>();
const sqlCache = new Map<string, string>();

async function presence(pool: pg.Pool, s: string, d: string): Promise<Presence> {
  const key = `${s}|${d}`;
  const cached = presenceCache.get(pool)?.get(key);
  if (cached) return cached;
  const r = await pool.query<Record<Part, boolean>>(
    `select to_regclass($1) is not null and to_regclass($2) is not null as mcp,
            to_regclass($3) is not null and to_regclass($4) is not null and to_regclass($5) is not null as agents,
            to_regclass($6) is not null as workflows,
            to_regclass('monitoring.alerts') is not null as alerts,
            to_regclass('monitoring.services') is not null as instances`,
    [
      `${s}.mcp_servers`,
      `${s}.mcp_minutes`,
      `${d}.tasks`,
      `${d}.agent_performance`,
      `${d}.task_latency`,
      `${READ_SCHEMA}.workflow_executions`,
    ],
  );
  const p = r.rows[0]!;
  if (Object.values(p).every(Boolean)) {
    let m = presenceCache.get(pool);
    if (!m) presenceCache.set(pool, (m = new Map()));
    m.set(key, p);
  }
  return p;
}

/**
 * One statement answers every present section ($1: start of the last hour, $2: first minute
 * bucket of it). Each part is an indexed lookup: the MCP minutes by (server, minute), active
 * tasks by the partial status index, finished tasks and executions by their end-time
 * indexes (ensureStatusIndexes), latencies by (agent, finished_at), alerts by state.
 */
function statement(p: Presence, s: string, d: string): string {
  const key = `${JSON.stringify(p)}|${s}|${d}`;
  const hit = sqlCache.get(key);
  if (hit) return hit;
  const X = `${READ_SCHEMA}.workflow_executions`;
  const cols: string[] = [];
  if (p.mcp) {
    // Set-returning functions in the select list stream (no per-row function scan): the
    // histograms of the hour's minute rows are merged in one pass over the (retention-bounded) table.
    cols.push(`(select coalesce(json_agg(row_to_json(x) order by x.server), '[]'::json) from (
        select v.server, v.health, v.health_since, v.health_error, v.breaker, v.breaker_since, v.last_error, v.last_error_code,
               v.last_error_at, v.last_call_at, v.calls_total, v.failures_total,
               coalesce(m.calls, 0) as calls, coalesce(m.failures, 0) as failures, coalesce(m.tool_errors, 0) as tool_errors, h.hist
          from ${s}.mcp_servers v
          left join (
            select server, sum(calls)::int as calls, sum(failures)::int as failures, sum(tool_errors)::int as tool_errors
              from ${s}.mcp_minutes where minute >= $2 group by server) m on m.server = v.server
          left join (
            select server, json_agg(json_build_array(i, n)) as hist from (
              select server, i, sum(n)::int as n from (
                select server, unnest(hist) as n, generate_subscripts(hist, 1) as i from ${s}.mcp_minutes where minute >= $2) u
               where n is not null group by server, i) b
             group by server) h on h.server = v.server) x) as mcp`);
  }
  if (p.agents) {
    cols.push(`json_build_object(
        'active', (select coalesce(json_agg(a), '[]'::json) from (
            select case when status in ('assigned', 'working') then agent else requested_agent end as agent,
                   count(*) filter (where status in ('assigned', 'working'))::int as in_flight,
                   count(*) filter (where status in ('submitted', 'queued'))::int as queued
              from ${d}.tasks where status in ('submitted', 'queued', 'assigned', 'working') group by 1) a),
        'ended', (select coalesce(json_agg(e), '[]'::json) from (
            select agent, status, case when status = 'failed' then error->>'code' end as code,
                   case when status = 'failed' then error->'details'->>'reason' end as reason, count(*)::int as n
              from ${d}.tasks where completed_at >= $1 and completed_at is not null and agent is not null
               and status in ('completed', 'failed', 'timed_out') group by 1, 2, 3, 4) e),
        'perf', (select coalesce(json_agg(q), '[]'::json) from (
            select p.agent, p.tasks_done, p.succeeded, p.failed, p.timed_out, p.caller_errors, p.last_task_at, l.p50, l.p95
              from ${d}.agent_performance p
              left join lateral (
                select percentile_cont(0.5) within group (order by duration_ms)::float8 as p50,
                       percentile_cont(0.95) within group (order by duration_ms)::float8 as p95
                  from ${d}.task_latency t where t.agent = p.agent and t.finished_at >= $1 and t.succeeded) l on true) q)
      ) as agents`);
  }
  if (p.workflows) {
    cols.push(`json_build_object(
        'running', (select count(*) from ${X} where status = 'running'),
        'canceling', (select count(*) from ${X} where status = 'canceling'),
        'ended', (select coalesce(json_object_agg(status, n), '{}'::json) from (
            select status, count(*)::int as n from ${X} where ended_at >= $1 and ended_at is not null group by status) e)
      ) as workflows`);
  }
  if (p.alerts) {
    cols.push(`json_build_object(
        'firing', (select count(*) from monitoring.alerts where state = 'firing'),
        'pending', (select count(*) from monitoring.alerts where state = 'pending'),
        'items', (select coalesce(json_agg(a), '[]'::json) from (
            select fingerprint as id, rule_id, name, severity, labels, value, threshold, firing_since, suppressed_by
              from monitoring.alerts where state = 'firing'
             order by case severity when 'critical' then 0 when 'warning' then 1 else 2 end, firing_since limit 100) a)
      ) as alerts`);
  }
  if (p.instances) {
    cols.push(`(select coalesce(json_agg(i), '[]'::json) from (
        select service, kind, status, reason, since, last_probe_at, last_error from monitoring.services where kind in ('agent', 'mcp')) i) as instances`);
  }
  // Parameters must all be referenced for their types to be known.
  const sql = `select $1::timestamptz as window_from, $2::timestamptz as minute_from${cols.length ? ', ' + cols.join(',\n') : ''}`;
  sqlCache.set(key, sql);
  return sql;
}

/**
 * The MCP servers as the projection has them, completed by the monitor's probes (`mcp:<server>`):
 * the connectors record a health event only on a change (down, recovered), so a server that came
 * up and has not been called yet has no row, or a row with health `unknown`; the probe knows.
 * A server the monitor found unconfigured (not probed: a credential not set) is listed
 * `unconfigured`, with the reason as its health_error.
 */
function withProbedServers(servers: McpServerStatus[], rows: readonly InstanceRow[] | undefined): McpServerStatus[] {
  const probes = new Map<string, InstanceRow>();
  for (const r of rows ?? [])
    if (r.kind === 'mcp' && r.service.startsWith('mcp:')) probes.set(r.service.slice('mcp:'.length), r);
  const health = (r: InstanceRow): McpServerStatus['health'] =>
    r.status === 'up' || r.status === 'degraded'
      ? 'up'
      : r.status === 'down' || r.status === 'unconfigured'
        ? r.status
        : 'unknown';
  const error = (r: InstanceRow): string | null =>
    r.status === 'unconfigured' ? (r.reason ?? r.last_error) : r.last_error;
  const out = servers.map((v) => {
    const probe = probes.get(v.server);
    return v.health === 'unknown' && probe && health(probe) !== 'unknown'
      ? { ...v, health: health(probe), health_since: iso(probe.since), health_error: error(probe) }
      : v;
  });
  for (const [server, probe] of probes) {
    if (out.some((v) => v.server === server)) continue;
    out.push({
      server,
      health: health(probe),
      health_since: iso(probe.since),
      health_error: error(probe),
      breaker: 'closed',
      breaker_since: null,
      last_error: null,
      last_call_at: null,
      last_hour: { calls: 0, failures: 0, tool_errors: 0, failure_rate: null, p95_ms: null },
      totals: { calls: 0, failures: 0 },
    });
  }
  return out.sort((a, b) => a.server.localeCompare(b.server));
}

const iso = (v: unknown): string | null => (v === null || v === undefined ? null : new Date(v as string).toISOString());
const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
const rate = (part: number, whole: number): number | null =>
  whole > 0 ? Math.round((part / whole) * 10_000) / 10_000 : null;

interface McpRow {
  server: string;
  health: string;
  health_since: string | null;
  health_error: string | null;
  breaker: string;
  breaker_since: string | null;
  last_error: string | null;
  last_error_code: string | null;
  last_error_at: string | null;
  last_call_at: string | null;
  calls_total: number;
  failures_total: number;
  calls: number;
  failures: number;
  tool_errors: number;
  hist: [number, number][] | null;
}
interface AgentsJson {
  active: { agent: string | null; in_flight: number; queued: number }[];
  /** Tasks ended in the window by agent, status and (for a failure) its error's code and reason. */
  ended: { agent: string; status: string; code: string | null; reason: string | null; n: number }[];
  perf: {
    agent: string;
    tasks_done: number;
    succeeded: number;
    failed: number;
    timed_out: number;
    caller_errors: number;
    last_task_at: string | null;
    p50: number | null;
    p95: number | null;
  }[];
}
interface InstanceRow {
  service: string;
  kind?: string;
  status: string;
  /** Why it is degraded or unconfigured (absent from rows read before this column was selected). */
  reason?: string | null;
  since: string | null;
  last_probe_at: string | null;
  last_error: string | null;
}

function mcpServer(r: McpRow): McpServerStatus {
  const health = r.health === 'up' || r.health === 'down' ? r.health : 'unknown';
  const breaker = r.breaker === 'open' || r.breaker === 'half_open' ? r.breaker : 'closed';
  return {
    server: r.server,
    health,
    health_since: iso(r.health_since),
    health_error: r.health_error,
    breaker,
    breaker_since: iso(r.breaker_since),
    last_error:
      r.last_error_at || r.last_error
        ? { code: r.last_error_code, message: r.last_error, at: iso(r.last_error_at) }
        : null,
    last_call_at: iso(r.last_call_at),
    last_hour: {
      calls: num(r.calls),
      failures: num(r.failures),
      tool_errors: num(r.tool_errors),
      failure_rate: rate(num(r.failures), num(r.calls)),
      p95_ms: quantileOfBuckets(r.hist ?? [], 0.95),
    },
    totals: { calls: num(r.calls_total), failures: num(r.failures_total) },
  };
}

/** Agent instances as the monitor names their probes: `agent:<agent>:<instance>` (NATS) or `agent:<name>` (HTTP). */
function instancesByAgent(
  rows: readonly InstanceRow[] | undefined,
): Map<string, AgentStatus['instances'] & object> | undefined {
  if (!rows) return undefined;
  const out = new Map<string, NonNullable<AgentStatus['instances']>>();
  for (const r of rows) {
    if (r.kind !== undefined && r.kind !== 'agent') continue;
    const [, agent, ...rest] = r.service.split(':');
    if (!agent) continue;
    const list = out.get(agent) ?? [];
    list.push({
      instance: rest.length ? rest.join(':') : agent,
      status: r.status,
      since: iso(r.since),
      last_probe_at: iso(r.last_probe_at),
      last_error: r.last_error,
    });
    out.set(agent, list);
  }
  return out;
}

function agents(
  j: AgentsJson,
  instances: Map<string, NonNullable<AgentStatus['instances']>> | undefined,
): { queued_any_agent: number; items: AgentStatus[] } {
  const names = new Set<string>();
  let queuedAny = 0;
  const active = new Map<string, { in_flight: number; queued: number }>();
  for (const a of j.active) {
    if (a.agent === null) {
      queuedAny += a.queued;
      continue;
    }
    names.add(a.agent);
    active.set(a.agent, { in_flight: a.in_flight, queued: a.queued });
  }
  // A failure through the caller's input is not the agent's (isCallerError, as the performance read model counts it).
  const ended = new Map<string, { completed: number; failed: number; timed_out: number; caller_errors: number }>();
  for (const e of j.ended) {
    const c = ended.get(e.agent) ?? { completed: 0, failed: 0, timed_out: 0, caller_errors: 0 };
    ended.set(e.agent, c);
    if (e.status === 'completed') c.completed += e.n;
    else if (e.status === 'timed_out') c.timed_out += e.n;
    else if (
      isCallerError({
        code: e.code ?? '',
        message: '',
        ...(e.reason !== null ? { details: { reason: e.reason } } : {}),
      })
    )
      c.caller_errors += e.n;
    else c.failed += e.n;
  }
  const perf = new Map(j.perf.map((p) => [p.agent, p]));
  for (const n of [...ended.keys(), ...perf.keys(), ...(instances?.keys() ?? [])]) names.add(n);
  const items = [...names].sort().map((agent): AgentStatus => {
    const e = ended.get(agent);
    const p = perf.get(agent);
    const done = (e?.completed ?? 0) + (e?.failed ?? 0) + (e?.timed_out ?? 0);
    return {
      agent,
      in_flight: active.get(agent)?.in_flight ?? 0,
      queued: active.get(agent)?.queued ?? 0,
      last_hour: {
        completed: e?.completed ?? 0,
        failed: e?.failed ?? 0,
        timed_out: e?.timed_out ?? 0,
        caller_errors: e?.caller_errors ?? 0,
        success_rate: rate(e?.completed ?? 0, done),
        latency_p50_ms: p?.p50 ?? null,
        latency_p95_ms: p?.p95 ?? null,
      },
      totals: p
        ? {
            tasks_done: p.tasks_done,
            succeeded: p.succeeded,
            failed: p.failed,
            timed_out: p.timed_out,
            caller_errors: p.caller_errors,
            last_task_at: iso(p.last_task_at),
          }
        : null,
      instances: instances ? (instances.get(agent) ?? []) : null,
    };
  });
  return { queued_any_agent: queuedAny, items };
}

/**
 * Everything the read models know about the integrations, for GET /api/v1/integration/status:
 * MCP servers (status projection), agents (delegation read models and the monitor's probes),
 * workflows (executions table) and firing alerts (the monitor's alerts table). Usually one
 * round trip (two while some read model does not exist yet); a missing table reads as
 * `available: false`, never as an error. Throws AppError `unavailable` when Postgres fails.
 */
export async function readIntegrationStatus(
  pool: pg.Pool,
  options: ReadIntegrationStatusOptions,
): Promise<IntegrationReadModels> {
  const s = ident(options.statusSchema ?? STATUS_SCHEMA);
  const d = ident(options.delegationSchema ?? 'delegation');
  const now = options.now;
  const from = new Date(now.getTime() - HOUR_MS);
  // The minute buckets of the last hour: the current (partial) minute and the 59 before it.
  const minuteFrom = new Date(Math.floor(now.getTime() / 60_000) * 60_000 - 59 * 60_000);
  let row: Record<string, unknown>;
  let p: Presence;
  try {
    p = await presence(pool, s, d);
    row = (await pool.query(statement(p, s, d), [from, minuteFrom])).rows[0]!;
  } catch (err) {
    // 42P01: a table went away after we saw it (a test dropping a schema): forget and ask again once.
    if ((err as { code?: string }).code === '42P01') {
      presenceCache.get(pool)?.delete(`${s}|${d}`);
      p = await presence(pool, s, d);
      row = (await pool.query(statement(p, s, d), [from, minuteFrom])).rows[0]!;
    } else {
      throw new AppError(
        'unavailable',
        `cannot read the status read models: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
  const instances = p.instances ? instancesByAgent(row.instances as InstanceRow[]) : undefined;
  const ag = p.agents ? agents(row.agents as AgentsJson, instances) : undefined;
  const wf = row.workflows as { running: number; canceling: number; ended: Record<string, number> } | undefined;
  const al = row.alerts as { firing: number; pending: number; items: Record<string, unknown>[] } | undefined;
  return {
    generated_at: now.toISOString(),
    window: { from: from.toISOString(), to: now.toISOString() },
    mcp: {
      available: p.mcp,
      servers: withProbedServers(
        p.mcp ? (row.mcp as McpRow[]).map(mcpServer) : [],
        p.instances ? (row.instances as InstanceRow[]) : undefined,
      ),
    },
    agents: {
      available: p.agents,
      queued_any_agent: ag?.queued_any_agent ?? 0,
      // Without the delegation tables the monitor may still know agent instances.
      items: ag?.items ?? (instances ? agents({ active: [], ended: [], perf: [] }, instances).items : []),
    },
    workflows: {
      available: p.workflows,
      running: num(wf?.running),
      canceling: num(wf?.canceling),
      last_hour: {
        completed: num(wf?.ended.completed),
        failed: num(wf?.ended.failed),
        canceled: num(wf?.ended.canceled),
      },
    },
    alerts: {
      available: p.alerts,
      firing: num(al?.firing),
      pending: num(al?.pending),
      items: (al?.items ?? []).map((a) => ({
        id: String(a.id),
        rule_id: String(a.rule_id),
        name: String(a.name),
        severity: String(a.severity),
        labels: (a.labels ?? {}) as Record<string, string>,
        value: a.value === null || a.value === undefined ? null : Number(a.value),
        threshold: a.threshold === null || a.threshold === undefined ? null : Number(a.threshold),
        firing_since: iso(a.firing_since),
        silenced_by: (a.suppressed_by as string | null) ?? null,
      })),
    },
  };
}
