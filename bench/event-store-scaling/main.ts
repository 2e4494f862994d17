/**
 * Event store scaling benchmark: `node bench/event-store-scaling/dist/main.js`
 * Grows one fresh PostgreSQL event store to each size of BENCH_SIZES (default 10000,100000,1000000
 * events, bulk inserted into the adapter's table in streams of 10 events, ~300 bytes of data
 * each), and at each size measures through the adapter: single-event append (a new stream, and
 * one more event on an existing stream, expected revision given), readStream of one 10-event
 * stream, a readAll page of 100 events from a random position, and headPosition. Prints p50/p99
 * per size as a table, to show whether they stay flat as the log grows.
 * Uses DATABASE_URL when set (a fresh database is created on it), otherwise an embedded
 * PostgreSQL on a free port with its data under .tmp/ (removed afterwards).
 * Knobs: BENCH_SIZES, BENCH_SAMPLES (operations per measure, default 500).
 */
import path from 'node:path';
import { mkdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import {
  createLogger,
  ensureDatabase,
  freePort,
  startEmbeddedPostgres,
  type PostgresHandle,
} from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';

const logger = createLogger('bench-event-store-scaling', process.env.LOG_LEVEL ?? 'warn');
const sizes = (process.env.BENCH_SIZES ?? '10000,100000,1000000').split(',').map(Number);
const samples = Number(process.env.BENCH_SAMPLES ?? 500);
const PER_STREAM = 10;

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const meta = () => ({ correlationId: 'bench', timestamp: new Date().toISOString() });

/** Bulk insert positions [from, to) into the adapter's table as append_batch writes them (dense positions, 10 events a stream). */
async function fill(pool: pg.Pool, from: number, to: number, firstStream: number): Promise<void> {
  const chunk = 10_000;
  for (let start = from; start < to; start += chunk) {
    const end = Math.min(to, start + chunk);
    await pool.query(
      `insert into eventstore.events (position, stream_id, revision, event_id, type, data, metadata)
       select p, 'fill-' || ($3::bigint + (p - $4::bigint) / ${PER_STREAM}), (p - $4::bigint) % ${PER_STREAM}, gen_random_uuid(), 'FillEvent',
              jsonb_build_object('i', p, 'payload', repeat('x', 280)), jsonb_build_object('correlationId', 'bench', 'timestamp', now())
       from generate_series($1::bigint, $2::bigint) p`,
      [start, end - 1, firstStream, from],
    );
  }
  await pool.query('vacuum analyze eventstore.events');
}

async function measure(n: number, op: (i: number) => Promise<unknown>): Promise<[number, number]> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await op(i);
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return [pct(ms, 50), pct(ms, 99)];
}

async function main(): Promise<void> {
  let pgh: PostgresHandle | undefined;
  let tmp: string | undefined;
  let serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    tmp = path.resolve('.tmp', `bench-es-scaling-${process.pid}`);
    mkdirSync(tmp, { recursive: true });
    pgh = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), port: await freePort(), logger });
    serverUrl = pgh.url;
  }
  const dbUrl = await ensureDatabase(serverUrl, `bench_ess_${randomBytes(4).toString('hex')}`);
  const pool = new pg.Pool({ connectionString: dbUrl, max: 4 });
  const store = new PostgresEventStore({ connectionString: dbUrl, maxConnections: 4, logger });
  await store.init();
  console.log(
    `# PostgreSQL ${pgh ? `(${pgh.kind}, started for the bench)` : '(DATABASE_URL)'}; fresh database; ${samples} sequential operations per cell; latencies in ms`,
  );
  const rows: string[] = [];
  try {
    let run = 0;
    let fillStreams = 0;
    for (const size of sizes) {
      run++;
      const tf = performance.now();
      const from = (await store.headPosition()) + 1;
      // Whole streams only, so every fill stream holds exactly PER_STREAM events.
      const to = from + Math.floor((size - from) / PER_STREAM) * PER_STREAM;
      const newFrom = fillStreams;
      await fill(pool, from, to, fillStreams);
      fillStreams += (to - from) / PER_STREAM;
      const filled = (await store.headPosition()) + 1;
      console.log(`filled to ${filled} events in ${((performance.now() - tf) / 1000).toFixed(1)} s`);
      const rnd = () => Math.floor(Math.random() * fillStreams);
      // Warm the pool and caches a little, as a running store would be.
      for (let i = 0; i < 50; i++) await store.readStream(`fill-${rnd()}`);
      const appendNew = await measure(samples, (i) =>
        store.append(
          `new-${run}-${i}`,
          [{ type: 'BenchEvent', data: { i, payload: 'x'.repeat(280) }, metadata: meta() }],
          { expectedRevision: 'no_stream' },
        ),
      );
      // Streams filled in this round, each appended to once: the expected revision is exact.
      const appendExisting = await measure(Math.min(samples, fillStreams - newFrom), (i) =>
        store.append(
          `fill-${newFrom + (i % (fillStreams - newFrom))}`,
          [{ type: 'BenchEvent', data: { i }, metadata: meta() }],
          { expectedRevision: PER_STREAM - 1 },
        ),
      );
      // Streams untouched by the appends above hold 10 events; some of this round's hold 11.
      const readStream = await measure(samples, () => store.readStream(`fill-${rnd()}`));
      const readAll = await measure(samples, () =>
        store.readAll({ after: Math.floor(Math.random() * (size - 100)), maxCount: 100 }),
      );
      const head = await measure(samples, () => store.headPosition());
      const f = ([a, b]: [number, number]) => `${a.toFixed(2).padStart(6)} / ${b.toFixed(2).padStart(6)}`;
      rows.push(
        `${String(filled).padStart(9)}  ${f(appendNew)}  ${f(appendExisting)}  ${f(readStream)}  ${f(readAll)}  ${f(head)}`,
      );
    }
    console.log(
      '\nevents in   append, new stream   append, existing   readStream (10 ev)  readAll page (100)  headPosition',
    );
    console.log(
      'the store     p50 /    p99        p50 /    p99       p50 /    p99        p50 /    p99        p50 /    p99',
    );
    for (const r of rows) console.log(r);
  } finally {
    await store.close();
    await pool.end();
    await pgh?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
