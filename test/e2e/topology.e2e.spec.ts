/**
 * Every role, several times: eleven launcher processes from one checkout on one PostgreSQL and
 * one nats-server; one process of each duplicated role SIGKILLed in turn while work runs.
 *
 * Processes (free ports; one MCP_AUTH_TOKEN, AI_AGENT_AUTH_TOKEN and admin key for all):
 *   R  = `relay monitor`            owns PostgreSQL and nats-server (EMBEDDED_*); never killed
 *   G1, G2 = `gateway`              GATEWAY_PORT each                       (G1 killed)
 *   M  = `mcp-servers`              the MCP servers, once
 *   C1, C2 = `connectors`                                                   (C1 killed)
 *   A1, A2 = `agents`               agent HTTP ports of their own           (A1 killed)
 *   W1 = `workflows read-models`, W2 = `workflows`                          (W2 killed)
 *   D1, D2 = `dispatcher`                                                   (D1 killed)
 * TOPOLOGY_UNITS workflow starts (a two-step definition: an analytics MCP call, then the
 * support agent) and as many delegations (default 40 each; `npm run scale:topology` runs 100)
 * alternate between the two gateways with an Idempotency-Key each; a request that meets a
 * connection error is asked again of the other gateway with the same key. The victims are
 * killed one after the other, TOPOLOGY_KILL_PAUSE_MS apart, while the submissions run; none is
 * started again.
 *
 * Checked in the event store (PostgreSQL): one execution / task per key; every workflow ends
 * with exactly one WorkflowCompleted, last, one success per step; every task stream (the
 * delegations and the workflows' agent steps) has exactly one terminal event, a TaskCompleted,
 * last; every stream's revisions are dense; the store's positions are dense.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { natsPasswordEnv, natsRoleUsers } from '@switchyard/contracts';
import {
  DATABASE_LOGINS,
  databaseLoginEnv,
  freePort,
  natsRolePasswordFile,
  natsUserSeed,
  type DatabaseLogin,
} from '@switchyard/platform';
import { gatewayRequest } from './support.js';
import {
  scratchDataDir,
  agentPorts,
  embeddedDatabaseUrl,
  newAdminKey,
  Proc,
  root,
  sleep,
  systemEnv,
  waitMcpServerUp,
  waitReady,
} from './launcher.js';

const UNITS = Number(process.env.TOPOLOGY_UNITS ?? 40);
const KILL_PAUSE_MS = Number(process.env.TOPOLOGY_KILL_PAUSE_MS ?? 2_500);
const STEPS = ['metric', 'answer'] as const;
const TERMINAL_TASK = ['TaskCompleted', 'TaskFailed', 'TaskTimedOut', 'TaskCanceled'];
const TERMINAL_WORKFLOW = ['WorkflowCompleted', 'WorkflowFailed', 'WorkflowCanceled'];

type Stream = { revision: number; type: string; data: any }[];

/** The admin URL's server and database, logged in as one of the roles' logins (`switchyard_<login>`). */
function loginUrl(adminUrl: string, login: DatabaseLogin, password: string): string {
  const u = new URL(adminUrl);
  u.username = `switchyard_${login}`;
  u.password = password;
  return u.toString();
}

describe(`every role several times: ${UNITS} workflows + ${UNITS} delegations over 2 gateways, one of each duplicated role SIGKILLed`, () => {
  const adminKey = newAdminKey();
  const auth = { authorization: `Bearer ${adminKey}` };
  let dataDir: string;
  let databaseUrl: string;
  const bases: string[] = [];
  let procs: Proc[] = [];
  let byName: Record<string, Proc> = {};

  const http = (g: number, method: string, url: string, body?: unknown, headers: Record<string, string> = {}) =>
    gatewayRequest(bases[g]!, { ...auth, ...headers }, method, url, body).catch((e: unknown) => ({
      status: 0,
      body: String(e),
    }));

  before(async () => {
    const t0 = Date.now();
    dataDir = scratchDataDir('e2e-topology-');
    const pgPort = await freePort();
    const natsPort = await freePort();
    const gatewayPorts = [await freePort(), await freePort()];
    for (const p of gatewayPorts) bases.push(`http://127.0.0.1:${p}`);
    databaseUrl = embeddedDatabaseUrl(dataDir, pgPort);
    const common = await systemEnv(dataDir, adminKey, {
      RATE_LIMIT_ENABLED: 'false',
      MCP_AUTH_TOKEN: randomBytes(24).toString('hex'),
      AI_AGENT_AUTH_TOKEN: randomBytes(24).toString('hex'),
      // The processes that join the owner's nats-server need its token: the owner uses this one.
      NATS_TOKEN: natsUserSeed(randomBytes(32).toString('base64url')),
      DISPATCHER_LEASE_TTL_MS: '4000',
      DISPATCHER_LEASE_TICK_MS: '500',
    });
    // The passwords of the roles' logins, given to every process that provisions (R, the setup).
    const loginPasswords = Object.fromEntries(
      DATABASE_LOGINS.map((l) => [databaseLoginEnv(l, 'PASSWORD'), randomBytes(24).toString('hex')]),
    );
    const r = new Proc('R (relay monitor)', ['relay', 'monitor'], {
      ...common,
      ...loginPasswords,
      EMBEDDED_PG_PORT: String(pgPort),
      EMBEDDED_NATS_PORT: String(natsPort),
    });
    // 1. The owner of the infrastructure first (it creates the database and the roles' NATS users),
    // then the rest at once: their migration phases and role provisioning take turns under one lock.
    r.start();
    await r.waitUp(120_000);
    // The others join as their roles' own NATS users, not with the token: a role that needs a
    // subject its user may not use fails its part of the run below.
    const { NATS_TOKEN: _ownersOnly, ...withoutToken } = common;
    const natsDir = path.join(dataDir, 'nats');
    const passwords = Object.fromEntries(
      natsRoleUsers.map((u) => [
        natsPasswordEnv(u),
        readFileSync(path.join(natsDir, natsRolePasswordFile(u)), 'utf8').trim(),
      ]),
    );
    // 2. The one-shot database setup, the only process given the administrative login: it
    // provisions the roles with the passwords given, migrates and loads the demo data. The
    // others get their roles' own logins only (no DATABASE_URL): none may create roles or run DDL.
    const setup = spawnSync(process.execPath, [path.join(root, 'apps', 'launcher', 'dist', 'db-setup.js')], {
      cwd: root,
      env: { ...withoutToken, ...loginPasswords, DATABASE_URL: databaseUrl },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(setup.status, 0, `db-setup: ${setup.stdout}${setup.stderr}`);
    const joined = {
      ...withoutToken,
      ...passwords,
      NATS_URL: `nats://127.0.0.1:${natsPort}`,
    };
    const as = (...logins: DatabaseLogin[]) =>
      Object.fromEntries(
        (['sink', ...logins] as DatabaseLogin[]).map((l) => [
          databaseLoginEnv(l, 'URL'),
          loginUrl(databaseUrl, l, loginPasswords[databaseLoginEnv(l, 'PASSWORD')]!),
        ]),
      );
    const gateway = { ...joined, ...as('gateway', 'projections') };
    const workflows = { ...joined, ...as('engine') };
    const dispatcher = { ...joined, ...as('dispatcher') };
    const agents = { ...joined, ...as('agents') };
    byName = {
      R: r,
      G1: new Proc('G1 (gateway)', ['gateway'], { ...gateway, GATEWAY_PORT: String(gatewayPorts[0]) }),
      G2: new Proc('G2 (gateway)', ['gateway'], { ...gateway, GATEWAY_PORT: String(gatewayPorts[1]) }),
      M: new Proc('M (mcp-servers)', ['mcp-servers'], {
        ...joined,
        ...as('mcp_reader', 'mcp_writer', 'automation', 'analytics'),
      }),
      C1: new Proc('C1 (connectors)', ['connectors'], { ...joined, ...as() }),
      C2: new Proc('C2 (connectors)', ['connectors'], { ...joined, ...as() }),
      A1: new Proc('A1 (agents)', ['agents'], agents),
      A2: new Proc('A2 (agents)', ['agents'], { ...agents, ...(await agentPorts()) }),
      W1: new Proc('W1 (workflows read-models)', ['workflows', 'read-models'], workflows),
      W2: new Proc('W2 (workflows)', ['workflows'], workflows),
      D1: new Proc('D1 (dispatcher)', ['dispatcher'], dispatcher),
      D2: new Proc('D2 (dispatcher)', ['dispatcher'], dispatcher),
    };
    procs = Object.values(byName);
    for (const p of procs) if (p !== r) p.start();
    await Promise.all(procs.filter((p) => p !== r).map((p) => p.waitUp(150_000)));
    await waitReady(bases[0]!, byName.G1!);
    await waitReady(bases[1]!, byName.G2!);
    await waitMcpServerUp(bases[0]!, auth, 'analytics');
    console.log(`# topology: ${procs.length} processes up in ${Date.now() - t0} ms`);
  });

  after(async () => {
    await Promise.all(procs.filter((p) => p !== byName.R).map((p) => p.stop()));
    await byName.R?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('only the owner R and the one-shot setup held the administrative login: the others have their logins alone, and every backend is a role login', async () => {
    const adminPassword = decodeURIComponent(new URL(databaseUrl).password);
    for (const [name, p] of Object.entries(byName)) {
      if (p === byName.R) continue;
      const environ = readFileSync(`/proc/${p.proc.pid}/environ`, 'utf8').split('\0');
      assert.ok(!environ.some((e) => e.startsWith('DATABASE_URL=')), `${name} was given DATABASE_URL`);
      assert.ok(!environ.some((e) => e.includes(adminPassword)), `${name} holds the superuser's password`);
    }
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const backends = await db.query<{ usename: string; n: number }>(
        `select usename, count(*)::int as n from pg_stat_activity
          where datname = current_database() and backend_type = 'client backend' and pid <> pg_backend_pid()
          group by usename order by usename`,
      );
      const users = backends.rows.map((b) => b.usename);
      assert.ok(users.length > 0);
      for (const u of users) assert.match(u, /^switchyard_/, `a backend logged in as ${u}`);
      assert.ok(!users.includes('switchyard_app'), 'a backend logged in as the schema owner');
    } finally {
      await db.end();
    }
  });

  it('every workflow and delegation completes exactly once while a process of each duplicated role dies', async () => {
    const tag = randomBytes(3).toString('hex');
    const retry = { attempts: 50, backoff: { initialMs: 300, factor: 2, maxMs: 3_000, jitter: 0.2 } };
    const definitionId = `topology-${tag}`;
    const reg = await http(0, 'POST', '/api/v1/workflows/definitions', {
      id: definitionId,
      version: 1,
      name: 'topology',
      input: { type: 'object', properties: { n: { type: 'string' } }, required: ['n'] },
      steps: [
        {
          id: 'metric',
          uses: 'mcp:analytics/record_metric',
          with: { name: 'topology_units', value: 1 },
          retry,
          timeout_ms: 5_000,
        },
        {
          id: 'answer',
          uses: 'agent:support_response',
          needs: ['metric'],
          with: { query: 'where is my order ${{ input.n }}' },
          retry,
          timeout_ms: 8_000,
        },
      ],
      outputs: { n: '${{ input.n }}' },
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));

    const executionOfKey = new Map<string, string>();
    const taskOfKey = new Map<string, string>();
    // 1. The killer: one process of each duplicated role, in turn, a pause before each.
    const t0 = Date.now();
    const kills: { name: string; atMs: number; submitted: number }[] = [];
    const killer = (async () => {
      for (const name of ['G1', 'C1', 'A1', 'W2', 'D1']) {
        await sleep(KILL_PAUSE_MS);
        await byName[name]!.kill('SIGKILL');
        kills.push({ name, atMs: Date.now() - t0, submitted: executionOfKey.size + taskOfKey.size });
      }
    })();

    // 2. The clients: alternate gateways; a connection error moves the same request, same key, to the other one.
    let switched = 0;
    let refused = 0;
    const refusals = new Map<string, number>(); // 'path status code' -> count
    const submit = async (first: number, url: string, body: unknown, key: string): Promise<any> => {
      let g = first;
      for (let attempt = 0; ; attempt++) {
        const r = await http(g, 'POST', url, body, { 'idempotency-key': key });
        if (r.status === 202 || r.status === 200) return r.body;
        if (attempt > 300) assert.fail(`${url} ${key}: ${r.status} ${JSON.stringify(r.body)}`);
        if (r.status === 0) {
          switched++;
          g = 1 - g;
        } else {
          refused++;
          const what = `${url.split('/')[3]} ${r.status} ${r.body?.code ?? r.body?.type ?? ''}`;
          refusals.set(what, (refusals.get(what) ?? 0) + 1);
          await sleep(200);
        }
      }
    };
    const startWorkflow = async (k: number) => {
      const key = `wf-${tag}-${k}`;
      const body = await submit(k % 2, `/api/v1/workflows/start/${definitionId}`, { n: `${tag}-${k}` }, key);
      executionOfKey.set(key, body.execution_id);
    };
    const delegate = async (k: number) => {
      const key = `task-${tag}-${k}`;
      const body = await submit(
        (k + 1) % 2,
        '/api/v1/integration/agents/delegate',
        {
          task_type: 'support_response',
          context: { query: `my invoice ${key} is wrong` },
          priority: 'normal',
          timeout_ms: 20_000,
        },
        key,
      );
      taskOfKey.set(key, body.task_id);
    };
    // A paced stream over a period longer than the kills', so every kill lands while requests are in
    // flight; a request held up (its key in flight on the killed gateway) does not hold up the others.
    const everyMs = (KILL_PAUSE_MS * 6) / UNITS;
    const jobs: Promise<void>[] = [];
    for (let k = 0; k < UNITS; k++) {
      jobs.push(startWorkflow(k), delegate(k));
      await sleep(everyMs);
    }
    await Promise.all(jobs);
    const submittedMs = Date.now() - t0;
    await killer;
    assert.equal(executionOfKey.size, UNITS);
    assert.equal(new Set(executionOfKey.values()).size, UNITS, 'one execution per idempotency key');
    assert.equal(taskOfKey.size, UNITS);
    assert.equal(new Set(taskOfKey.values()).size, UNITS, 'one task per idempotency key');
    for (const name of ['G2', 'C2', 'A2', 'W1', 'D2', 'M', 'R']) assert.ok(byName[name]!.alive, `${name} survived`);

    // 3. Wait until every workflow and every task stream has a final event (failing only when nothing moves for 60 s).
    const db = new pg.Client({ connectionString: databaseUrl });
    db.on('error', () => undefined);
    await db.connect();
    try {
      const streams = async (prefix: string) => {
        const r = await db.query<{ stream_id: string; revision: string; type: string; data: any }>(
          `select stream_id, revision, type, data from eventstore.events where starts_with(stream_id, $1) order by stream_id, revision`,
          [prefix],
        );
        const by = new Map<string, Stream>();
        for (const row of r.rows)
          by.set(row.stream_id, [
            ...(by.get(row.stream_id) ?? []),
            { revision: Number(row.revision), type: row.type, data: row.data },
          ]);
        return by;
      };
      const open = async () => {
        const wf = await streams('workflow_execution-');
        const tasks = await streams('task-');
        const wfOpen = [...executionOfKey.values()].filter(
          (id) => !(wf.get(`workflow_execution-${id}`) ?? []).some((e) => TERMINAL_WORKFLOW.includes(e.type)),
        );
        const taskOpen = [...tasks.entries()]
          .filter(([, ev]) => !ev.some((e) => TERMINAL_TASK.includes(e.type)))
          .map(([id]) => id);
        const missing = [...taskOfKey.values()].filter((id) => !tasks.has(`task-${id}`));
        return { n: wfOpen.length + taskOpen.length + missing.length, wfOpen, taskOpen, missing };
      };
      for (let last = -1, lastMoved = Date.now(); ;) {
        const o = await open();
        if (o.n === 0) break;
        if (o.n !== last) [last, lastMoved] = [o.n, Date.now()];
        if (Date.now() - lastMoved > 60_000)
          assert.fail(
            `not ended for 60 s: workflows ${o.wfOpen.slice(0, 3)}, tasks ${o.taskOpen.slice(0, 3)}, missing ${o.missing.slice(0, 3)}`,
          );
        await sleep(500);
      }
      const doneMs = Date.now() - t0;
      await sleep(1_000); // anything wrongly appended after a final event would show up now

      // 4. The invariants.
      const wf = await streams('workflow_execution-');
      for (const [key, id] of executionOfKey) {
        const ev = wf.get(`workflow_execution-${id}`) ?? [];
        assert.deepEqual(
          ev.map((e) => e.revision),
          ev.map((_, k) => k),
          `dense revisions for ${id}`,
        );
        assert.equal(
          ev.filter((e) => TERMINAL_WORKFLOW.includes(e.type)).length,
          1,
          `one final event for ${id}: ${ev.map((e) => e.type)}`,
        );
        assert.equal(ev.at(-1)!.type, 'WorkflowCompleted', `${id} completed, nothing after it`);
        assert.deepEqual(ev.at(-1)!.data.outputs, { n: `${tag}-${key.slice(key.lastIndexOf('-') + 1)}` });
        const ok = ev.filter((e) => e.type === 'StepSucceeded').map((e) => e.data.step_id ?? e.data.stepId);
        assert.deepEqual(ok.sort(), [...STEPS].sort(), `one success per step for ${id}`);
      }
      const tasks = await streams('task-');
      for (const id of taskOfKey.values()) assert.ok(tasks.has(`task-${id}`), `task ${id} recorded`);
      let retried = 0;
      for (const [id, ev] of tasks) {
        assert.deepEqual(
          ev.map((e) => e.revision),
          ev.map((_, k) => k),
          `dense revisions for ${id}`,
        );
        assert.equal(
          ev.filter((e) => TERMINAL_TASK.includes(e.type)).length,
          1,
          `one final event for ${id}: ${ev.map((e) => e.type)}`,
        );
        assert.equal(
          ev.filter((e) => e.type === 'TaskCompleted').length,
          1,
          `${id} completed once: ${ev.map((e) => e.type)}`,
        );
        assert.equal(ev.at(-1)!.type, 'TaskCompleted', `nothing after the completion of ${id}`);
        if (ev.some((e) => e.type === 'TaskRetryScheduled')) retried++;
      }
      const s = await db.query<{ n: string; head: string }>(
        'select count(*) as n, max(position) as head from eventstore.events',
      );
      assert.equal(Number(s.rows[0]!.n), Number(s.rows[0]!.head) + 1, 'the event store positions are dense');

      console.log(
        `# topology: ${UNITS} workflows + ${UNITS} delegations over 2 gateways; kills (name@time/accepted so far) ${kills.map((k) => `${k.name}@${(k.atMs / 1000).toFixed(1)}s/${k.submitted}`).join(' ')}; ` +
          `submitted in ${submittedMs} ms (${switched} moved to the other gateway, ${refused} refusals asked again: ${JSON.stringify(Object.fromEntries(refusals))}), all ended in ${doneMs} ms; ` +
          `${executionOfKey.size} workflows completed once, ${tasks.size} tasks completed once (${retried} after a retry); ${s.rows[0]!.n} events, positions dense`,
      );
      // Each joined process ran on its roles' own NATS users: none was refused a subject it needed.
      const violations = procs.flatMap((p) =>
        p.loud.filter((l) => /permissions? violation/i.test(l)).map((l) => `${p.label}: ${l.slice(0, 300)}`),
      );
      assert.deepEqual(violations, [], 'no role used a subject its NATS user may not');
    } finally {
      await db.end().catch(() => undefined);
    }
  });
});
