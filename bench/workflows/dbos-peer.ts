/**
 * The peer: DBOS Transact (npm `@dbos-inc/dbos-sdk`) running the equivalent 3-step no-op workflow
 * (three steps that only return), on the PostgreSQL server of the main bench, in a database of its
 * own. Run by main.ts in a child process (DBOS keeps process-wide state and its own pool, and must
 * not share the engine's event loop); prints one JSON line per figure, then `{"done":true}`.
 *
 *   DBOS_DATABASE_URL=postgres://.../bench_dbos BENCH_SECONDS=10 BENCH_LEVELS=1,16,256 node bench/workflows/dist/dbos-peer.js
 *
 * Per-step latency, measured the same ways as ours where DBOS allows: DBOS checkpoints each step's
 * output as a row of `dbos.operation_outputs` (one commit per step) before the workflow goes on, so
 *  a. step n's checkpoint committed (pg_xact_commit_timestamp of its row) -> step n+1's function
 *     entered;
 *  c. step n's function returned -> step n+1's function entered (the whole DBOS round: checkpoint
 *     write and commit, then the next call).
 * Steps run in this process: DBOS has no worker hop (our engine's has a NATS request each way).
 */
import { loadavg } from 'node:os';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { DBOS } from '@dbos-inc/dbos-sdk';

const url = process.env.DBOS_DATABASE_URL;
if (!url) throw new Error('DBOS_DATABASE_URL is required');
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const levels = (process.env.BENCH_LEVELS ?? '1,16,256').split(',').map(Number);
const out = (x: Record<string, unknown>) => console.log(JSON.stringify(x));
const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const now = () => performance.timeOrigin + performance.now();

// Entry and return time of each step function, by workflow id and step name (concurrency 1 only).
let tracing = false;
const entered = new Map<string, number>();
const returned = new Map<string, number>();
const noop = (name: string) => async (): Promise<{ ok: boolean }> => {
  const id = DBOS.workflowID;
  if (tracing && id) entered.set(`${id}:${name}`, now());
  const r = { ok: true };
  if (tracing && id) returned.set(`${id}:${name}`, now());
  return r;
};
const one = noop('one');
const two = noop('two');
const three = noop('three');
const noop3 = DBOS.registerWorkflow(
  async (): Promise<void> => {
    await DBOS.runStep(one, { name: 'one' });
    await DBOS.runStep(two, { name: 'two' });
    await DBOS.runStep(three, { name: 'three' });
  },
  { name: 'noop3' },
);

// A pool as large as ours (main.ts: 20), so the closed loop at 256 is limited the same way.
DBOS.setConfig({ name: 'bench-dbos-peer', systemDatabaseUrl: url, systemDatabasePoolSize: 20, logLevel: 'warn' });
await DBOS.launch();
const pool = new pg.Pool({ connectionString: url, max: 2 });
try {
  const runOne = async (): Promise<{ id: string; latency: number }> => {
    const id = randomUUID();
    const t0 = performance.now();
    await DBOS.withNextWorkflowID(id, () => noop3());
    return { id, latency: performance.now() - t0 };
  };
  for (const level of levels) {
    tracing = level === 1;
    await Promise.all(Array.from({ length: Math.min(level, 32) }, () => runOne()));
    entered.clear();
    returned.clear();
    const latencies: number[] = [];
    const ids: string[] = [];
    const cpu0 = process.cpuUsage();
    const end = performance.now() + seconds * 1000;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: level }, async () => {
        while (performance.now() < end) {
          const r = await runOne();
          latencies.push(r.latency);
          ids.push(r.id);
        }
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    out({
      level,
      executions: ids.length,
      wall,
      perSec: ids.length / wall,
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      nodeCpuMsPerExecution: (cpu.user + cpu.system) / 1000 / Math.max(1, ids.length),
      load: loadavg()[0],
    });
    if (level === 1) {
      const fromCommit: number[] = [];
      const fromReturn: number[] = [];
      let commitTimestamps = true;
      for (const id of ids) {
        const rows = (
          await pool.query<{ name: string; committed_ms: number | null }>(
            `select function_name as name,
                    case when current_setting('track_commit_timestamp') = 'on'
                         then extract(epoch from pg_xact_commit_timestamp(xmin)) * 1000 end as committed_ms
               from dbos.operation_outputs where workflow_uuid = $1`,
            [id],
          )
        ).rows;
        for (const [prev, next] of [
          ['one', 'two'],
          ['two', 'three'],
        ] as const) {
          const cp = rows.find((r) => r.name === prev);
          const start = entered.get(`${id}:${next}`);
          const ret = returned.get(`${id}:${prev}`);
          if (cp && start !== undefined) {
            if (cp.committed_ms === null) commitTimestamps = false;
            else fromCommit.push(start - Number(cp.committed_ms));
          }
          if (ret !== undefined && start !== undefined) fromReturn.push(start - ret);
        }
      }
      out({
        step: true,
        fromCommit: commitTimestamps
          ? { p50: quantile(fromCommit, 0.5), p99: quantile(fromCommit, 0.99), n: fromCommit.length }
          : null,
        fromReturn: { p50: quantile(fromReturn, 0.5), p99: quantile(fromReturn, 0.99), n: fromReturn.length },
      });
    }
  }
  out({ done: true });
} finally {
  await pool.end();
  await DBOS.shutdown();
}
