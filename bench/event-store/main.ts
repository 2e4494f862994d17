/**
 * Event store benchmark: `node bench/event-store/dist/main.js`
 * Uses DATABASE_URL when set (a fresh database is created on that server), otherwise starts
 * an embedded PostgreSQL on a free port with its data under .tmp/ (removed afterwards).
 * Knobs: BENCH_APPENDS (single-event appends per run, default 4000), BENCH_WRITERS
 * (concurrency levels, default 1,4,8,16), BENCH_BATCHES (appends of 100 events, default 200),
 * BENCH_LATENCY_EVENTS (default 1000), BENCH_LARGE_EVENTS (events of 200 KB the slow readers
 * read from, default 500).
 */
import path from 'node:path';
import { mkdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  createLogger,
  ensureDatabase,
  freePort,
  startEmbeddedPostgres,
  type PostgresHandle,
} from '@switchyard/platform';
import { PostgresEventStore, type NewEvent } from '@switchyard/event-store';

// The slow readers' heap is measured after a collection (section 4).
setFlagsFromString('--expose-gc');

const logger = createLogger('bench-event-store', process.env.LOG_LEVEL ?? 'warn');
const num = (name: string, d: number) => Number(process.env[name] ?? d);
const appends = num('BENCH_APPENDS', 4000);
const writerLevels = (process.env.BENCH_WRITERS ?? '1,4,8,16').split(',').map(Number);
const batches = num('BENCH_BATCHES', 200);
const latencyEvents = num('BENCH_LATENCY_EVENTS', 1000);
const largeEvents = Math.max(30, num('BENCH_LARGE_EVENTS', 500));

const meta = () => ({ correlationId: 'bench', timestamp: new Date().toISOString() });
const event = (i: number): NewEvent => ({
  type: 'BenchEvent',
  data: { i, payload: 'x'.repeat(200) },
  metadata: meta(),
});

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main(): Promise<void> {
  let pg: PostgresHandle | undefined;
  let tmp: string | undefined;
  let serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    tmp = path.resolve('.tmp', `bench-event-store-${process.pid}`);
    mkdirSync(tmp, { recursive: true });
    pg = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), port: await freePort(), logger });
    serverUrl = pg.url;
  }
  const dbUrl = await ensureDatabase(serverUrl, `bench_es_${randomBytes(4).toString('hex')}`);
  const store = new PostgresEventStore({ connectionString: dbUrl, maxConnections: 20, logger });
  await store.init();
  console.log(`# PostgreSQL ${pg ? `(${pg.kind}, started for the bench)` : '(DATABASE_URL)'}; fresh database per run`);
  try {
    // 1. Single-event appends, each writer on its own streams with exact expected revisions.
    console.log('\nsingle-event appends');
    console.log('writers  appends   seconds  appends/s');
    for (const writers of writerLevels) {
      const per = Math.ceil(appends / writers);
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: writers }, async (_, w) => {
          const revs = new Map<string, number>();
          for (let i = 0; i < per; i++) {
            const s = `bench${writers}-w${w}-${i % 20}`;
            const r = await store.append(s, [event(i)], { expectedRevision: revs.get(s) ?? 'no_stream' });
            revs.set(s, r.nextExpectedRevision);
          }
        }),
      );
      const secs = (performance.now() - t0) / 1000;
      console.log(
        `${String(writers).padStart(7)}  ${String(per * writers).padStart(7)}  ${secs.toFixed(2).padStart(8)}  ${Math.round(
          (per * writers) / secs,
        )
          .toString()
          .padStart(9)}`,
      );
    }

    // 2. Batched appends of 100 events, 4 writers.
    const batchWriters = 4;
    const t1 = performance.now();
    await Promise.all(
      Array.from({ length: batchWriters }, async (_, w) => {
        for (let b = 0; b < batches / batchWriters; b++) {
          await store.append(
            `batch-w${w}-${b % 10}`,
            Array.from({ length: 100 }, (_, i) => event(i)),
          );
        }
      }),
    );
    const s1 = (performance.now() - t1) / 1000;
    console.log(
      `\nbatched appends of 100 events, ${batchWriters} writers: ${batches} appends in ${s1.toFixed(2)} s = ${Math.round(batches / s1)} appends/s, ${Math.round((batches * 100) / s1)} events/s`,
    );

    // 3. Delivery latency: append -> seen by a live subscriber, one writer at a steady pace,
    //    then the same under load (8 writers appending as fast as they can). Twice: the writer in
    //    the subscriber's own store (its commits are handed over without a read), and in a second
    //    store instance, as another process would be (NOTIFY, then a read).
    const otherProcess = new PostgresEventStore({
      connectionString: dbUrl,
      maxConnections: 10,
      logger,
      liveFeed: 'own',
    });
    for (const [where, writer] of [
      ['same process', store],
      ['another process', otherProcess],
    ] as const) {
      for (const loaded of [false, true]) {
        const head = await store.headPosition();
        const sub = store.subscribeToAll({ from: head, types: ['Probe'] });
        const sentAt = new Map<number, number>();
        const latencies: number[] = [];
        const consumer = (async () => {
          for await (const e of sub) {
            const i = (e.data as { i: number }).i;
            latencies.push(performance.now() - sentAt.get(i)!);
            if (latencies.length >= latencyEvents) break;
          }
        })();
        let loading = loaded;
        const load = loaded
          ? Promise.all(
              Array.from({ length: 8 }, async (_, w) => {
                for (let i = 0; loading; i++) await writer.append(`load-w${w}`, [event(i)]);
              }),
            )
          : Promise.resolve([]);
        for (let i = 0; i < latencyEvents; i++) {
          sentAt.set(i, performance.now());
          await writer.append(`probe-${i % 10}`, [{ type: 'Probe', data: { i }, metadata: meta() }]);
          await new Promise((r) => setTimeout(r, 2));
        }
        await consumer;
        loading = false;
        await load;
        latencies.sort((a, b) => a - b);
        console.log(
          `\nsubscriber delivery latency (append start -> seen), writer in ${where}, ${latencyEvents} events${loaded ? ', under load of 8 writers' : ''}: ` +
            `p50 ${pct(latencies, 50).toFixed(2)} ms, p99 ${pct(latencies, 99).toFixed(2)} ms, max ${latencies[latencies.length - 1]!.toFixed(2)} ms`,
        );
      }
    }
    await otherProcess.close();

    // 4. Slow readers of large events: 8 subscriptions, each from its own position, read 120
    //    events of 200 KB at 2 ms an event; the heap they hold mid-way (after a GC) and the
    //    longest stall of the event loop, with pages of 100 MiB (about the whole 500-event page of
    //    old) and of the default 4 MiB.
    await largeEventReaders(dbUrl);
  } finally {
    await store.close();
    await pg?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

async function largeEventReaders(dbUrl: string): Promise<void> {
  const schema = 'bench_large';
  const writer = new PostgresEventStore({ connectionString: dbUrl, schema, liveFeed: 'own', logger });
  await writer.init();
  for (let i = 0; i < largeEvents; i += 10)
    await writer.append(
      `large-${i}`,
      Array.from({ length: 10 }, () => ({
        type: 'Large',
        data: { blob: randomBytes(150 * 1024).toString('base64') },
        metadata: meta(),
      })),
    );
  await writer.close();
  const gc = runInNewContext('gc') as () => void;
  console.log(`\n8 slow readers of ${largeEvents} stored events of 200 KB (120 events each, 2 ms an event)`);
  console.log('page bytes   heap mid-way   longest loop stall   seconds');
  for (const pageBytes of [100 * 1024 * 1024, 4 * 1024 * 1024]) {
    const store = new PostgresEventStore({ connectionString: dbUrl, schema, pageBytes, liveFeed: 'own', logger });
    await store.init();
    let longest = 0;
    let last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 5);
    let arrived = 0;
    let heap = 0;
    let releaseAll!: () => void;
    const allArrived = new Promise<void>((r) => (releaseAll = r));
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 8 }, async (_, k) => {
        // 120 events each (fewer when fewer were written), measured half-way.
        const want = Math.max(2, Math.min(120, largeEvents - k * 3));
        const half = Math.floor(want / 2);
        let n = 0;
        for await (const _event of store.subscribeToAll({ from: k * 3 - 1 })) {
          await new Promise((r) => setTimeout(r, 2));
          if (++n === half && ++arrived === 8) {
            gc();
            heap = process.memoryUsage().heapUsed;
            releaseAll();
          }
          if (n === half) await allArrived;
          if (n === want) break;
        }
      }),
    );
    clearInterval(tick);
    console.log(
      `${`${pageBytes / 1024 / 1024} MiB`.padStart(10)}   ${`${Math.round(heap / 1024 / 1024)} MB`.padStart(12)}   ${`${Math.round(longest)} ms`.padStart(18)}   ${((performance.now() - t0) / 1000).toFixed(2).padStart(7)}`,
    );
    await store.close();
  }
}

await main();
