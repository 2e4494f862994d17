/**
 * Faults under the whole system as `npm start` runs it (one launcher process, `all` roles, with
 * its own embedded PostgreSQL and nats-server, DATA_DIR and ports):
 * 1. a database MCP query (`pg_sleep`) whose backend is terminated from another session;
 * 2. every PostgreSQL backend the system holds terminated, one at a time, then all at once;
 * 3. PostgreSQL itself stopped (fast shutdown of the postmaster) and started again by the launcher's supervisor;
 * 4. nats-server stopped (its JetStream store kept) and started again by the supervisor;
 * 5. the launcher SIGKILLed: the next one adopts the PostgreSQL left running, and starts it again
 *    when that server exits, as it does one it started itself.
 * Through all of it: the process never exits, the system answers again (within 10 s after the
 * backend kills), workflows and delegations started before and after every fault complete exactly
 * once, every stream is dense, the event store's positions are dense, and no error reached the
 * process-level net (each was handled where it happened).
 *
 * FAULTS_BATCH (default 8): workflows and delegations started around each fault.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import pg from 'pg';
import { freePort } from '@switchyard/platform';
import { gatewayRequest } from './support.js';
import {
  scratchDataDir,
  allExecutions,
  embeddedDatabaseUrl,
  newAdminKey,
  Proc,
  sleep,
  systemEnv,
  waitReady,
} from './launcher.js';

const BATCH = Number(process.env.FAULTS_BATCH ?? 8);
const adminKey = newAdminKey();
const auth = { authorization: `Bearer ${adminKey}` };
const definitionId = 'faults';

describe('faults: the all-in-one process through backend kills and PostgreSQL / NATS restarts', () => {
  let dataDir: string;
  let base: string;
  let sys: Proc;
  let databaseUrl: string;
  let env: Record<string, string>;
  let db: pg.Client | undefined;
  const executions = new Map<string, string>(); // execution id -> n
  const tasks = new Set<string>();
  let seq = 0;
  const figures: string[] = [];

  /** Answers 500 (an error nothing mapped): a fault must give a 503 the caller can retry, never one. */
  const internalErrors: string[] = [];
  const http = async (method: string, url: string, body?: unknown) => {
    const r = await gatewayRequest(base, auth, method, url, body).catch((e: unknown) => ({
      status: 0,
      body: String(e),
    }));
    if (r.status === 500) internalErrors.push(`${method} ${url}: ${JSON.stringify(r.body).slice(0, 300)}`);
    return r;
  };

  /** The test's own admin session, made again when a fault took it too. */
  const admin = async (): Promise<pg.Client> => {
    if (db) return db;
    const c = new pg.Client({ connectionString: databaseUrl, application_name: 'faults-test' });
    c.on('error', () => {
      if (db === c) db = undefined;
    });
    await c.connect();
    db = c;
    return c;
  };

  /** Start `n` workflows and `n` delegations (each retried while the system is coming back). */
  const startWork = async (n: number, label: string): Promise<void> => {
    await Promise.all(
      Array.from({ length: n }, async () => {
        const k = `${label}-${seq++}`;
        for (let attempt = 0; ; attempt++) {
          const r = await http('POST', `/api/v1/workflows/start/${definitionId}`, { n: k });
          if (r.status === 202 || r.status === 200) {
            executions.set(r.body.execution_id, k);
            break;
          }
          if (attempt > 100) assert.fail(`start ${k}: ${r.status} ${JSON.stringify(r.body)}`);
          await sleep(200);
        }
        for (let attempt = 0; ; attempt++) {
          const r = await http('POST', '/api/v1/integration/agents/delegate', {
            task_type: 'support_response',
            context: { query: `my invoice ${k} is wrong` },
            priority: 'normal',
          });
          if (r.status === 202 || r.status === 200) {
            tasks.add(r.body.task_id);
            break;
          }
          if (attempt > 100) assert.fail(`delegate ${k}: ${r.status} ${JSON.stringify(r.body)}`);
          await sleep(200);
        }
      }),
    );
  };

  /**
   * Poll /readyz every 50 ms (without waiting for the previous answer) until stopped; the
   * `components` check of each answer, 200 or 503 (the problem document carries the checks).
   */
  const watchComponents = () => {
    // In the order the probes were sent, not answered: a slow answer from before the restart
    // must not read as the last state.
    const seen: (string | undefined)[] = [];
    let on = true;
    const probe = (): Promise<void> => {
      const slot = seen.push(undefined) - 1;
      return fetch(`${base}/readyz`, { signal: AbortSignal.timeout(5_000) })
        .then(async (r) => {
          const body = (await r.json()) as { checks?: Record<string, { status: string; error?: string }> };
          const c = body.checks?.['components'];
          if (c) seen[slot] = c.status === 'degraded' ? `degraded: ${c.error}` : c.status;
        })
        .catch(() => undefined);
    };
    const loop = (async () => {
      const inFlight: Promise<void>[] = [];
      while (on) {
        inFlight.push(probe());
        await sleep(50);
      }
      await Promise.all(inFlight);
    })();
    return async (): Promise<string[]> => {
      on = false;
      await loop;
      // One more probe, sent after whatever the caller waited for: the loop's last one may have
      // been sent just before the state the caller saw (it probes every 50 ms), and must not be
      // read as the state after it.
      await probe();
      return seen.filter((s): s is string => s !== undefined);
    };
  };

  /** ms until the system answers again: ready, a database query through the MCP server, a workflow start. */
  /** Wait until /readyz says every supervised component is up again. */
  const componentsUp = async (boundMs: number, what: string): Promise<void> => {
    const t0 = Date.now();
    let last = '';
    while (Date.now() - t0 < boundMs) {
      const body = (await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2_000) })
        .then((r) => r.json())
        .catch(() => undefined)) as { checks?: Record<string, { status: string; error?: string }> } | undefined;
      const c = body?.checks?.['components'];
      if (c?.status === 'up') return;
      last = JSON.stringify(c ?? null);
      await sleep(100);
    }
    assert.fail(`components not all up within ${boundMs} ms after ${what}: ${last}`);
  };

  const answersAgain = async (boundMs: number, what: string): Promise<number> => {
    const t0 = Date.now();
    let last = '';
    while (Date.now() - t0 < boundMs) {
      assert.ok(sys.alive, `the process exited after ${what}: ${sys.output.slice(-3000)}`);
      const ready = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2_000) })
        .then((r) => r.status)
        .catch(() => 0);
      const q =
        ready === 200
          ? await http('POST', '/api/v1/integration/mcp/database/query', { query: 'select 1 as one' })
          : { status: ready, body: 'not ready' };
      if (q.status === 200) return Date.now() - t0;
      last = `${q.status} ${JSON.stringify(q.body).slice(0, 300)}`;
      await sleep(100);
    }
    return assert.fail(`no answer within ${boundMs} ms after ${what}: ${last}`);
  };

  before(async () => {
    dataDir = scratchDataDir('e2e-faults-');
    const gatewayPort = await freePort();
    const pgPort = await freePort();
    base = `http://127.0.0.1:${gatewayPort}`;
    databaseUrl = embeddedDatabaseUrl(dataDir, pgPort);
    env = await systemEnv(dataDir, adminKey, {
      GATEWAY_PORT: String(gatewayPort),
      EMBEDDED_PG_PORT: String(pgPort),
      EMBEDDED_NATS_PORT: String(await freePort()),
      RATE_LIMIT_ENABLED: 'false',
    });
    sys = new Proc('all-in-one', [], env);
    sys.start();
    await sys.waitUp(120_000);
    await waitReady(base, sys);
    const step = (id: string, uses: string, w: Record<string, unknown>, needs?: string) => ({
      id,
      uses,
      ...(needs ? { needs: [needs] } : {}),
      with: w,
      // While a fault lasts a step fails unavailable / times out: try again.
      retry: { attempts: 30, backoff: { initialMs: 200, factor: 2, maxMs: 2_000, jitter: 0.2 } },
      timeout_ms: 8_000,
    });
    const reg = await http('POST', '/api/v1/workflows/definitions', {
      id: definitionId,
      version: 1,
      name: 'faults',
      input: { type: 'object', properties: { n: { type: 'string' } }, required: ['n'] },
      steps: [
        step('lookup', 'mcp:database/query', { sql: 'select $1::text as n', params: ['${{ input.n }}'] }),
        step('answer', 'agent:support_response', { query: 'where is my order ${{ input.n }}' }, 'lookup'),
      ],
      outputs: { n: '${{ steps.lookup.output.rows[0].n }}' },
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
  });

  after(async () => {
    await db?.end().catch(() => undefined);
    await sys?.stop();
    console.log(`# faults: ${figures.join('; ')}`);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('a pg_sleep query whose backend is terminated from another session fails that query only', async () => {
    const slow = http('POST', '/api/v1/integration/mcp/database/query', { query: 'select pg_sleep(30)' });
    const c = await admin();
    let pid: number | undefined;
    for (let i = 0; i < 100 && pid === undefined; i++) {
      const r = await c.query<{ pid: number }>(
        `select pid from pg_stat_activity where query like 'select pg_sleep(30)%' and pid <> pg_backend_pid()`,
      );
      pid = r.rows[0]?.pid;
      if (pid === undefined) await sleep(100);
    }
    assert.ok(pid, 'the slow query is running');
    const killed = await c.query<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [pid]);
    assert.equal(killed.rows[0]?.ok, true);
    const answer = await slow;
    assert.ok(
      answer.status >= 400 && answer.status < 600 && answer.status !== 500,
      `the killed query answers an error, not a crash: ${answer.status} ${JSON.stringify(answer.body)}`,
    );
    assert.equal(
      answer.body?.correlationId !== undefined || answer.body?.code !== undefined,
      true,
      `a problem document: ${JSON.stringify(answer.body)}`,
    );
    const ms = await answersAgain(10_000, 'the pg_sleep kill');
    figures.push(`pg_sleep kill: ${answer.status}, answering again after ${ms} ms`);
    assert.ok(sys.alive);
  });

  it('every backend it holds terminated, one at a time then all at once: answers within 10 s, nothing lost', async () => {
    await startWork(BATCH, 'before-kills');
    const c = await admin();
    const others = `select pid from pg_stat_activity where pid <> pg_backend_pid() and backend_type = 'client backend' and application_name <> 'faults-test'`;
    const pids = (await c.query<{ pid: number }>(others)).rows.map((r) => r.pid);
    assert.ok(pids.length >= 5, `the system holds several connections (${pids.length})`);
    let terminated = 0;
    for (const pid of pids) {
      const r = await (await admin()).query<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [pid]);
      if (r.rows[0]?.ok) terminated++;
      await sleep(30);
    }
    const oneByOne = await answersAgain(10_000, 'terminating the backends one at a time');
    await startWork(BATCH, 'between-kills');
    const all = await (
      await admin()
    ).query<{ ok: boolean }>(`select pg_terminate_backend(pid) as ok from (${others}) b`);
    const allAtOnce = await answersAgain(10_000, 'terminating every backend at once');
    await startWork(BATCH, 'after-kills');
    figures.push(
      `backends: ${terminated}/${pids.length} one at a time -> answering after ${oneByOne} ms; ${all.rowCount} at once -> ${allAtOnce} ms`,
    );
    assert.ok(sys.alive);
  });

  it('PostgreSQL stopped under load is started again by the supervisor; work before and after completes', async () => {
    await startWork(BATCH, 'before-pg-restart');
    const pid = sys.childPid('postgres');
    assert.ok(pid, 'the launcher runs PostgreSQL as its child');
    await db?.end().catch(() => undefined);
    db = undefined;
    const t0 = Date.now();
    const watching = watchComponents();
    process.kill(pid, 'SIGINT'); // fast shutdown: what `pg_ctl stop -m fast` does
    let newPid: number | undefined;
    for (let i = 0; i < 600 && !(newPid && newPid !== pid); i++) {
      await sleep(100);
      newPid = sys.childPid('postgres');
    }
    assert.ok(newPid && newPid !== pid, `a new postmaster runs: ${sys.output.slice(-2000)}`);
    const ms = await answersAgain(60_000, 'the PostgreSQL restart');
    // Queries are answered as soon as the new postmaster accepts them; the supervisor marks its
    // unit up once its own start finished: wait for that before reading the last state.
    await componentsUp(30_000, 'the PostgreSQL restart');
    const seen = await watching();
    // While it was down, /readyz named it: degraded component `postgres`, with why.
    assert.ok(
      seen.some((s) => /^degraded: .*postgres/.test(s)),
      `readyz reported postgres degraded: ${JSON.stringify([...new Set(seen)])}`,
    );
    assert.equal(seen.at(-1), 'up', 'and up again once restarted');
    await startWork(BATCH, 'after-pg-restart');
    figures.push(
      `PostgreSQL restart: answering ${Date.now() - t0} ms after the stop (${ms} ms after the new postmaster)`,
    );
    assert.match(sys.output + sys.loud.join('\n'), /component restarted[^\n]*postgres|"unit":"postgres"/);
    assert.ok(sys.alive);
  });

  it('nats-server stopped under load is started again by the supervisor (JetStream store kept); work before and after completes', async () => {
    await startWork(BATCH, 'before-nats-restart');
    const pid = sys.childPid('nats-server');
    assert.ok(pid, 'the launcher runs nats-server as its child');
    const t0 = Date.now();
    const watching = watchComponents();
    process.kill(pid, 'SIGTERM');
    let newPid: number | undefined;
    for (let i = 0; i < 600 && !(newPid && newPid !== pid); i++) {
      await sleep(100);
      newPid = sys.childPid('nats-server');
    }
    assert.ok(newPid && newPid !== pid, `a new nats-server runs: ${sys.output.slice(-2000)}`);
    await answersAgain(60_000, 'the NATS restart');
    await componentsUp(30_000, 'the NATS restart');
    const seen = await watching();
    assert.ok(
      seen.some((s) => /^degraded: .*nats-server/.test(s)),
      `readyz reported nats-server degraded: ${JSON.stringify([...new Set(seen)])}`,
    );
    assert.equal(seen.at(-1), 'up');
    await startWork(BATCH, 'after-nats-restart');
    figures.push(`NATS restart: answering ${Date.now() - t0} ms after the stop`);
    assert.ok(sys.alive);
  });

  it('after a SIGKILL of the launcher, the next one adopts PostgreSQL and starts it again when it exits', async () => {
    const adoptedPid = sys.childPid('postgres');
    assert.ok(adoptedPid, 'the launcher runs PostgreSQL as its child');
    await db?.end().catch(() => undefined);
    db = undefined;
    await sys.kill('SIGKILL');
    sys = new Proc('all-in-one (after a SIGKILL)', [], env);
    sys.start();
    await sys.waitUp(120_000);
    await waitReady(base, sys);
    assert.match(sys.output, /adopting the PostgreSQL server already running on the port/);
    assert.equal(sys.childPid('postgres'), undefined, 'the adopted server is not its child');
    const t0 = Date.now();
    const watching = watchComponents();
    process.kill(adoptedPid, 'SIGINT'); // fast shutdown of the adopted server
    let newPid: number | undefined;
    for (let i = 0; i < 600 && !newPid; i++) {
      await sleep(100);
      newPid = sys.childPid('postgres');
    }
    assert.ok(newPid, `the new launcher started PostgreSQL again: ${sys.output.slice(-2000)}`);
    await answersAgain(60_000, 'the adopted PostgreSQL exited');
    await componentsUp(30_000, 'the adopted PostgreSQL exited');
    const seen = await watching();
    assert.equal(seen.at(-1), 'up');
    await startWork(BATCH, 'after-adopted-pg-restart');
    figures.push(`adopted PostgreSQL exited: answering again ${Date.now() - t0} ms after its stop`);
    assert.ok(sys.alive);
  });

  it('everything started before and after the faults completed exactly once; streams and the store are dense', async () => {
    const t0 = Date.now();
    // Workflows: every one completed (read model), then each stream checked event by event.
    for (let i = 0; ; i++) {
      const items = await allExecutions(base, auth, definitionId).catch(() => []);
      const done = items.filter((x) => x.status === 'completed').length;
      const bad = items.filter((x) => x.status === 'failed' || x.status === 'canceled');
      if (bad.length) assert.fail(`executions ended ${bad.map((b) => b.status)}: ${JSON.stringify(bad[0])}`);
      if (done === executions.size) break;
      if (i > 600) {
        // What the log says of the first few unfinished ones: stuck in the engine or only in the read model.
        const open = items.filter((x) => x.status !== 'completed').slice(0, 3);
        const streams = await Promise.all(
          open.map(async (x) => {
            const r = await http('GET', `/api/v1/events?stream=workflow_execution-${x.execution_id}&limit=1000`);
            const events = (r.body?.events ?? []) as { type: string; data: any }[];
            return {
              id: x.execution_id,
              status: x.status,
              events: events.map((e) => `${e.type} ${e.data?.step_id ?? ''}`),
            };
          }),
        );
        // And the delegation side (an agent step waits on a task): the agents as the dispatcher sees
        // them, and the first task not completed with its events.
        const agents = await http('GET', '/api/v1/integration/agents/health');
        const report = await http('GET', '/api/v1/system/health-report');
        const components = ((report.body?.services ?? []) as { service: string }[]).filter((x) =>
          x.service.startsWith('component:'),
        );
        let task: unknown = null;
        for (const id of tasks) {
          const t = await http('GET', `/api/v1/integration/agents/tasks/${id}`);
          if (t.body?.status === 'completed') continue;
          const ev = await http('GET', `/api/v1/events?stream=task-${id}&limit=1000`);
          task = { view: t.body, events: ((ev.body?.events ?? []) as { type: string }[]).map((e) => e.type) };
          break;
        }
        assert.fail(
          `${done}/${executions.size} workflows completed; unfinished: ${JSON.stringify(streams)}; first task not completed: ${JSON.stringify(task)}; agents: ${JSON.stringify(agents.body).slice(0, 3000)}; components: ${JSON.stringify(components).slice(0, 3000)}; errors logged: ${sys.loud.slice(-15).join('\n')}; the system's last lines: ${sys.output.slice(-4000)}`,
        );
      }
      await sleep(200);
    }
    for (const [id, n] of executions) {
      const r = await http('GET', `/api/v1/events?stream=workflow_execution-${id}&limit=1000`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const events = r.body.events as { type: string; revision: number | string; data: any }[];
      assert.deepEqual(
        events.map((e) => Number(e.revision)),
        events.map((_, k) => k),
        `dense revisions for ${id}`,
      );
      assert.equal(events.filter((e) => e.type === 'WorkflowCompleted').length, 1, `one completion for ${id}`);
      assert.equal(events.at(-1)!.type, 'WorkflowCompleted');
      assert.deepEqual(events.at(-1)!.data.outputs, { n });
      const succeeded = events.filter((e) => e.type === 'StepSucceeded').map((e) => e.data.step_id ?? e.data.stepId);
      assert.deepEqual(succeeded.sort(), ['answer', 'lookup'], `one success per step for ${id}`);
    }
    // Delegations: every task completed, once.
    const pending = new Set(tasks);
    for (let i = 0; pending.size > 0; i++) {
      for (const id of [...pending]) {
        const r = await http('GET', `/api/v1/integration/agents/tasks/${id}`);
        if (r.body?.status === 'completed') pending.delete(id);
        else if (['failed', 'canceled', 'timed_out'].includes(r.body?.status))
          assert.fail(`task ${id} ended ${r.body.status}: ${JSON.stringify(r.body).slice(0, 500)}`);
      }
      if (pending.size && i > 300) {
        const stuck = await Promise.all(
          [...pending]
            .slice(0, 3)
            .map(async (id) => (await http('GET', `/api/v1/integration/agents/tasks/${id}`)).body),
        );
        assert.fail(`${pending.size}/${tasks.size} tasks not completed: ${JSON.stringify(stuck).slice(0, 3000)}`);
      }
      if (pending.size) await sleep(300);
    }
    for (const id of tasks) {
      const r = await http('GET', `/api/v1/events?stream=task-${id}&limit=1000`);
      const events = r.body.events as { type: string; revision: number | string }[];
      assert.deepEqual(
        events.map((e) => Number(e.revision)),
        events.map((_, k) => k),
        `dense revisions for task ${id}`,
      );
      assert.equal(
        events.filter((e) => e.type === 'TaskCompleted').length,
        1,
        `one completion for task ${id}: ${events.map((e) => e.type)}`,
      );
    }
    // The event store: positions 0..head with no hole.
    const s = await (
      await admin()
    ).query<{ n: string; head: string }>('select count(*) as n, max(position) as head from eventstore.events');
    assert.equal(Number(s.rows[0]!.n), Number(s.rows[0]!.head) + 1, 'the event store positions are dense');
    // The health report lists every component of the process, each probed running again (its
    // status word is the monitor's own state machine, which the restarts may have left `unknown`).
    for (let i = 0; ; i++) {
      const h = await http('GET', '/api/v1/system/health-report');
      const comps = ((h.body?.services ?? []) as { service: string; status: string; lastOk: boolean | null }[]).filter(
        (x) => x.service.startsWith('component:'),
      );
      const wanted = [
        'component:postgres',
        'component:nats-server',
        'component:nats',
        'component:workflows',
        'component:dispatcher',
      ];
      const bad = wanted.filter((w) => comps.find((x) => x.service === w)?.lastOk !== true);
      if (bad.length === 0 && comps.every((x) => x.lastOk === true)) break;
      if (i > 150)
        assert.fail(
          `health report components not running: ${JSON.stringify(comps.filter((x) => x.lastOk !== true || bad.includes(x.service)))}, missing ${bad}`,
        );
      await sleep(200);
    }
    // Every error was handled where it happened: none reached the process-level net.
    const net = sys.loud.filter((l) => l.includes('caught at the process level'));
    assert.deepEqual(net, [], 'no error reached the uncaughtException / unhandledRejection net');
    assert.deepEqual(internalErrors, [], 'no request was answered 500 while the faults lasted');
    // The events the components report (MCP calls, health) waited out the outages: none was given up.
    const lost = sys.loud.filter((l) => l.includes('could not append reported events'));
    assert.deepEqual(lost, [], 'no reported event was lost to the faults');
    figures.push(
      `${executions.size} workflows and ${tasks.size} delegations completed once (checked in ${Date.now() - t0} ms), ${s.rows[0]!.n} events dense`,
    );
    assert.ok(sys.alive);
  });
});
