/**
 * Workflow engine overhead, for a 3-step no-op workflow (mcp -> agent -> mcp) whose steps are
 * answered at once by no-op responders over a real nats-server, with the real PostgreSQL event
 * store and the engine in this process (16 partitions; the read model on a thread of its own, as
 * the launcher runs it, unless BENCH_READ_MODEL says otherwise).
 *
 * Prints:
 *  - overhead per step, p50/p99 at concurrency 1, three ways:
 *      a. event committed -> next dispatch: from the commit of the transaction holding the
 *         StepSucceeded of step n (PostgreSQL's own commit timestamp: this bench starts its server
 *         with track_commit_timestamp = on) to the request of step n+1 arriving at the worker;
 *      b. from the StepSucceeded's recorded_at (its transaction's start) to that request: (a) plus
 *         the append itself;
 *      c. from the worker's reply of step n to the request of step n+1: the whole engine round
 *         (NATS reply, decide, one durable append of the result and the next dispatch, NATS request);
 *  - executions/s sustained with 1, 16 and 256 executions in flight (closed loop: each finished
 *    execution is replaced by a new one), with p50/p99 execution latency;
 *  - read-model lag p50/p99/max while executions start at a fixed rate (BENCH_RATE, default 300/s;
 *    0 skips it);
 *  - the floor of this run (a bare NATS round trip, a one-row commit) and the per-step overhead as a
 *    ratio to it; appends per execution (a count, steadier than any timing on a shared machine);
 *  - the peer, DBOS Transact, running the same three no-op steps on the same PostgreSQL server in a
 *    database of its own (dbos-peer.ts, in a child process): executions/s at the same levels, its
 *    per-step latency measured the same ways where it allows (BENCH_DBOS=0 skips it).
 *
 *   node bench/workflows/dist/main.js                 # own PostgreSQL + nats-server, 10 s per level
 *   BENCH_SECONDS=20 DATABASE_URL=... NATS_URL=... node bench/workflows/dist/main.js
 *   BENCH_LEVELS=1,256 BENCH_READ_MODEL=0 ...      # other levels; without the read model (to see its cost)
 *   BENCH_READ_MODEL=engine ...                   # the read model in the engine's event loop (a launcher without the read-models role)
 *   BENCH_READ_MODEL=process ...                  # the read model in a process of its own (read-model.ts)
 */
import path from 'node:path';
import { loadavg } from 'node:os';
import { mkdirSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { z } from 'zod';
import { connect } from '@nats-io/transport-node';
import { createLogger, ensureDatabase, freePort, startEmbeddedPostgres, startNatsServer } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { cpuMsBetween, postgresCpuMs } from '@switchyard/testing';
import { addService } from '@switchyard/messaging';
import { startExecution } from '@switchyard/workflow-executions';
import { startReadModelThread, startWorkflowEngine } from '@switchyard/workflows';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const levels = (process.env.BENCH_LEVELS ?? '1,16,256').split(',').map(Number);
const logger = createLogger('bench-workflows', process.env.LOG_LEVEL ?? 'warn');
const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const ms = (x: number) => `${x.toFixed(2)} ms`;

const tmp = path.resolve('.tmp', `bench-workflows-${process.pid}`);
const stops: (() => Promise<unknown>)[] = [];
try {
  // 1. Infrastructure: given, or our own PostgreSQL and nats-server.
  let serverUrl = process.env.DATABASE_URL;
  let natsUrl = process.env.NATS_URL;
  if (!serverUrl || !natsUrl) mkdirSync(tmp, { recursive: true });
  if (!serverUrl) {
    const pgh = await startEmbeddedPostgres({
      dataDir: path.join(tmp, 'pg'),
      port: await freePort(),
      logger,
      settings: { track_commit_timestamp: 'on' },
    });
    stops.push(() => pgh.stop());
    serverUrl = pgh.url;
  }
  if (!natsUrl) {
    const n = await startNatsServer({ port: await freePort(), storeDir: path.join(tmp, 'nats'), logger });
    stops.push(() => n.stop());
    natsUrl = n.url;
  }
  const url = await ensureDatabase(serverUrl, `bench_wf_${randomUUID().slice(0, 8).replace(/-/g, '')}`);
  // No idle timeout: backends keep their pids, so their CPU can be counted (below).
  const pool = new pg.Pool({ connectionString: url, max: 20, idleTimeoutMillis: 0 });
  pool.on('error', (err) => logger.warn({ err: err.message }, 'idle connection failed'));
  const store = new PostgresEventStore({ pool, logger });
  await store.init();
  // Appends asked of the store (concurrent ones share a commit), per execution below: a count, not a timing.
  let appends = 0;
  const append = store.append.bind(store);
  store.append = (...args: Parameters<typeof append>) => {
    appends++;
    return append(...args);
  };
  const nc = await connect({ servers: natsUrl, noAsyncTraces: true }); // as connectNats does
  stops.unshift(() => pool.end());
  stops.unshift(() => store.close());
  stops.unshift(() => nc.close());

  // 2. No-op responders that note when each request arrived and when its reply left, by idempotency key.
  const arrived = new Map<string, number>();
  const replied = new Map<string, number>();
  const note = (key: string) => arrived.set(key, performance.timeOrigin + performance.now());
  const done = (key: string) => replied.set(key, performance.timeOrigin + performance.now());
  const prefix = 'bench.wf.mcp';
  const tasksSubject = 'bench.wf.tasks.execute';
  const svc = await addService(nc, {
    name: 'bench-noop',
    version: '1.0.0',
    logger,
    endpoints: {
      call_tool: {
        subject: `${prefix}.noop.call_tool`,
        schema: z.object({ tool: z.string(), idempotency_key: z.string() }).loose(),
        handler: (b: { tool: string; idempotency_key: string }) => {
          note(b.idempotency_key);
          setImmediate(() => done(b.idempotency_key));
          return { content: [{ type: 'text', text: '{"ok":true}' }], structuredContent: { ok: true } };
        },
      },
      execute: {
        subject: tasksSubject,
        schema: z.object({ task_type: z.string(), idempotency_key: z.string() }).loose(),
        handler: (b: { idempotency_key: string }) => {
          note(b.idempotency_key);
          setImmediate(() => done(b.idempotency_key));
          return {
            task_id: b.idempotency_key,
            agent: 'noop',
            instance: 'bench',
            status: 'completed',
            result: { ok: true },
          };
        },
      },
    },
  });
  stops.unshift(() => svc.stop());

  // The read model on its own thread, as the launcher runs it (`read-models` role, part of `all`);
  // BENCH_READ_MODEL=engine: in the engine's loop (a launcher without that role); =process: in a
  // child process (see read-model.ts); =0: none.
  const readModelMode = process.env.BENCH_READ_MODEL ?? 'thread';
  const engine = await startWorkflowEngine({
    store,
    pool,
    nats: nc,
    logger,
    databaseUrl: url,
    partitions: 16,
    readModel: readModelMode !== '0' && readModelMode !== 'process' && readModelMode !== 'thread',
    subjects: { mcpPrefix: prefix, tasks: tasksSubject },
  });
  stops.unshift(() => engine.stop());
  if (readModelMode === 'thread') {
    const thread = await startReadModelThread({ databaseUrl: url, logLevel: 'warn' }, logger);
    stops.unshift(() => thread.stop());
  }
  if (readModelMode === 'process') {
    const child = spawn(process.execPath, [fileURLToPath(new URL('./read-model.js', import.meta.url))], {
      env: { ...process.env, DATABASE_URL: url },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`read-model process exited with ${code}`)));
      child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    });
    child.removeAllListeners('exit');
    stops.unshift(async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    });
  }
  await new Promise((r) => setTimeout(r, 1_000)); // partitions leased

  const definition = {
    id: 'noop3',
    version: 1,
    name: 'three no-op steps',
    steps: [
      { id: 'one', uses: 'mcp:noop/a' },
      { id: 'two', uses: 'agent:revenue_analysis', needs: ['one'] },
      { id: 'three', uses: 'mcp:noop/c', needs: ['two'] },
    ],
  };

  // 3. Completion notices from $all.
  const waiting = new Map<string, () => void>();
  const sub = store.subscribeToAll({
    from: await store.headPosition(),
    types: ['WorkflowCompleted', 'WorkflowFailed'],
  });
  void (async () => {
    for await (const e of sub) waiting.get(e.streamId.slice('workflow_execution-'.length))?.();
  })();
  stops.unshift(() => sub.close());

  const runOne = async (): Promise<{ id: string; latency: number }> => {
    const id = randomUUID();
    const finished = new Promise<void>((r) => waiting.set(id, r));
    const t0 = performance.now();
    await startExecution(store, { definition, input: {}, correlationId: id, executionId: id });
    await finished;
    waiting.delete(id);
    return { id, latency: performance.now() - t0 };
  };

  const results: string[] = [];
  // The floor, measured in this run: one NATS request-reply round trip to a responder that only
  // answers, and one single-row PostgreSQL commit. A step's overhead holds at least one commit (its
  // result) and a one-way NATS hop; the target (0.4 ms p50 on a quiet machine) is printed beside the
  // ratio of the measured overhead to this floor, which travels better between machines than ms do.
  const floor = await measureFloor(nc, pool);
  const floorLine = `floor: NATS request-reply p50 ${ms(floor.nats)}, PostgreSQL one-row commit p50 ${ms(floor.commit)} (sum ${ms(floor.nats + floor.commit)}), load ${loadavg()[0]!.toFixed(2)}`;
  console.log(floorLine);
  results.push(floorLine);
  for (const level of levels) {
    // Warm-up, then a closed loop of `level` workers for BENCH_SECONDS.
    await Promise.all(Array.from({ length: Math.min(level, 32) }, () => runOne()));
    const latencies: number[] = [];
    const ids: string[] = [];
    const dbStats = async () =>
      (
        await pool.query<{ commits: string; statements: string }>(
          `select xact_commit::text as commits, (select coalesce(sum(calls), 0)::text from pg_stat_user_functions) as statements
           from pg_stat_database where datname = current_database()`,
        )
      ).rows[0]!;
    // CPU seconds of this process and of the server's backends (when the server is local; /proc), a
    // steadier figure than executions/s on a shared machine.
    // Backends that ended in between are missed (an undercount); new ones count from zero.
    const pgCpu = () => postgresCpuMs(pool);
    const pgDelta = (a: Map<number, number>, b: Map<number, number>) => cpuMsBetween(a, b) / 1000;
    const before = await dbStats();
    const appends0 = appends;
    const cpu0 = process.cpuUsage();
    const pg0 = await pgCpu();
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
    const pgSeconds = pgDelta(pg0, await pgCpu());
    // PostgreSQL transactions per execution (every statement outside a transaction is one, and
    // each costs a commit), as counted by the server (the stats lag by up to ~0.5 s: approximate).
    await new Promise((r) => setTimeout(r, 700));
    const after = await dbStats();
    const perExec = (Number(after.commits) - Number(before.commits)) / Math.max(1, ids.length);
    const appendsPerExec = (appends - appends0) / Math.max(1, ids.length);
    const line = `concurrency ${String(level).padStart(3)}: ${(ids.length / wall).toFixed(1).padStart(6)} executions/s (${ids.length} in ${wall.toFixed(1)} s), latency p50 ${ms(quantile(latencies, 0.5))}, p99 ${ms(quantile(latencies, 0.99))}, ~${perExec.toFixed(1)} db transactions/execution, ${appendsPerExec.toFixed(2)} appends/execution, cpu/execution: node ${((cpu.user + cpu.system) / 1000 / Math.max(1, ids.length)).toFixed(2)} ms, postgres backends ${((pgSeconds * 1000) / Math.max(1, ids.length)).toFixed(2)} ms, load ${loadavg()[0]!.toFixed(2)}`;
    console.log(line);
    results.push(line);

    if (level === 1) {
      // Per-step overhead from the concurrency-1 run: steps two and three follow a committed StepSucceeded.
      const fromCommit: number[] = [];
      const fromRecorded: number[] = [];
      const fromReply: number[] = [];
      let commitTimestamps = true;
      for (const id of ids) {
        // The commit time of each event's transaction (null when the server does not track it).
        const rows = (
          await pool.query<{ type: string; step: string; recorded_ms: number; committed_ms: number | null }>(
            `select type, data->>'stepId' as step, extract(epoch from recorded_at) * 1000 as recorded_ms,
                    case when current_setting('track_commit_timestamp') = 'on'
                         then extract(epoch from pg_xact_commit_timestamp(xmin)) * 1000 end as committed_ms
               from eventstore.events where stream_id = $1 order by revision`,
            [`workflow_execution-${id}`],
          )
        ).rows;
        for (const [prev, next] of [
          ['one', 'two'],
          ['two', 'three'],
        ] as const) {
          const ok = rows.find((e) => e.type === 'StepSucceeded' && e.step === prev);
          const req = arrived.get(`${id}:${next}:1`);
          const rep = replied.get(`${id}:${prev}:1`);
          if (ok && req !== undefined) {
            fromRecorded.push(req - Number(ok.recorded_ms));
            if (ok.committed_ms === null) commitTimestamps = false;
            else fromCommit.push(req - Number(ok.committed_ms));
          }
          if (rep !== undefined && req !== undefined) fromReply.push(req - rep);
        }
      }
      const l0 = commitTimestamps
        ? `overhead per step (event committed -> next dispatch at the worker): p50 ${ms(quantile(fromCommit, 0.5))}, p99 ${ms(quantile(fromCommit, 0.99))} (n=${fromCommit.length}); ${(quantile(fromCommit, 0.5) / (floor.nats + floor.commit)).toFixed(2)}x the floor (target 0.4 ms p50 on a quiet machine)`
        : 'overhead per step (event committed -> next dispatch): n/a, the server does not track commit timestamps (track_commit_timestamp = on)';
      const l1 = `overhead per step (StepSucceeded transaction start -> next dispatch): p50 ${ms(quantile(fromRecorded, 0.5))}, p99 ${ms(quantile(fromRecorded, 0.99))} (n=${fromRecorded.length})`;
      const l2 = `overhead per step (reply of step n -> request of step n+1): p50 ${ms(quantile(fromReply, 0.5))}, p99 ${ms(quantile(fromReply, 0.99))} (n=${fromReply.length})`;
      console.log(l0);
      console.log(l1);
      console.log(l2);
      results.push(l0, l1, l2);
    }
  }
  // Read-model lag at a fixed start rate (open loop: starts do not wait for ends). Every 50 ms the
  // newest workflow event's position is noted; a sample's lag is how long until the read model had
  // applied it (its checkpoint, or the newest position a row of it carries).
  const rate = Number(process.env.BENCH_RATE ?? 300);
  if (rate > 0 && process.env.BENCH_READ_MODEL !== '0') {
    const samples: { at: number; head: number; passedAt?: number }[] = [];
    let sampling = false;
    const sample = async () => {
      if (sampling) return;
      sampling = true;
      try {
        const r = await pool.query<{ head: string | null; applied: string | null }>(
          `select (select max(position) from eventstore.events where stream_id like 'workflow_execution-%') as head,
                  greatest((select position from read_models.checkpoints where name = 'workflow_executions'),
                           (select max(last_position) from read_models.workflow_executions)) as applied`,
        );
        const now = performance.now();
        const applied = Number(r.rows[0]?.applied ?? -1);
        for (const x of samples) if (x.passedAt === undefined && applied >= x.head) x.passedAt = now;
        samples.push({ at: now, head: Number(r.rows[0]?.head ?? -1) });
      } finally {
        sampling = false;
      }
    };
    const timer = setInterval(() => void sample(), 50);
    const started: Promise<unknown>[] = [];
    const t0 = performance.now();
    const total = rate * seconds;
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      started.push(runOne());
    }
    const sentIn = (performance.now() - t0) / 1000;
    await Promise.all(started);
    await new Promise((r) => setTimeout(r, 1_500));
    await sample();
    clearInterval(timer);
    const lags = samples.filter((x) => x.passedAt !== undefined).map((x) => x.passedAt! - x.at);
    const line = `read-model lag at ${rate} starts/s (${total} started in ${sentIn.toFixed(1)} s, ${lags.length} samples): p50 ${ms(quantile(lags, 0.5))}, p99 ${ms(quantile(lags, 0.99))}, max ${ms(Math.max(...lags))}, load ${loadavg()[0]!.toFixed(2)}`;
    console.log(line);
    results.push(line);
  }
  console.log(JSON.stringify({ engine: engine.stats(), seconds }, null, 0));

  // 4. The peer, DBOS Transact, on the same server in a database of its own (BENCH_DBOS=0 skips it).
  if (process.env.BENCH_DBOS !== '0') {
    const lines = await runDbosPeer(serverUrl, levels, seconds).catch((e: Error) => [
      `dbos peer: could not run: ${e.message}`,
    ]);
    for (const l of lines) console.log(l);
    results.push(...lines);
  }
} finally {
  for (const s of stops) await s().catch((e) => console.error('cleanup failed:', (e as Error).message));
  rmSync(tmp, { recursive: true, force: true });
}

/**
 * Run dbos-peer.js in a child process (see there) and format its figures like ours. Resolves with
 * the lines to print; rejects with the reason when the peer cannot run (its stderr's last lines).
 */
async function runDbosPeer(serverUrl: string, levels: number[], seconds: number): Promise<string[]> {
  const url = await ensureDatabase(serverUrl, `bench_dbos_${randomUUID().slice(0, 8)}`);
  const child = spawn(process.execPath, [fileURLToPath(new URL('./dbos-peer.js', import.meta.url))], {
    env: { ...process.env, DBOS_DATABASE_URL: url, BENCH_SECONDS: String(seconds), BENCH_LEVELS: levels.join(',') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const figures = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
  if (!figures.some((f) => f.done))
    throw new Error(
      `exit code ${code}: ${stderr.trim().split('\n').slice(-5).join(' | ') || stdout.trim().slice(-500)}`,
    );
  const lines: string[] = [];
  for (const f of figures) {
    if (f.level !== undefined) {
      lines.push(
        `dbos peer, concurrency ${String(f.level).padStart(3)}: ${f.perSec.toFixed(1).padStart(6)} executions/s (${f.executions} in ${f.wall.toFixed(1)} s), latency p50 ${ms(f.p50)}, p99 ${ms(f.p99)}, cpu/execution: node ${f.nodeCpuMsPerExecution.toFixed(2)} ms, load ${f.load.toFixed(2)}`,
      );
    } else if (f.step) {
      lines.push(
        f.fromCommit
          ? `dbos peer, per step (step checkpoint committed -> next step entered): p50 ${ms(f.fromCommit.p50)}, p99 ${ms(f.fromCommit.p99)} (n=${f.fromCommit.n})`
          : 'dbos peer, per step (step checkpoint committed -> next step entered): n/a, the server does not track commit timestamps',
        `dbos peer, per step (step n returned -> step n+1 entered): p50 ${ms(f.fromReturn.p50)}, p99 ${ms(f.fromReturn.p99)} (n=${f.fromReturn.n})`,
      );
    }
  }
  return lines;
}

/** p50 of 300 NATS request-reply round trips (a bare responder) and of 300 one-row autocommit inserts. */
async function measureFloor(
  nc: Awaited<ReturnType<typeof connect>>,
  pool: pg.Pool,
): Promise<{ nats: number; commit: number }> {
  const subject = `bench.wf.floor.${randomUUID().slice(0, 8)}`;
  const sub = nc.subscribe(subject, { callback: (_err, m) => void m.respond(m.data) });
  const client = await pool.connect();
  try {
    await client.query('create table if not exists bench_floor (n int)'); // not temporary: a temporary table's commit writes no WAL
    const natsTimes: number[] = [];
    const commitTimes: number[] = [];
    for (let i = 0; i < 330; i++) {
      const t0 = performance.now();
      await nc.request(subject, '{}', { timeout: 5_000 });
      const t1 = performance.now();
      await client.query('insert into bench_floor values ($1)', [i]);
      const t2 = performance.now();
      if (i >= 30) {
        natsTimes.push(t1 - t0);
        commitTimes.push(t2 - t1);
      }
    }
    return { nats: quantile(natsTimes, 0.5), commit: quantile(commitTimes, 0.5) };
  } finally {
    await client.query('drop table if exists bench_floor').catch(() => undefined);
    client.release();
    sub.unsubscribe();
  }
}
