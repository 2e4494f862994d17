import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { headerNames, parseEventEnvelope } from '@switchyard/contracts';
import { PostgresEventStore, type NewEvent } from '@switchyard/event-store';
import { closeNats, connectNats, ensureEventsStream, type NatsConnection } from '@switchyard/messaging';
import {
  createLogger,
  findNatsServer,
  freePort,
  NATS_INSTALL_HINT,
  waitForPort,
  type Logger,
} from '@switchyard/platform';
import { pino } from 'pino';
import { freshDatabase, testNatsUrl } from '@switchyard/testing';
import { EventRelay, OVERSIZE_HEADER } from './event-relay.js';
import { PgRelayCheckpointStore } from './checkpoint-store.js';

const logger = createLogger('relay-int', process.env.LOG_LEVEL ?? 'silent');
const mainJs = fileURLToPath(new URL('./main.js', import.meta.url));

/** Guard against a hang (never a pass/fail on speed): poll until `check` is true or give up after `ms`. */
async function waitUntil(what: string, check: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`gave up waiting for: ${what}`);
    await sleep(25);
  }
}

interface Received {
  seq: number;
  subject: string;
  msgId: string;
  id: string;
  position: number;
  time: Date;
  data: unknown;
  /** The body's top-level `oversize` (parseEventEnvelope drops unknown keys) and the Switchyard-Oversize header. */
  oversize: unknown;
  oversizeHeader: string | undefined;
  correlationId: string | undefined;
}

/** Read a stream with an ordered consumer from a start point up to its current last sequence. */
async function readStream(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  start: { seq?: number; time?: Date } = {},
): Promise<Received[]> {
  const last = (await jsm.streams.info(stream)).state.last_seq;
  const opts =
    start.seq !== undefined
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start.seq }
      : start.time !== undefined
        ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: start.time.toISOString() }
        : { deliver_policy: DeliverPolicy.All };
  const consumer = await js.consumers.get(stream, opts);
  const out: Received[] = [];
  if (last === 0 || (start.seq ?? 0) > last) return out;
  const messages = await consumer.consume({ max_messages: 500 });
  const guard = setTimeout(() => messages.stop(), 30_000);
  for await (const m of messages) {
    const env = parseEventEnvelope(m.data);
    out.push({
      seq: m.seq,
      subject: m.subject,
      msgId: m.headers?.get(headerNames.natsMsgId) ?? '',
      id: env.id,
      position: env.position,
      time: new Date(Math.floor(Number(m.info.timestampNanos) / 1e6)),
      data: env.data,
      oversize: (JSON.parse(m.string()) as { oversize?: unknown }).oversize,
      oversizeHeader: m.headers?.has(OVERSIZE_HEADER) ? m.headers.get(OVERSIZE_HEADER) : undefined,
      correlationId: m.headers?.get(headerNames.correlationId),
    });
    if (m.seq >= last) break;
  }
  clearTimeout(guard);
  await messages.close();
  return out;
}

const event = (i: number, correlationId: string): NewEvent => ({
  type: i % 3 === 0 ? 'OrderPlaced' : i % 3 === 1 ? 'Payment.Captured' : 'ItemShipped',
  data: { i },
  metadata: { correlationId, timestamp: new Date().toISOString() },
});

describe('EventRelay against real PostgreSQL and nats-server', () => {
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    nc = await connectNats({ url: await testNatsUrl(), name: 'relay-test', logger });
    js = jetstream(nc);
    jsm = await jetstreamManager(nc);
  });

  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await closeNats(nc);
  });

  /** Per test: its own database (so $all holds only its events) and its own subject space and stream on the shared nats-server (or `on`). */
  async function freshWorld(tag: string, on: JetStreamManager = jsm) {
    const id = `${tag}_${randomBytes(3).toString('hex')}`;
    const stream = `RELAY_${id.toUpperCase()}`;
    const prefix = `t_${id}.events`;
    await ensureEventsStream(on, { name: stream, subjects: [`${prefix}.>`] });
    cleanups.push(() => on.streams.delete(stream));
    const dbUrl = await freshDatabase(`relay_${tag}`);
    const store = new PostgresEventStore({ connectionString: dbUrl });
    await store.init();
    cleanups.push(() => store.close());
    return { id, stream, prefix, dbUrl, store };
  }
  type World = Awaited<ReturnType<typeof freshWorld>>;

  async function newRelay(w: World, name: string, extra: Partial<ConstructorParameters<typeof EventRelay>[0]> = {}) {
    const { dbUrl, store, stream, prefix } = w;
    const checkpoints = new PgRelayCheckpointStore({ connectionString: dbUrl, logger });
    await checkpoints.init();
    const relay = new EventRelay({
      store,
      js,
      checkpoints,
      logger,
      name,
      subjectPrefix: prefix,
      stream,
      lagLogIntervalMs: 0,
      ...extra,
    });
    cleanups.push(async () => {
      await relay.stop();
      await checkpoints.close();
    });
    return { relay, checkpoints };
  }

  /** A nats-server of its own with a small max_payload (the shared one keeps the 1 MiB default); one per file. */
  let smallServer: Promise<{ nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager }> | undefined;
  const SMALL_MAX_PAYLOAD = 64 * 1024;
  function smallPayloadNats() {
    smallServer ??= (async () => {
      const bin = findNatsServer();
      if (!bin) throw new Error(NATS_INSTALL_HINT);
      const port = await freePort();
      const dir = mkdtempSync(path.join(tmpdir(), 'relay-max-payload-'));
      const conf = path.join(dir, 'nats.conf');
      writeFileSync(
        conf,
        [
          `listen: 127.0.0.1:${port}`,
          `max_payload: ${SMALL_MAX_PAYLOAD}`,
          `jetstream { store_dir: ${JSON.stringify(path.join(dir, 'js'))} }`,
          '',
        ].join('\n'),
      );
      const child = spawn(bin, ['-c', conf], { stdio: 'ignore' });
      const kill = () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL');
      process.once('exit', kill);
      cleanups.push(async () => {
        kill();
        rmSync(dir, { recursive: true, force: true });
      });
      await waitForPort(port, 15_000);
      const small = await connectNats({ url: `nats://127.0.0.1:${port}`, name: 'relay-test-small', logger });
      cleanups.push(() => closeNats(small));
      return { nc: small, js: jetstream(small), jsm: await jetstreamManager(small) };
    })();
    return smallServer;
  }

  /**
   * Two events, one far above max_payload (a WorkflowCompleted with large outputs), two more:
   * the relay publishes the first two, a stub in the big one's slot, then the rest, each once.
   */
  async function relayAroundOversize(tag: string, extra: Partial<ConstructorParameters<typeof EventRelay>[0]>) {
    const small = await smallPayloadNats();
    assert.equal(small.nc.info?.max_payload, SMALL_MAX_PAYLOAD);
    const w = await freshWorld(tag, small.jsm);
    await w.store.append(`order-${w.id}a`, [event(1, 'c-1'), event(2, 'c-2')]);
    await w.store.append(`workflow-${w.id}`, [
      {
        type: 'WorkflowCompleted',
        data: { outputs: { report: 'x'.repeat(4 * SMALL_MAX_PAYLOAD) } },
        metadata: { correlationId: 'c-big', causationId: 'cause-big', timestamp: new Date().toISOString() },
      },
    ]);
    await w.store.append(`order-${w.id}b`, [event(3, 'c-3'), event(4, 'c-4')]);
    const all = await w.store.readAll({});
    const big = all[2]!;
    const { relay } = await newRelay(w, `${tag}-${w.id}`, { js: small.js, retryMinMs: 20, retryMaxMs: 100, ...extra });
    relay.start();
    await waitUntil('relay caught up past the big event', async () => (await relay.lag()).caughtUp, 30_000);
    const received = await readStream(small.js, small.jsm, w.stream);
    assert.deepEqual(
      received.map((r) => [r.seq, r.msgId, r.id, r.position]),
      all.map((e, i) => [i + 1, e.id, e.id, e.position]),
      "every event once, in order, the stub in the big one's slot",
    );
    const stub = received[2]!;
    assert.equal(stub.subject, `${w.prefix}.workflow.WorkflowCompleted`);
    assert.equal(stub.correlationId, 'c-big');
    assert.equal(stub.oversize, true);
    const size = Number(stub.oversizeHeader);
    assert.ok(size > 4 * SMALL_MAX_PAYLOAD, `stub tells the size (${stub.oversizeHeader})`);
    received.forEach((r, i) => {
      if (i !== 2) assert.deepEqual([r.data, r.oversize, r.oversizeHeader], [all[i]!.data, undefined, undefined]);
    });
    assert.deepEqual(relay.status().oversize, 1);
    assert.equal(relay.status().published, 5);
    await relay.stop();
    return { stub, size, big, failures: relay.status().failures };
  }

  it('publishes an event larger than max_payload as a stub in its slot and goes on (size known before publishing)', async () => {
    const { stub, size, big, failures } = await relayAroundOversize('oversize', {});
    assert.deepEqual(stub.data, {
      oversize: true,
      sizeBytes: size,
      maxPayload: SMALL_MAX_PAYLOAD,
      fetch: `/api/v1/events?after=${big.position - 1}&limit=1`,
    });
    assert.equal(failures, 0, 'measured before publishing, never tried');
  });

  it('publishes the stub too when the publish is refused for its size (the limit is lower than the relay was told)', async () => {
    const { stub, size, failures } = await relayAroundOversize('refused', {
      connection: { info: { max_payload: 8 * 1024 * 1024 } },
    });
    assert.equal((stub.data as { sizeBytes: number }).sizeBytes, size);
    assert.equal((stub.data as { maxPayload: unknown }).maxPayload, null);
    assert.equal(failures, 0, 'a refusal for size is not retried');
  });

  /** Run the relay as its own process (main.js), as in production. */
  function spawnRelay(
    w: World,
    name: string,
    env: Record<string, string> = {},
  ): { child: ChildProcess; stderr: () => string } {
    let err = '';
    const child = spawn(process.execPath, [mainJs], {
      env: {
        ...process.env,
        DATABASE_URL: w.dbUrl,
        NATS_URL: nc.getServer().startsWith('nats://') ? nc.getServer() : `nats://${nc.getServer()}`,
        RELAY_NAME: name,
        RELAY_STREAM: w.stream,
        RELAY_SUBJECT_PREFIX: w.prefix,
        ...env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    cleanups.push(async () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
    return { child, stderr: () => err };
  }

  /** Send a signal and wait for the exit; resolves with the exit code (null when killed by the signal). */
  async function signalChild(child: ChildProcess, signal: NodeJS.Signals): Promise<number | null> {
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill(signal);
    return exited;
  }

  async function savedCheckpoint(w: World, name: string): Promise<number | undefined> {
    const c = new pg.Client({ connectionString: w.dbUrl });
    await c.connect();
    try {
      const r = await c.query<{ position: string }>('select position from relay.checkpoint where name = $1', [name]);
      return r.rows[0] ? Number(r.rows[0].position) : undefined;
    } finally {
      await c.end();
    }
  }

  it("after its database is restored to an older point, the stream's events the store no longer holds are deleted and the store's are published in their place", async () => {
    const w = await freshWorld('restored');
    const ids = Array.from({ length: 5 }, () => randomUUID());
    await w.store.append(
      `order-${w.id}`,
      ids.map((id, i) => ({ ...event(i + 1, `c-${i}`), id })),
    );
    const first = await newRelay(w, `restored-${w.id}`, { jsm });
    first.relay.start();
    await waitUntil('the five published', async () => (await readStream(js, jsm, w.stream)).length === 5, 30_000);
    await first.relay.stop();

    // The database as a backup taken after three events had it, which then went on elsewhere: its
    // next two events have the positions the stream holds two others at; its checkpoint counts on.
    const restoredUrl = await freshDatabase('relay_restored_b');
    const restored = new PostgresEventStore({ connectionString: restoredUrl });
    await restored.init();
    cleanups.push(() => restored.close());
    await restored.append(
      `order-${w.id}`,
      ids.slice(0, 3).map((id, i) => ({ ...event(i + 1, `c-${i}`), id })),
    );
    await restored.append(`other-${w.id}`, [event(10, 'c-new-1'), event(11, 'c-new-2')]);
    const inStore = await restored.readAll({});
    assert.deepEqual(
      inStore.map((e) => e.position),
      [0, 1, 2, 3, 4],
    );
    const second = await newRelay({ ...w, dbUrl: restoredUrl, store: restored }, `restored-${w.id}`, { jsm });
    await second.checkpoints.save(`restored-${w.id}`, 40);
    second.relay.start();
    await waitUntil(
      "the store's events in the stream",
      async () => (await readStream(js, jsm, w.stream)).some((r) => r.id === inStore[4]!.id),
      30_000,
    );
    const received = await readStream(js, jsm, w.stream);
    assert.deepEqual(
      received.map((r) => [r.position, r.id]),
      inStore.map((e) => [e.position, e.id]),
      "the stream holds the store's events, each once, in order, and none it lost",
    );
    assert.deepEqual(
      received.map((r) => r.seq),
      [1, 2, 3, 6, 7],
      'the two it no longer holds were deleted',
    );
    // Set back (it said 40, past the store's head), then moved on as the two were published.
    await waitUntil(
      'the checkpoint at the head',
      async () => (await second.checkpoints.load(`restored-${w.id}`)) === 4,
    );
  });

  it('a stream made again empty behind its checkpoint: a warning says so, and publishing goes on after the checkpoint', async () => {
    const w = await freshWorld('recreated');
    await w.store.append(`order-${w.id}`, [event(1, 'a'), event(2, 'b'), event(3, 'c')]);
    const first = await newRelay(w, `recreated-${w.id}`, { jsm });
    first.relay.start();
    await waitUntil('the three published', async () => (await readStream(js, jsm, w.stream)).length === 3, 30_000);
    await first.relay.stop();
    assert.equal(await first.checkpoints.load(`recreated-${w.id}`), 2);
    await first.checkpoints.close(); // its lock session: the next relay of the name takes over
    // Its store lost (a data dir restored without nats/jetstream): made again, empty.
    await jsm.streams.delete(w.stream);
    await ensureEventsStream(jsm, { name: w.stream, subjects: [`${w.prefix}.>`] });
    const lines: string[] = [];
    const heard = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) }) as unknown as Logger;
    await w.store.append(`order-${w.id}`, [event(4, 'd')]);
    const second = await newRelay(w, `recreated-${w.id}`, { jsm, logger: heard });
    second.relay.start();
    await waitUntil('the new event published', async () => (await readStream(js, jsm, w.stream)).length === 1, 30_000);
    assert.deepEqual(
      (await readStream(js, jsm, w.stream)).map((r) => [r.seq, r.position]),
      [[1, 3]],
    );
    assert.ok(
      lines.some((l) => /made again empty: events up to position 2 are in the event log only/.test(l)),
      lines.join('\n'),
    );
  });

  it('publishes each event exactly once, in order, on its category/type subject, and reports lag', async () => {
    const w = await freshWorld('basic');
    const { id, stream, prefix, store } = w;
    for (let b = 0; b < 10; b++) {
      await store.append(
        `order-${id}${b}`,
        Array.from({ length: 10 }, (_, i) => event(b * 10 + i, `c-${b}`)),
      );
    }
    const all = await store.readAll({});
    const { relay } = await newRelay(w, `basic-${id}`, { checkpointEvery: 7 });
    const before = await relay.lag();
    assert.equal(before.caughtUp, false);
    assert.ok(before.positionsBehind > 0);
    relay.start();
    await waitUntil('relay caught up', async () => (await relay.lag()).caughtUp);
    const received = await readStream(js, jsm, stream);
    assert.deepEqual(
      received.map((r) => r.id),
      all.map((e) => e.id),
    );
    assert.deepEqual(
      received.map((r) => r.seq),
      all.map((_, i) => i + 1),
    );
    const first = received[0]!;
    assert.equal(first.subject, `${prefix}.order.OrderPlaced`);
    assert.equal(first.msgId, first.id);
    assert.ok(
      received.some((r) => r.subject === `${prefix}.order.Payment_Captured`),
      'type token sanitised',
    );
    const s = relay.status();
    assert.equal(s.state, 'running');
    assert.equal(s.duplicates, 0);
    await relay.stop();
    assert.equal(await savedCheckpoint(w, `basic-${id}`), all.at(-1)!.position, 'stop saves the checkpoint');
  });

  it('lets only one relay per name publish; the other waits as standby', async () => {
    const w = await freshWorld('lock');
    const a = await newRelay(w, `lock-${w.id}`);
    const b = await newRelay(w, `lock-${w.id}`, { lockRetryMs: 50 });
    a.relay.start();
    await waitUntil('a running', () => a.relay.status().state === 'running');
    b.relay.start();
    await waitUntil('b standby', () => b.relay.status().state === 'standby');
    await a.relay.stop();
    await a.checkpoints.close(); // releases the lock
    await waitUntil('b takes over', () => b.relay.status().state === 'running');
    await b.relay.stop();
  });

  it('keeps retrying while JetStream cannot store the events, then publishes all of them in order', async () => {
    const w = await freshWorld('outage');
    await jsm.streams.delete(w.stream); // no stream captures the subjects: every publish fails
    for (let b = 0; b < 5; b++) await w.store.append(`order-${b}`, [event(b, `o-${b}`), event(b + 1, `o-${b}`)]);
    const { relay } = await newRelay(w, `outage-${w.id}`, { retryMinMs: 20, retryMaxMs: 100, publishTimeoutMs: 500 });
    relay.start();
    await waitUntil('publish failures', () => relay.status().failures >= 3);
    assert.equal(relay.status().lastPublishedPosition, -1, 'nothing skipped while failing');
    await ensureEventsStream(jsm, { name: w.stream, subjects: [`${w.prefix}.>`] });
    await waitUntil('caught up after the outage', async () => (await relay.lag()).caughtUp);
    const received = await readStream(js, jsm, w.stream);
    assert.deepEqual(
      received.map((r) => r.id),
      (await w.store.readAll({})).map((e) => e.id),
    );
    await relay.stop();
  });

  it('goes back to standby when its lock connection dies, then resumes without loss or duplicates', async () => {
    const w = await freshWorld('locklost');
    const { relay } = await newRelay(w, `locklost-${w.id}`, { lockRetryMs: 50 });
    relay.start();
    await w.store.append('order-1', [event(1, 'a'), event(2, 'a')]);
    await waitUntil('caught up', async () => (await relay.lag()).caughtUp);
    const admin = new pg.Client({ connectionString: w.dbUrl });
    await admin.connect();
    try {
      const r = await admin.query(
        `select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`,
      );
      assert.equal(r.rowCount, 1);
    } finally {
      await admin.end();
    }
    await waitUntil('lock loss noticed', () => relay.status().lockLosses === 1);
    await w.store.append('order-2', [event(3, 'b'), event(4, 'b')]);
    await waitUntil(
      'running and caught up again',
      async () => relay.status().state === 'running' && (await relay.lag()).caughtUp,
    );
    const received = await readStream(js, jsm, w.stream);
    assert.deepEqual(
      received.map((r) => r.id),
      (await w.store.readAll({})).map((e) => e.id),
    );
    await relay.stop();
  });

  it('runs as its own process and saves its checkpoint on SIGTERM', async () => {
    const w = await freshWorld('proc');
    const name = `proc-${w.id}`;
    await w.store.append('task-1', [event(1, 'p'), event(2, 'p'), event(3, 'p')]);
    const proc = spawnRelay(w, name, { RELAY_CHECKPOINT_EVERY: '100000', RELAY_CHECKPOINT_INTERVAL_MS: '600000' });
    await waitUntil(
      `relay process published (stderr: ${proc.stderr()})`,
      async () => (await jsm.streams.info(w.stream)).state.messages === 3,
    );
    assert.equal(await signalChild(proc.child, 'SIGTERM'), 0);
    assert.equal(await savedCheckpoint(w, name), await w.store.headPosition());
  });

  it('survives SIGKILL mid-stream: restarts from its checkpoint, loses nothing, no duplicate reaches consumers, replay works', async (t) => {
    const w = await freshWorld('crash');
    const { id, stream, store } = w;
    const name = `crash-${id}`;
    const streamIds = [`order-${id}`, `payment-${id}`, `shipment-${id}`];

    // A writer appends in small batches the whole time, so the relay is killed mid-stream.
    let writing = true;
    let appended = 0;
    const writer = (async () => {
      for (let b = 0; writing && appended < 5_000; b++) {
        await store.append(
          `${streamIds[b % 3]}-${b % 7}`,
          Array.from({ length: 5 }, (_, i) => event(b * 5 + i, `corr-${b}`)),
        );
        appended += 5;
        await sleep(2);
      }
    })();
    const mineOnly = () => store.readAll({});
    const streamCount = async () => (await jsm.streams.info(stream)).state.messages;

    // 1. A relay process without the stream-tail shortcut, checkpointing every 50 events.
    const first = spawnRelay(w, name, {
      RELAY_CHECKPOINT_EVERY: '50',
      RELAY_CHECKPOINT_INTERVAL_MS: '600000',
      RELAY_RESUME_FROM_STREAM: 'false',
    });
    await waitUntil(
      `first relay published 300 events (stderr: ${first.stderr()})`,
      async () => (await streamCount()) >= 300,
    );
    await signalChild(first.child, 'SIGKILL');
    const killedAt = await streamCount();
    const checkpoint = await savedCheckpoint(w, name);
    assert.ok(checkpoint !== undefined, 'the killed relay had saved a checkpoint');
    assert.ok(writing && killedAt < 5_000, 'killed while events were still being written');

    // 2. Restart in-process from the checkpoint: everything after it is republished and
    //    JetStream drops exactly the ones the killed relay had already stored.
    const second = await newRelay(w, name, { checkpointEvery: 50 });
    second.relay.start();
    await waitUntil('second relay passes 600 events', async () => (await streamCount()) >= 600);
    writing = false;
    await writer;
    await waitUntil('second relay caught up', async () => (await second.relay.lag()).caughtUp);
    let mine = await mineOnly();
    const upToCheckpoint = mine.filter((e) => e.position <= checkpoint).length;
    t.diagnostic(
      `killed at ${killedAt} stored, checkpoint covered ${upToCheckpoint}, duplicates dropped on restart ${second.relay.status().duplicates}`,
    );
    assert.equal(
      second.relay.status().duplicates,
      killedAt - upToCheckpoint,
      'republished tail was deduplicated by Nats-Msg-Id',
    );
    await second.relay.stop();
    await second.checkpoints.close();

    // 3. Kill a relay whose checkpoint never got saved (tail shortcut off): the restart
    //    republishes all 40 events it had stored, and JetStream drops exactly those 40.
    const lateBatch = async (tag: string, n: number) => {
      for (let b = 0; b < n; b++) await store.append(`${streamIds[b % 3]}-${tag}`, [event(b, `${tag}-${b}`)]);
      mine = await mineOnly();
    };
    const noSaves = { RELAY_CHECKPOINT_EVERY: '100000', RELAY_CHECKPOINT_INTERVAL_MS: '600000' };
    await lateBatch('x', 40);
    const third = spawnRelay(w, name, { ...noSaves, RELAY_RESUME_FROM_STREAM: 'false' });
    await waitUntil(
      `third relay caught up (stderr: ${third.stderr()})`,
      async () => (await streamCount()) >= mine.length,
    );
    await signalChild(third.child, 'SIGKILL');
    const fourth = await newRelay(w, name);
    fourth.relay.start();
    await waitUntil('fourth relay caught up', async () => (await fourth.relay.lag()).caughtUp);
    assert.equal(fourth.relay.status().duplicates, 40);
    assert.equal(await streamCount(), mine.length);
    await fourth.relay.stop();
    await fourth.checkpoints.close();

    // 4. Same crash with the stream-tail shortcut on: the restart republishes nothing at all.
    await lateBatch('y', 30);
    const fifth = spawnRelay(w, name, { ...noSaves, RELAY_RESUME_FROM_STREAM: 'true' });
    await waitUntil(
      `fifth relay caught up (stderr: ${fifth.stderr()})`,
      async () => (await streamCount()) >= mine.length,
    );
    await signalChild(fifth.child, 'SIGKILL');
    assert.ok((await savedCheckpoint(w, name))! < mine.at(-1)!.position, 'checkpoint is behind the stream');
    const sixth = await newRelay(w, name, { jsm });
    sixth.relay.start();
    await lateBatch('z', 10);
    await waitUntil('sixth relay caught up', async () => (await sixth.relay.lag()).caughtUp);
    assert.equal(sixth.relay.status().duplicates, 0);
    assert.equal(sixth.relay.status().published, 10);

    t.diagnostic(`total ${mine.length} events relayed by 6 relays (3 of them SIGKILLed)`);
    // 5. A consumer from the start sees every event exactly once, in store order.
    const received = await readStream(js, jsm, stream);
    assert.equal(received.length, mine.length, 'nothing lost, nothing duplicated');
    assert.deepEqual(
      received.map((r) => r.id),
      mine.map((e) => e.id),
    );
    assert.deepEqual(
      received.map((r) => r.position),
      mine.map((e) => e.position),
    );

    // 6. Replay from any sequence, and from a time.
    const fromSeq = await readStream(js, jsm, stream, { seq: 250 });
    assert.deepEqual(
      fromSeq.map((r) => r.id),
      received.slice(249).map((r) => r.id),
    );
    const pivot = received[400]!;
    const fromTime = await readStream(js, jsm, stream, { time: pivot.time });
    const firstSeq = fromTime[0]!.seq;
    assert.ok(firstSeq <= pivot.seq && received[firstSeq - 1]!.time.getTime() >= pivot.time.getTime());
    assert.deepEqual(
      fromTime.map((r) => r.id),
      received.slice(firstSeq - 1).map((r) => r.id),
    );
  });
});
