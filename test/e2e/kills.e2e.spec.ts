/**
 * Random kills of roles: N workflows and N delegations submitted while the launcher's role
 * processes are SIGKILLed at random and started again, then every one is checked.
 *
 * Processes (one PostgreSQL and one nats-server, owned by A):
 *   A = `relay gateway` (the HTTP edge, owns the infrastructure; never killed)
 *   W = `mcp-servers connectors` (the worker: sends the webhooks)
 *   B = `workflows` (the engine)
 *   D = `dispatcher agents` (the task dispatcher and the six agents)
 * The victims are W, B, D in rounds of a random order; each is restarted at once, and the next
 * kill waits until it is up again (one role down at a time, kills every KILLS_EVERY_MS on average).
 *
 * Checked afterwards:
 * - every workflow completed, once: dense stream, one WorkflowCompleted, last; one success per step;
 * - every delegation reached one final state (completed, or failed / timed_out when a kill took
 *   its attempts): dense stream, exactly one terminal event, nothing after it; one task per
 *   Idempotency-Key however often its submission was retried;
 * - the event store's positions are dense;
 * - the steps' webhook effects: each (execution, step) reached the sink under its own key only,
 *   with one payload, and a key was sent again only across a kill of the worker (the sender).
 *
 * Sizes: KILLS_WORKFLOWS, KILLS_DELEGATIONS (default 200 each), KILLS_EVERY_MS (default 4000),
 * KILLS_FOR_MS (default 30000: kills go on at least this long, also after the last submission).
 * `npm run faults` runs it with 1,000 + 1,000.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import pg from 'pg';
import { freePort, natsUserSeed } from '@switchyard/platform';
import { gatewayRequest } from './support.js';
import {
  scratchDataDir,
  embeddedDatabaseUrl,
  newAdminKey,
  Proc,
  sleep,
  startSink,
  systemEnv,
  waitMcpServerUp,
  waitReady,
} from './launcher.js';

const WORKFLOWS = Number(process.env.KILLS_WORKFLOWS ?? 200);
const DELEGATIONS = Number(process.env.KILLS_DELEGATIONS ?? 200);
const EVERY_MS = Number(process.env.KILLS_EVERY_MS ?? 4_000);
/** Kills go on at least this long (also while the work submitted is being done). */
const KILL_FOR_MS = Number(process.env.KILLS_FOR_MS ?? 30_000);
const STEPS = ['notify', 'answer', 'confirm'] as const;
const WEBHOOK_STEPS = ['notify', 'confirm'] as const;
const TERMINAL = ['TaskCompleted', 'TaskFailed', 'TaskTimedOut', 'TaskCanceled'];

describe(`random role kills: ${WORKFLOWS} workflows and ${DELEGATIONS} delegations`, () => {
  const adminKey = newAdminKey();
  const auth = { authorization: `Bearer ${adminKey}` };
  /** The automation server keeps a caller's keys under the person a step acts for: `<actor>/<key>`. */
  const scoped = (key: string) => `apikey:${adminKey.split('_')[1]}/${key}`;
  let dataDir: string;
  let base: string;
  let databaseUrl: string;
  let sink: Awaited<ReturnType<typeof startSink>>;
  let a: Proc;
  let victims: Proc[] = [];

  const http = (method: string, url: string, body?: unknown, headers: Record<string, string> = {}) =>
    gatewayRequest(base, { ...auth, ...headers }, method, url, body).catch((e: unknown) => ({
      status: 0,
      body: String(e),
    }));

  before(async () => {
    const t0 = Date.now();
    sink = await startSink();
    dataDir = scratchDataDir('e2e-kills-');
    const gatewayPort = await freePort();
    const pgPort = await freePort();
    const natsPort = await freePort();
    base = `http://127.0.0.1:${gatewayPort}`;
    databaseUrl = embeddedDatabaseUrl(dataDir, pgPort);
    // The processes that join A's nats-server need its token: A uses this one, not one of its own.
    const common = await systemEnv(dataDir, adminKey, {
      WEBHOOK_ALLOW_LOOPBACK: 'true',
      RATE_LIMIT_ENABLED: 'false',
      // An nkey seed: every process presents it to the one embedded nats-server by signing, never in clear.
      NATS_TOKEN: natsUserSeed(randomBytes(32).toString('base64url')),
    });
    a = new Proc('A (relay gateway)', ['relay', 'gateway'], {
      ...common,
      GATEWAY_PORT: String(gatewayPort),
      EMBEDDED_PG_PORT: String(pgPort),
      EMBEDDED_NATS_PORT: String(natsPort),
    });
    const joined = { ...common, DATABASE_URL: databaseUrl, NATS_URL: `nats://127.0.0.1:${natsPort}` };
    const w = new Proc('W (mcp-servers connectors)', ['mcp-servers', 'connectors'], joined);
    const b = new Proc('B (workflows)', ['workflows'], joined);
    const d = new Proc('D (dispatcher agents)', ['dispatcher', 'agents'], joined);
    victims = [w, b, d];
    a.start();
    await a.waitUp(120_000);
    for (const p of victims) p.start();
    await Promise.all(victims.map((p) => p.waitUp(90_000)));
    await waitReady(base, a);
    await waitMcpServerUp(base, auth, 'automation');
    console.log(`# kills: system up in ${Date.now() - t0} ms`);
  });

  after(async () => {
    await Promise.all(victims.map((p) => p.stop()));
    await a?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    await new Promise((r) => sink?.server.close(r));
  });

  it('every workflow and delegation reaches one final state; no event lost or doubled; keyed effects once', async () => {
    const t0 = Date.now();
    const tag = randomBytes(3).toString('hex');
    const hook = await http('POST', '/api/v1/integration/mcp/call', {
      server: 'automation',
      tool: 'register_webhook',
      arguments: { name: `kills-${tag}`, url: `${sink.url}/hook`, secret: randomBytes(24).toString('hex') },
    });
    assert.equal(hook.status, 200, JSON.stringify(hook.body));
    // Rejections while a role is down or the connectors' bulkhead is full (rate_limited) use attempts: plenty of them.
    const retry = { attempts: 100, backoff: { initialMs: 300, factor: 2, maxMs: 3_000, jitter: 0.2 } };
    const webhook = (id: string, needs?: string) => ({
      id,
      uses: 'mcp:automation/send_webhook',
      ...(needs ? { needs: [needs] } : {}),
      with: {
        webhook: `kills-${tag}`,
        event: `kills.${id}`,
        payload: { n: '${{ input.n }}', step: id },
        idempotency_key: `\${{ input.n }}:${id}`,
      },
      retry,
      timeout_ms: 5_000,
    });
    const definitionId = `kills-${tag}`;
    const reg = await http('POST', '/api/v1/workflows/definitions', {
      id: definitionId,
      version: 1,
      name: 'kills',
      input: { type: 'object', properties: { n: { type: 'string' } }, required: ['n'] },
      steps: [
        webhook('notify'),
        {
          id: 'answer',
          uses: 'agent:support_response',
          needs: ['notify'],
          with: { query: 'where is my order ${{ input.n }}' },
          retry,
          timeout_ms: 8_000,
        },
        webhook('confirm', 'answer'),
      ],
      outputs: { n: '${{ input.n }}' },
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));

    // 1. Submit in small waves while a killer SIGKILLs a random role every EVERY_MS.
    const executions = new Map<string, string>(); // execution id -> n
    const taskOfKey = new Map<string, string>(); // idempotency key -> task id
    let submitting = true;
    const kills: { label: string; from: number; to: number }[] = [];
    const workerKills: { from: number; to: number }[] = [];
    const killsUntil = Date.now() + KILL_FOR_MS;
    const killing = () => submitting || Date.now() < killsUntil || kills.length < victims.length;
    const bag: Proc[] = [];
    const killer = (async () => {
      while (killing()) {
        await sleep(EVERY_MS * (0.5 + Math.random()));
        if (!killing()) break;
        // Rounds of every role in a random order: each is killed as often as the others.
        if (bag.length === 0) bag.push(...[...victims].sort(() => Math.random() - 0.5));
        const victim = bag.pop()!;
        const from = Date.now();
        await victim.kill('SIGKILL');
        const to = Date.now();
        kills.push({ label: victim.label[0]!, from, to });
        if (victim === victims[0]) workerKills.push({ from, to });
        victim.start();
        await victim.waitUp(90_000);
      }
    })();
    const startWorkflow = async (n: string) => {
      for (let attempt = 0; ; attempt++) {
        const r = await http('POST', `/api/v1/workflows/start/${definitionId}`, { n });
        if (r.status === 202 || r.status === 200) return void executions.set(r.body.execution_id, n);
        if (attempt > 150) assert.fail(`start ${n}: ${r.status} ${JSON.stringify(r.body)}`);
        await sleep(200);
      }
    };
    const delegate = async (key: string) => {
      for (let attempt = 0; ; attempt++) {
        const r = await http(
          'POST',
          '/api/v1/integration/agents/delegate',
          {
            task_type: 'support_response',
            context: { query: `my invoice ${key} is wrong` },
            priority: 'normal',
            timeout_ms: 20_000,
          },
          { 'idempotency-key': key },
        );
        if (r.status === 202 || r.status === 200) {
          const seen = taskOfKey.get(key);
          assert.ok(
            seen === undefined || seen === r.body.task_id,
            `${key} named two tasks: ${seen} and ${r.body.task_id}`,
          );
          return void taskOfKey.set(key, r.body.task_id);
        }
        // The dispatcher is down (503) or busy taking over: the same key again.
        if (attempt > 300) assert.fail(`delegate ${key}: ${r.status} ${JSON.stringify(r.body)}`);
        await sleep(200);
      }
    };
    const wave = 10;
    const waves = Math.ceil(Math.max(WORKFLOWS, DELEGATIONS) / wave);
    for (let i = 0; i < waves; i++) {
      const jobs: Promise<void>[] = [];
      for (let k = i * wave; k < Math.min(WORKFLOWS, (i + 1) * wave); k++) jobs.push(startWorkflow(`${tag}-${k}`));
      for (let k = i * wave; k < Math.min(DELEGATIONS, (i + 1) * wave); k++) jobs.push(delegate(`kills-${tag}-${k}`));
      await Promise.all(jobs);
      // Keep the submissions spread over the kill period rather than all before the first kill.
      await sleep(Math.max(0, Math.min(1_000, KILL_FOR_MS / waves)));
    }
    submitting = false;
    await killer;
    await Promise.all(victims.map((p) => (p.alive ? Promise.resolve() : p.waitUp(90_000))));
    const chaosMs = Date.now() - t0;
    assert.equal(executions.size, WORKFLOWS);
    assert.equal(taskOfKey.size, DELEGATIONS);
    assert.equal(new Set(taskOfKey.values()).size, DELEGATIONS, 'one task per idempotency key');
    assert.ok(
      kills.length >= victims.length,
      `every role was killed at least once (${kills.map((k) => k.label).join('')})`,
    );

    // 2. Workflows: wait until every execution stream has ended (the events are the truth; the
    // read model follows them), failing only when nothing moves for a minute.
    const db = new pg.Client({ connectionString: databaseUrl });
    db.on('error', () => undefined);
    await db.connect();
    try {
      const streams = async (prefix: string) => {
        const r = await db.query<{ stream_id: string; revision: string; type: string; data: any }>(
          `select stream_id, revision, type, data from eventstore.events where starts_with(stream_id, $1) order by stream_id, revision`,
          [prefix],
        );
        const by = new Map<string, { revision: number; type: string; data: any }[]>();
        for (const row of r.rows)
          by.set(row.stream_id, [
            ...(by.get(row.stream_id) ?? []),
            { revision: Number(row.revision), type: row.type, data: row.data },
          ]);
        return by;
      };
      // One execution's events as "Type(step#attempt)+ms since its start", for the failure message and the slowest ones.
      const timeline = async (id: string) => {
        const r = await db.query<{ type: string; data: any; at: Date }>(
          `select type, data, recorded_at as at from eventstore.events where stream_id = $1 order by revision`,
          [`workflow_execution-${id}`],
        );
        const t = r.rows[0]?.at.getTime() ?? 0;
        return `${id}: ${r.rows.map((e) => `${e.type}${e.data?.stepId ? `(${e.data.stepId}#${e.data.attempt ?? ''})` : ''}+${e.at.getTime() - t}`).join(' ')}`;
      };
      const ended = async () =>
        Number(
          (
            await db.query<{ n: string }>(
              `select count(*) as n from eventstore.events where type in ('WorkflowCompleted', 'WorkflowFailed', 'WorkflowCanceled') and stream_id = any($1::text[])`,
              [[...executions.keys()].map((id) => `workflow_execution-${id}`)],
            )
          ).rows[0]!.n,
        );
      for (let last = -1, lastMoved = Date.now(); ;) {
        const n = await ended();
        if (n >= WORKFLOWS) break;
        if (n !== last) [last, lastMoved] = [n, Date.now()];
        if (Date.now() - lastMoved > 60_000) {
          // Say where the stuck ones stand: their events, and the kills around them.
          const wf = await streams('workflow_execution-');
          const stuck = [...executions.keys()].filter(
            (id) =>
              !(wf.get(`workflow_execution-${id}`) ?? []).some(
                (e) => e.type.startsWith('Workflow') && e.type !== 'WorkflowStarted',
              ),
          );
          const tails = await Promise.all(stuck.slice(0, 5).map(timeline));
          const killTimes = kills.map((k) => `${k.label}@${new Date(k.from).toISOString()}`).join(' ');
          assert.fail(
            `${n}/${WORKFLOWS} workflows ended, none for 60 s; kills ${killTimes}; stuck e.g.\n${tails.join('\n')}`,
          );
        }
        await sleep(500);
      }
      const slowest = await db.query<{ stream_id: string; ms: string }>(
        `select stream_id, extract(epoch from max(recorded_at) - min(recorded_at)) * 1000 as ms from eventstore.events where stream_id = any($1::text[]) group by stream_id order by 2 desc limit 3`,
        [[...executions.keys()].map((id) => `workflow_execution-${id}`)],
      );
      console.log(
        `# kills: slowest executions (kills ${kills.map((k) => `${k.label}@${new Date(k.from).toISOString()}`).join(' ')}):`,
      );
      for (const row of slowest.rows)
        console.log(
          `#   ${Math.round(Number(row.ms))} ms ${await timeline(row.stream_id.slice('workflow_execution-'.length))}`,
        );
      const wf = await streams('workflow_execution-');
      for (const [id, n] of executions) {
        const events = wf.get(`workflow_execution-${id}`) ?? [];
        assert.deepEqual(
          events.map((e) => e.revision),
          events.map((_, k) => k),
          `dense revisions for ${id}`,
        );
        assert.equal(events.filter((e) => e.type === 'WorkflowCompleted').length, 1, `one completion for ${id}`);
        assert.equal(events.at(-1)?.type, 'WorkflowCompleted', `nothing after the completion of ${id}`);
        assert.deepEqual(events.at(-1)!.data.outputs, { n });
        const ok = events.filter((e) => e.type === 'StepSucceeded').map((e) => e.data.step_id ?? e.data.stepId);
        assert.deepEqual(ok.sort(), [...STEPS].sort(), `one success per step for ${id}`);
      }

      // 3. Delegations: one final state each, dense, nothing after it.
      for (let i = 0; ; i++) {
        const tasks = await streams('task-');
        const open = [...taskOfKey.values()].filter(
          (id) => !(tasks.get(`task-${id}`) ?? []).some((e) => TERMINAL.includes(e.type)),
        );
        if (open.length === 0) break;
        if (i > 300)
          assert.fail(
            `${open.length} tasks never reached a final state, e.g. ${open[0]}: ${JSON.stringify(tasks.get(`task-${open[0]}`)?.map((e) => e.type))}`,
          );
        await sleep(300);
      }
      await sleep(1_000); // anything wrongly appended after a final state would show up now
      const tasks = await streams('task-');
      const outcome = new Map<string, number>();
      for (const id of taskOfKey.values()) {
        const events = tasks.get(`task-${id}`) ?? [];
        assert.deepEqual(
          events.map((e) => e.revision),
          events.map((_, k) => k),
          `dense revisions for task ${id}`,
        );
        const terminal = events.filter((e) => TERMINAL.includes(e.type));
        assert.equal(terminal.length, 1, `one final event for task ${id}: ${events.map((e) => e.type)}`);
        assert.equal(events.at(-1)!.type, terminal[0]!.type, `nothing after the final event of task ${id}`);
        outcome.set(terminal[0]!.type, (outcome.get(terminal[0]!.type) ?? 0) + 1);
      }

      // 4. The event store: positions 0..head, no hole.
      const s = await db.query<{ n: string; head: string }>(
        'select count(*) as n, max(position) as head from eventstore.events',
      );
      assert.equal(Number(s.rows[0]!.n), Number(s.rows[0]!.head) + 1, 'the event store positions are dense');

      // 5. Keyed effects at the sink: exactly the expected keys, one payload each, repeats only across a worker kill.
      const expected = new Set(
        [...executions.values()].flatMap((n) => WEBHOOK_STEPS.map((st) => scoped(`${n}:${st}`))),
      );
      const byKey = new Map<string, typeof sink.hits>();
      for (const h of sink.hits)
        if (h.key.startsWith(scoped(`${tag}-`))) byKey.set(h.key, [...(byKey.get(h.key) ?? []), h]);
      assert.deepEqual(
        [...byKey.keys()].sort(),
        [...expected].sort(),
        'every (execution, step) reached the sink under its own key, and no other key',
      );
      for (const [key, hs] of byKey) {
        const bare = key.slice(key.indexOf('/') + 1);
        const [n, st] = [bare.slice(0, bare.lastIndexOf(':')), bare.slice(bare.lastIndexOf(':') + 1)];
        for (const h of hs) assert.deepEqual(h.payload, { n, step: st });
        for (let k = 1; k < hs.length; k++) {
          const between = workerKills.filter((kill) => hs[k - 1]!.at <= kill.to && kill.from <= hs[k]!.at);
          assert.ok(between.length > 0, `${key} was POSTed again with no worker kill since its previous request`);
        }
      }
      const repeats = [...byKey.values()].reduce((acc, hs) => acc + hs.length - 1, 0);
      console.log(
        `# kills: ${WORKFLOWS} workflows + ${DELEGATIONS} delegations, ${kills.length} kills (${kills.map((k) => k.label).join('')}), ` +
          `submission phase ${chaosMs} ms, total ${Date.now() - t0} ms; tasks ${JSON.stringify(Object.fromEntries(outcome))}; ` +
          `${s.rows[0]!.n} events dense; webhook keys ${byKey.size}, repeated across a worker kill ${repeats}`,
      );
    } finally {
      await db.end().catch(() => undefined);
    }
  });
});
