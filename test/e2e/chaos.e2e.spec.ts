/**
 * Chaos at real effects: 200 executions of a 3-step workflow whose every step POSTs to a local
 * webhook sink (mcp:automation/send_webhook), while the orchestrator process (`workflows`) is
 * SIGKILLed and restarted 3 times and the worker process (`mcp-servers connectors`, the one
 * that sends the requests) 2 times.
 *
 * Processes (one PostgreSQL and one nats-server, owned by A):
 *   A = `relay gateway` (the HTTP edge; starts the embedded infrastructure; never killed)
 *   W = `mcp-servers connectors` (the worker: MCP servers and the NATS services calling them)
 *   B = `workflows` (the orchestrator)
 *
 * "Effect once", as checked at the sink: the engine dispatches at least once (re-dispatch after an
 * orchestrator restart, a new attempt after a timeout), with an idempotency key derived from
 * (execution, step) that the automation server honours durably (automation.deliveries): a key
 * whose request got an answer is never POSTed again. The one window no sender can close is a
 * request the sink has seen whose sender is SIGKILLed before the answer is recorded; that send is
 * repeated under the same `Idempotency-Key`. So we assert: each (execution, step) reached the
 * sink under exactly one key (its own) with one payload; a receiver deduping on the key applies
 * exactly 600 effects; and every repeated request is explained by a worker kill between it and
 * the previous request of its key (an orchestrator kill, a retry or a re-dispatch never repeats one).
 *
 * "No event lost": every execution stream has dense revisions 0..n-1, exactly one completion,
 * exactly one success per step, and each step's recorded output is the delivery the sink saw.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { freePort, natsUserSeed } from '@switchyard/platform';
import { gatewayRequest } from './support.js';
import { embeddedDatabaseUrl, Proc, sleep, startSink, type Hit } from './launcher.js';
import { scratchDataDir } from '@switchyard/testing';

const adminKey = `sy_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;
const auth = { authorization: `Bearer ${adminKey}` };
/** The automation server keeps a caller's keys under the person a step acts for: `<actor>/<key>`. */
const scoped = (key: string) => `apikey:${adminKey.split('_')[1]}/${key}`;
const mcpKinds = [
  'FILESYSTEM_BRIDGE',
  'DATABASE',
  'DATABASE_WRITER',
  'GITHUB',
  'FETCH',
  'AUTOMATION',
  'ANALYTICS',
] as const;
const EXECUTIONS = 200;
const STEPS = ['first', 'second', 'third'] as const;

describe('chaos: 200 executions through SIGKILLs of the orchestrator and a worker', () => {
  let dataDir: string;
  let base: string;
  let sink: Awaited<ReturnType<typeof startSink>>;
  let a: Proc;
  let w: Proc;
  let b: Proc;
  let databaseUrl: string;

  const http = (method: string, url: string, body?: unknown) => gatewayRequest(base, auth, method, url, body);

  before(async () => {
    const t0 = Date.now();
    sink = await startSink();
    dataDir = scratchDataDir('e2e-chaos-');
    const gatewayPort = await freePort();
    const pgPort = await freePort();
    const natsPort = await freePort();
    base = `http://127.0.0.1:${gatewayPort}`;
    const common: Record<string, string> = {
      ...(process.env as Record<string, string>),
      DATA_DIR: dataDir,
      FILESYSTEM_ROOT: path.join(dataDir, 'files'),
      LOG_LEVEL: 'info',
      SWITCHYARD_ADMIN_KEY: adminKey,
      WEBHOOK_ALLOW_LOOPBACK: 'true',
      // W and B join A's nats-server and need its token: A uses this one, not one of its own.
      // An nkey seed: every process presents it to the one embedded nats-server by signing, never in clear.
      NATS_TOKEN: natsUserSeed(randomBytes(32).toString('base64url')),
    };
    for (const k of ['DATABASE_URL', 'NATS_URL', 'TEST_DATABASE_URL', 'TEST_NATS_URL', 'DATABASE_ALLOW_WRITES'])
      delete common[k];
    for (const kind of mcpKinds) {
      const port = await freePort();
      common[`MCP_${kind}_PORT`] = String(port);
      // The connectors reach the filesystem and GitHub servers over stdio; their HTTP bridges only move ports.
      if (kind !== 'FILESYSTEM_BRIDGE' && kind !== 'GITHUB') common[`MCP_${kind}_URL`] = `http://127.0.0.1:${port}/mcp`;
    }
    // A owns the infrastructure; W and B join it by URL, as separately deployed processes would.
    a = new Proc('A (relay gateway)', ['relay', 'gateway'], {
      ...common,
      GATEWAY_PORT: String(gatewayPort),
      GATEWAY_HOST: '127.0.0.1',
      EMBEDDED_PG_PORT: String(pgPort),
      EMBEDDED_NATS_PORT: String(natsPort),
    });
    databaseUrl = embeddedDatabaseUrl(dataDir, pgPort);
    const joined = { ...common, DATABASE_URL: databaseUrl, NATS_URL: `nats://127.0.0.1:${natsPort}` };
    w = new Proc('W (mcp-servers connectors)', ['mcp-servers', 'connectors'], joined);
    b = new Proc('B (workflows)', ['workflows'], joined);
    a.start();
    await a.waitUp(90_000);
    w.start();
    b.start();
    await Promise.all([w.waitUp(), b.waitUp()]);
    // The connectors see the automation server up (health through the gateway, over NATS).
    for (let i = 0; ; i++) {
      const h = await http('GET', '/api/v1/integration/mcp/health');
      const servers = (h.body?.servers ?? []) as { server: string; state: string }[];
      if (servers.some((s) => s.server === 'automation' && s.state === 'up')) break;
      if (i > 240) assert.fail(`automation never up: ${JSON.stringify(h.body)}`);
      await sleep(250);
    }
    console.log(`# chaos: system up in ${Date.now() - t0} ms`);
  });

  after(async () => {
    const t0 = Date.now();
    await Promise.all([b?.stop(), w?.stop()]);
    await a?.stop();
    console.log(`# chaos: stopped in ${Date.now() - t0} ms`);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    await new Promise((r) => sink?.server.close(r));
  });

  it('all complete, each step effect applied once per key at the sink, no event lost', async () => {
    const t0 = Date.now();
    const tag = randomBytes(3).toString('hex');
    const hook = await http('POST', '/api/v1/integration/mcp/call', {
      server: 'automation',
      tool: 'register_webhook',
      arguments: { name: `chaos-${tag}`, url: `${sink.url}/hook`, secret: randomBytes(24).toString('hex') },
    });
    assert.equal(hook.status, 200, JSON.stringify(hook.body));

    // Each step sends one webhook keyed by (execution input n, step); the next step carries the previous delivery id.
    const step = (id: (typeof STEPS)[number], prev?: string) => ({
      id,
      uses: 'mcp:automation/send_webhook',
      ...(prev ? { needs: [prev] } : {}),
      with: {
        webhook: `chaos-${tag}`,
        event: `chaos.${id}`,
        payload: {
          n: '${{ input.n }}',
          step: id,
          ...(prev ? { prev: `\${{ steps.${prev}.output.delivery.delivery_id }}` } : {}),
        },
        idempotency_key: `\${{ input.n }}:${id}`,
      },
      // A killed worker answers nothing (timeout) or no one listens (unavailable): try again, same key.
      retry: { attempts: 20, backoff: { initialMs: 300, factor: 2, maxMs: 2_000, jitter: 0.2 } },
      timeout_ms: 4_000,
    });
    const definitionId = `chaos-${tag}`;
    const reg = await http('POST', '/api/v1/workflows/definitions', {
      id: definitionId,
      version: 1,
      name: 'chaos',
      input: { type: 'object', properties: { n: { type: 'string' } }, required: ['n'] },
      steps: [step('first'), step('second', 'first'), step('third', 'second')],
      outputs: { n: '${{ input.n }}', last: '${{ steps.third.output.delivery.delivery_id }}' },
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));

    // 1-2. Start the executions in 6 chunks with a SIGKILL between two chunks (B, W, B, W, B), each
    // victim restarted at once. A kill comes once the sink has seen some effects of the chunk just
    // started (so that chunk is mid-flight), and the next chunk starts right after the kill (so
    // starts also land while the victim is down). Every kill thus has work outstanding by
    // construction, not by timing: later chunks have not started yet.
    const started = new Map<string, string>(); // execution id -> n
    const chunkSizes = [35, 35, 35, 35, 35, 25];
    const chunks: string[][] = [];
    let next = 0;
    for (const size of chunkSizes) chunks.push(Array.from({ length: size }, () => `${tag}-${next++}`));
    assert.equal(next, EXECUTIONS);
    const startChunk = async (ns: string[]) => {
      for (let i = 0; i < ns.length; i += 5) {
        await Promise.all(
          ns.slice(i, i + 5).map(async (n) => {
            for (let attempt = 0; ; attempt++) {
              const r = await http('POST', `/api/v1/workflows/start/${definitionId}`, { n }).catch((e) => ({
                status: 0,
                body: String(e),
              }));
              if (r.status === 202 || r.status === 200) {
                started.set(r.body.execution_id, n);
                return;
              }
              if (attempt > 5) assert.fail(`start ${n}: ${r.status} ${JSON.stringify(r.body)}`);
              await sleep(200);
            }
          }),
        );
      }
    };
    const keysOf = (ns: string[]) => {
      const mine = new Set(ns);
      return new Set(sink.hits.filter((h) => mine.has(h.payload.n)).map((h) => h.key)).size;
    };
    const kills = { orchestrator: 0, worker: 0 };
    const atKill: string[] = [];
    /** Each worker kill, from just before the signal to the process's exit (a request can land in between). */
    const workerKills: { from: number; to: number }[] = [];
    let starting = startChunk(chunks[0]!);
    for (const [i, victim] of [b, w, b, w, b].entries()) {
      await starting;
      for (let k = 0; keysOf(chunks[i]!) < 10; k++) {
        if (k > 600) assert.fail(`chunk ${i}: only ${keysOf(chunks[i]!)} effects at the sink after 60 s`);
        await sleep(100);
      }
      atKill.push(`${victim === b ? 'B' : 'W'}@${keysOf(chunks[i]!)}/${chunks[i]!.length * STEPS.length}`);
      const killFrom = Date.now();
      await victim.kill('SIGKILL');
      if (victim === w) workerKills.push({ from: killFrom, to: Date.now() });
      if (victim === b) kills.orchestrator++;
      else kills.worker++;
      victim.start();
      starting = startChunk(chunks[i + 1]!);
      await victim.waitUp();
    }
    await starting;
    assert.equal(started.size, EXECUTIONS);
    const chaosDoneAt = Date.now() - t0;

    // 3. Wait (bounded) until the read model shows every execution completed.
    let completed: number;
    let lastList: unknown;
    for (let i = 0; ; i++) {
      const r = await http('GET', `/api/v1/workflows/executions?template=${definitionId}&limit=200`);
      lastList = r.body;
      const items = (r.body?.items ?? r.body?.executions ?? []) as { status: string }[];
      completed = items.filter((x) => x.status === 'completed').length;
      if (completed === EXECUTIONS) break;
      const failed = items.filter((x) => x.status === 'failed' || x.status === 'canceled');
      if (failed.length)
        assert.fail(`some executions ended ${failed.map((f) => f.status).join(',')}: ${JSON.stringify(failed[0])}`);
      if (i > 300)
        assert.fail(
          `only ${completed}/${EXECUTIONS} completed after the chaos: ${JSON.stringify(lastList).slice(0, 1000)}`,
        );
      await sleep(300);
    }

    // 4. The event streams: dense revisions, one completion, one success per step, outputs = deliveries.
    const eventTypes = new Map<string, number>();
    for (const [executionId, n] of started) {
      const r = await http('GET', `/api/v1/events?stream=workflow_execution-${executionId}&limit=1000`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const events = r.body.events as { type: string; revision: number | string; data: any }[];
      assert.deepEqual(
        events.map((e) => Number(e.revision)),
        events.map((_, k) => k),
        `dense revisions for ${executionId}`,
      );
      for (const e of events) eventTypes.set(e.type, (eventTypes.get(e.type) ?? 0) + 1);
      const completions = events.filter((e) => e.type === 'WorkflowCompleted');
      assert.equal(completions.length, 1, `one completion for ${executionId}: ${events.map((e) => e.type)}`);
      assert.equal(events.at(-1)!.type, 'WorkflowCompleted', `nothing after the completion of ${executionId}`);
      assert.deepEqual(completions[0]!.data.outputs, { n, last: scoped(`${n}:third`) });
      const succeeded = events.filter((e) => e.type === 'StepSucceeded');
      assert.deepEqual(
        succeeded.map((e) => e.data.step_id ?? e.data.stepId).sort(),
        [...STEPS].sort(),
        `one success per step for ${executionId}`,
      );
      for (const e of succeeded) {
        const sid = e.data.step_id ?? e.data.stepId;
        assert.equal(
          e.data.output?.delivery?.delivery_id,
          scoped(`${n}:${sid}`),
          `step ${sid} of ${executionId} recorded its own delivery`,
        );
      }
    }

    // 5. The sink: exactly the 600 expected keys, each with one payload; deduped by key = 600 effects.
    const byKey = new Map<string, Hit[]>();
    for (const h of sink.hits) byKey.set(h.key, [...(byKey.get(h.key) ?? []), h]);
    const expected = new Set([...started.values()].flatMap((n) => STEPS.map((s) => scoped(`${n}:${s}`))));
    assert.deepEqual(
      [...byKey.keys()].sort(),
      [...expected].sort(),
      'every (execution, step) reached the sink under its own key, and no other key',
    );
    for (const [key, hs] of byKey) {
      const bare = key.slice(key.indexOf('/') + 1);
      const [n, s] = [bare.slice(0, bare.lastIndexOf(':')), bare.slice(bare.lastIndexOf(':') + 1)];
      for (const h of hs) {
        assert.equal(h.id, key, 'the delivery id is the idempotency key');
        assert.deepEqual(h.payload, {
          n,
          step: s,
          ...(s === 'first' ? {} : { prev: scoped(`${n}:${s === 'second' ? 'first' : 'second'}`) }),
        });
      }
    }
    const duplicates = sink.hits.length - byKey.size;
    // 6. Repeats only where no sender can avoid them: a worker SIGKILLed after the sink saw the request.
    for (const [key, hs] of byKey) {
      for (let k = 1; k < hs.length; k++) {
        const between = workerKills.filter((kill) => hs[k - 1]!.at <= kill.to && kill.from <= hs[k]!.at);
        assert.ok(
          between.length > 0,
          `${key} was POSTed again at ${hs[k]!.at} with no worker kill since its previous request at ${hs[k - 1]!.at} (kills ${JSON.stringify(workerKills)})`,
        );
      }
    }
    // 7. The sender's own record agrees: every key answered, and every request the sink saw was counted as a send.
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const rows = await db.query<{ delivery_id: string; status: string; sends: number }>(
        `select delivery_id, status, sends from automation.deliveries where delivery_id = any($1::text[])`,
        [[...expected]],
      );
      assert.equal(rows.rowCount, expected.size, 'one delivery record per key');
      for (const r of rows.rows) {
        assert.equal(r.status, 'answered', `${r.delivery_id} is recorded as answered`);
        assert.ok(
          r.sends >= byKey.get(r.delivery_id)!.length,
          `${r.delivery_id}: ${r.sends} sends recorded, ${byKey.get(r.delivery_id)!.length} seen at the sink`,
        );
      }
    } finally {
      await db.end();
    }
    const totalMs = Date.now() - t0;
    console.log(
      `# chaos: ${EXECUTIONS} executions, kills orchestrator=${kills.orchestrator} worker=${kills.worker}, ` +
        `effects of the current chunk at each kill ${atKill.join(' ')}, sink requests=${sink.hits.length} distinct keys=${byKey.size} repeated after a worker kill=${duplicates} (keys: ${[...byKey.values()].filter((h) => h.length > 1).length}), ` +
        `chaos phase ${chaosDoneAt} ms, total ${totalMs} ms, events ${JSON.stringify(Object.fromEntries(eventTypes))}`,
    );
    assert.equal(kills.orchestrator, 3);
    assert.equal(kills.worker, 2);
  });
});
