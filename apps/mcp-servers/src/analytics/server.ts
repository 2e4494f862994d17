import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import pg from 'pg';
import { AppError, migrateUnderLock, type Logger } from '@switchyard/platform';
import { tool } from '../common/tools.js';
import { keyScopeOf, storedKey } from '../common/idempotency.js';
import { mapPgError } from '../database/server.js';
import type { Clock } from '../automation/clock.js';
import { sharedJsonSchemaValidator } from '../common/validator.js';

export const analyticsDdl = `
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE TABLE IF NOT EXISTS analytics.metrics (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  value double precision NOT NULL,
  labels jsonb NOT NULL DEFAULT '{}',
  ts timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_name_ts ON analytics.metrics (name, ts);
-- A sample recorded under an idempotency key is recorded once, however often the call is repeated.
ALTER TABLE analytics.metrics ADD COLUMN IF NOT EXISTS idempotency_key text;
CREATE UNIQUE INDEX IF NOT EXISTS metrics_idempotency_key ON analytics.metrics (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Whose namespace the key is in (the caller's _meta.actor, '' for a call for nobody): the stored key
-- is '<actor>/<key>', so a key one caller claims first cannot fail another's record (the support
-- template keys its interaction by execution id). NULL: a key from before, kept as given.
ALTER TABLE analytics.metrics ADD COLUMN IF NOT EXISTS key_scope text;
`;

const sortKeys = (o: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));

/** Create the analytics schema (idempotent; an advisory lock serialises concurrent starts). */
export async function migrateAnalytics(pool: pg.Pool): Promise<void> {
  await migrateUnderLock(pool, 'switchyard.analytics.schema', analyticsDdl);
}

/** Read-model tables summarised by `report`; a missing one gives a "no data yet" section. */
export const defaultReportTables = {
  workflow_executions: 'read_models.workflow_executions',
  task_stats: 'read_models.task_stats',
  availability: 'read_models.availability',
} as const;

export interface AnalyticsServerDeps {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly reportTables?: Record<string, string>;
}

const units: Record<string, string> = { s: 'seconds', m: 'minutes', h: 'hours', d: 'days', w: 'weeks' };
const unitSeconds: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
const durationText = z.string().regex(/^[1-9][0-9]{0,5}[smhdw]$/, 'a duration like 30s, 5m, 1h, 24h, 7d, 2w');

/** "24h" -> { interval: '24 hours', seconds: 86400 } (never spliced into SQL; bound as ::interval). */
export function parseDuration(text: string): { interval: string; seconds: number } {
  const m = /^([0-9]+)([smhdw])$/.exec(text);
  if (!m) throw new AppError('validation', `not a duration: ${text}`);
  return { interval: `${m[1]} ${units[m[2]!]}`, seconds: Number(m[1]) * unitSeconds[m[2]!]! };
}

/** The SQL of each aggregate, from a fixed list: the caller picks a key, never SQL text. */
const aggregates = {
  avg: 'avg(value)',
  sum: 'sum(value)',
  min: 'min(value)',
  max: 'max(value)',
  count: 'count(*)::float8',
  p95: 'percentile_cont(0.95) WITHIN GROUP (ORDER BY value)',
} as const;

const metricName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z_:][A-Za-z0-9_:.-]*$/, 'a metric name like workflow.duration_ms');
const labels = z.record(z.string(), z.string());

function quoteQualified(name: string): string {
  return name
    .split('.')
    .map((p) => pg.escapeIdentifier(p))
    .join('.');
}

/** The analytics MCP server: metrics in `analytics.metrics`, aggregated in SQL, and a report over the read models. */
export function createAnalyticsServer(deps: AnalyticsServerDeps): McpServer {
  const { pool, logger } = deps;
  const now = (): Date => (deps.clock ?? { now: () => new Date() }).now();
  const reportTables: Record<string, string> = deps.reportTables ?? defaultReportTables;
  const server = new McpServer(
    { name: 'switchyard-analytics', version: '0.1.0' },
    { jsonSchemaValidator: sharedJsonSchemaValidator },
  );

  server.registerTool(
    'record_metric',
    {
      description:
        'Record one sample of a metric with optional labels and timestamp (default now). With an idempotency_key the sample is recorded once: a repeat returns the recorded sample (deduplicated: true).',
      inputSchema: {
        name: metricName,
        value: z.number().finite(),
        labels: labels.default({}),
        timestamp: z.string().datetime({ offset: true }).optional().describe('ISO 8601; default now'),
        idempotency_key: z
          .string()
          .min(1)
          .max(200)
          .optional()
          .describe(
            "record this sample once, however often the call is repeated (default: the call's own key, as a workflow step's; a call without one: always recorded)",
          ),
      },
      // Not idempotent without a key (a call without one records a sample each time), so a timed-out
      // call is not repeated by the connectors: the repeat of a call that ran made a second sample.
      annotations: { idempotentHint: false },
    },
    tool(
      'record_metric',
      logger,
      async (a, ctx) => {
        const ts = a.timestamp ? new Date(a.timestamp) : now();
        const given = a.idempotency_key ?? ctx.callKey ?? null;
        // The caller's key is theirs alone (see common/idempotency.ts).
        const key =
          given === null ? null : await storedKey(pool, 'analytics.metrics', 'idempotency_key', ctx.actor, given);
        const inserted = await pool.query<{ id: string }>(
          `INSERT INTO analytics.metrics (name, value, labels, ts, idempotency_key, key_scope) VALUES ($1,$2,$3,$4,$5,$6)
         ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id`,
          [a.name, a.value, JSON.stringify(a.labels), ts, key, given === null ? null : keyScopeOf(ctx.actor)],
        );
        if (inserted.rows[0]) {
          return {
            id: String(inserted.rows[0].id),
            name: a.name,
            value: a.value,
            labels: a.labels,
            timestamp: ts.toISOString(),
            deduplicated: false,
          };
        }
        // The key was used before: answer with what was recorded, unless the repeat asks for something else.
        const prior = await pool.query<{
          id: string;
          name: string;
          value: number;
          labels: Record<string, string>;
          ts: Date;
        }>(`SELECT id, name, value, labels, ts FROM analytics.metrics WHERE idempotency_key = $1`, [key]);
        const p = prior.rows[0]!;
        if (
          p.name !== a.name ||
          p.value !== a.value ||
          JSON.stringify(sortKeys(p.labels)) !== JSON.stringify(sortKeys(a.labels))
        ) {
          throw new AppError('illegal_state', `idempotency key "${given}" was already used for another sample`, {
            idempotency_key: given,
            recorded: { name: p.name, value: p.value, labels: p.labels },
          });
        }
        return {
          id: String(p.id),
          name: p.name,
          value: p.value,
          labels: p.labels,
          timestamp: p.ts.toISOString(),
          deduplicated: true,
        };
      },
      mapPgError,
    ),
  );

  server.registerTool(
    'query_metric',
    {
      description:
        'Aggregate a metric over the window (end - window, end], optionally per bucket. Aggregates: avg, sum, min, max, count, p95 (continuous percentile).',
      inputSchema: {
        name: metricName,
        window: durationText.default('1h'),
        bucket: durationText.optional().describe('bucket width, e.g. 5m; omit for one value over the window'),
        aggregate: z.enum(['avg', 'sum', 'min', 'max', 'count', 'p95']).default('avg'),
        labels: labels.optional().describe('only samples whose labels contain these'),
        end: z.string().datetime({ offset: true }).optional().describe('window end, ISO 8601; default now'),
      },
      annotations: { readOnlyHint: true },
    },
    tool(
      'query_metric',
      logger,
      async (a) => {
        const window = parseDuration(a.window);
        const end = a.end ? new Date(a.end) : now();
        const start = new Date(end.getTime() - window.seconds * 1000);
        const agg = aggregates[a.aggregate];
        const filter = JSON.stringify(a.labels ?? {});
        if (!a.bucket) {
          const r = await pool.query(
            `SELECT ${agg} AS value, count(*)::int AS samples FROM analytics.metrics
            WHERE name = $1 AND ts > $2 AND ts <= $3 AND labels @> $4::jsonb`,
            [a.name, start, end, filter],
          );
          const row = r.rows[0];
          return {
            name: a.name,
            aggregate: a.aggregate,
            window: a.window,
            start: start.toISOString(),
            end: end.toISOString(),
            value: row.samples > 0 ? Number(row.value) : null,
            samples: row.samples,
          };
        }
        const bucket = parseDuration(a.bucket);
        if (window.seconds / bucket.seconds > 10_000)
          throw new AppError('validation', `too many buckets: ${a.window} / ${a.bucket} > 10000`);
        // Buckets are aligned on the window start so the first bucket is a full one.
        const r = await pool.query(
          `SELECT date_bin($5::interval, ts, $2::timestamptz) AS bucket, ${agg} AS value, count(*)::int AS samples
           FROM analytics.metrics WHERE name = $1 AND ts > $2 AND ts <= $3 AND labels @> $4::jsonb
          GROUP BY 1 ORDER BY 1`,
          [a.name, start, end, filter, bucket.interval],
        );
        return {
          name: a.name,
          aggregate: a.aggregate,
          window: a.window,
          bucket: a.bucket,
          start: start.toISOString(),
          end: end.toISOString(),
          buckets: r.rows.map((b) => ({
            start: (b.bucket as Date).toISOString(),
            value: Number(b.value),
            samples: b.samples,
          })),
        };
      },
      mapPgError,
    ),
  );

  server.registerTool(
    'list_metrics',
    {
      description: 'Metric names with sample count, first and last timestamp and label keys.',
      inputSchema: {},
      annotations: { readOnlyHint: true },
    },
    tool(
      'list_metrics',
      logger,
      async () => {
        const r = await pool.query(
          `SELECT name, count(*)::int AS samples, min(ts) AS first, max(ts) AS last,
                (SELECT coalesce(array_agg(DISTINCT k ORDER BY k), '{}') FROM analytics.metrics m2, jsonb_object_keys(m2.labels) k WHERE m2.name = m.name) AS label_keys
           FROM analytics.metrics m GROUP BY name ORDER BY name`,
        );
        return {
          metrics: r.rows.map((m) => ({
            name: m.name,
            samples: m.samples,
            first: (m.first as Date).toISOString(),
            last: (m.last as Date).toISOString(),
            label_keys: m.label_keys,
          })),
        };
      },
      mapPgError,
    ),
  );

  server.registerTool(
    'report',
    {
      description:
        'Summary over the read models (workflow executions, task stats, availability) and recorded metrics; a missing table gives a "no data yet" section.',
      inputSchema: { window: durationText.default('24h') },
      annotations: { readOnlyHint: true },
    },
    tool(
      'report',
      logger,
      async (a) => {
        const window = parseDuration(a.window);
        const end = now();
        const sections: Record<string, unknown> = {};
        for (const [section, table] of Object.entries(reportTables)) {
          const exists = await pool.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [table]);
          if (!exists.rows[0].ok) {
            sections[section] = { status: 'no data yet', table, reason: `table ${table} does not exist yet` };
            continue;
          }
          const [schema, rel] = table.includes('.') ? table.split('.', 2) : ['public', table];
          const cols = await pool.query(
            `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`,
            [schema, rel],
          );
          const names = new Set(cols.rows.map((c) => c.column_name as string));
          const q = quoteQualified(table);
          const total = await pool.query(`SELECT count(*)::int AS n FROM ${q}`);
          const summary: Record<string, unknown> = {
            status: total.rows[0].n > 0 ? 'ok' : 'no data yet',
            table,
            rows: total.rows[0].n,
          };
          // Read-model schemas evolve; summarise the columns that are there rather than assume them.
          if (names.has('status')) {
            const s = await pool.query(
              `SELECT status::text AS status, count(*)::int AS n FROM ${q} GROUP BY 1 ORDER BY 1`,
            );
            summary['by_status'] = Object.fromEntries(s.rows.map((x) => [x.status, x.n]));
          }
          sections[section] = summary;
        }
        const m = await pool.query(
          `SELECT name, count(*)::int AS samples, avg(value) AS avg, max(value) AS max FROM analytics.metrics
          WHERE ts > $1 AND ts <= $2 GROUP BY name ORDER BY name`,
          [new Date(end.getTime() - window.seconds * 1000), end],
        );
        sections['metrics'] =
          m.rowCount === 0
            ? { status: 'no data yet', reason: `no samples in the last ${a.window}` }
            : {
                status: 'ok',
                window: a.window,
                metrics: m.rows.map((x) => ({
                  name: x.name,
                  samples: x.samples,
                  avg: Number(x.avg),
                  max: Number(x.max),
                })),
              };
        return { generated_at: end.toISOString(), window: a.window, sections };
      },
      mapPgError,
    ),
  );
  return server;
}
