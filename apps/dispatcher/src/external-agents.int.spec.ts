import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { closeNats, connectNats, request, type NatsConnection } from '@switchyard/messaging';
import {
  createLogger,
  freePort,
  isAppError,
  startNatsServer,
  type AppError,
  type NatsServerHandle,
} from '@switchyard/platform';
import { PostgresEventStore, UnstorableEventError } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { taskStreamId } from '@switchyard/domain';
import {
  agentHealthView,
  EXTERNAL_AGENT_STREAM_PREFIX,
  externalAgentRegisteredData,
  externalAgentStreamId,
  taskExecuteReply,
  taskSubmitReply,
  taskView,
  unregisterAgentReply,
  type TaskView,
  tasksSubject,
} from '@switchyard/contracts';
import { ensureExternalAgentsTable, startDispatcher, type DispatcherHandle } from './index.js';

/**
 * Registered external agents are stored: a new dispatcher on the same database (restart or
 * failover) uses them without a new registration; removal takes them out for good. Real
 * PostgreSQL, a nats-server of this suite's own, and a tiny HTTP server speaking the agent
 * HTTP contract (GET /health, POST /execute with a bearer token).
 */
const logger = createLogger('external-agents-int', process.env.LOG_LEVEL ?? 'silent');
// The agents here listen on loopback: allow-listed, as an operator would (EGRESS_ALLOW_CIDRS).
const fast = {
  egress: { allowCidrs: ['127.0.0.0/8'] },
  pollIntervalMs: 100,
  healthIntervalMs: 200,
  discoveryIntervalMs: 300,
  discoveryWaitMs: 150,
  probeTimeoutMs: 500,
};
const NAME = 'ext-echo';
const TASK_TYPE = 'ext_echo';
const TOKEN = 'tok-3f9a1c77e2b84d0c-never-in-events';

/**
 * The agent HTTP contract, minimal: echoes `context.echo`; `context.hold_ms` keeps the request
 * open that long, `context.hold_first_ms` only the task's first request.
 */
function startEchoAgent() {
  const executed: string[] = [];
  let inFlight = 0;
  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      if (!res.destroyed) res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/health')
      return send(200, { status: 'healthy', agent: NAME, in_flight: inFlight, task_types: [TASK_TYPE] });
    if (req.method !== 'POST' || req.url !== '/execute')
      return send(404, { error: { code: 'not_found', message: `${req.method} ${req.url}` } });
    if (req.headers.authorization !== `Bearer ${TOKEN}`)
      return send(401, { error: { code: 'unauthorized', message: 'bad or missing bearer token' } });
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const body = JSON.parse(raw) as {
        task_id: string;
        task_type: string;
        context: {
          echo?: unknown;
          hold_ms?: number;
          hold_first_ms?: number;
          answer?: 'deep' | 'huge' | 'long_error';
        };
      };
      executed.push(body.task_id);
      // A hostile agent's answers: nested 10,000 deep (20 KB), 2 MB, a 500 KB error message.
      const answer = body.context.answer;
      if (answer === 'long_error')
        return send(500, { error: { code: 'internal', message: `boom ${'x'.repeat(500_000)}` } });
      if (answer === 'deep' || answer === 'huge') {
        const result: unknown =
          answer === 'deep' ? JSON.parse(`${'['.repeat(10_000)}${']'.repeat(10_000)}`) : 'y'.repeat(2_000_000);
        res.writeHead(200, { 'content-type': 'application/json' });
        // Written by hand: JSON.stringify throws on 10,000 levels.
        const text = answer === 'deep' ? `${'['.repeat(10_000)}${']'.repeat(10_000)}` : JSON.stringify(result);
        return void res.end(
          `{"task_id":"${body.task_id}","agent":"${NAME}","status":"completed","duration_ms":1,"result":${text}}`,
        );
      }
      inFlight++;
      const timer = setTimeout(
        () => {
          inFlight--;
          send(200, {
            task_id: body.task_id,
            agent: NAME,
            status: 'completed',
            result: { echo: body.context.echo ?? null },
            duration_ms: 1,
          });
        },
        body.context.hold_ms ??
          (executed.filter((id) => id === body.task_id).length === 1 ? (body.context.hold_first_ms ?? 0) : 0),
      );
      // The dispatcher gave up (aborted its fetch): no late answer, and no timer keeping the process up.
      res.on('close', () => {
        if (!res.writableFinished) {
          clearTimeout(timer);
          inFlight--;
        }
      });
    });
  });
  return {
    executed,
    async listen(): Promise<string> {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * An A2A agent (0.3 JSON-RPC, written by hand) whose answers cannot be used: under
 * `/<skill>/card.json` a card offering that one skill; `message/send` answers a completed task
 * whose artifact nests 5,000 levels (`deep_answer`) or is 2 MiB (`huge_answer`).
 */
function startHostileA2aAgent() {
  const sends: string[] = [];
  let base = '';
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const json = (text: string) => res.writeHead(200, { 'content-type': 'application/json' }).end(text);
      const skill = /^\/([a-z_]+)\/card\.json$/.exec(req.url ?? '')?.[1];
      if (req.method === 'GET' && skill)
        return json(
          JSON.stringify({
            name: skill,
            description: 'answers what cannot be used',
            url: `${base}/rpc`,
            protocolVersion: '0.3.0',
            preferredTransport: 'JSONRPC',
            version: '1.0.0',
            capabilities: {},
            defaultInputModes: ['application/json'],
            defaultOutputModes: ['application/json'],
            skills: [{ id: skill, name: skill, description: '', tags: [] }],
          }),
        );
      const rpc = JSON.parse(raw) as {
        id: unknown;
        method: string;
        params?: { message?: { parts?: { data?: { task_type?: string } }[] } };
      };
      const taskType = rpc.params?.message?.parts?.find((p) => p.data)?.data?.task_type ?? '';
      sends.push(taskType);
      // Written by hand: JSON.stringify throws on 5,000 levels.
      const data =
        taskType === 'deep_answer'
          ? `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`
          : `"${'y'.repeat(2 * 1024 * 1024)}"`;
      json(
        `{"jsonrpc":"2.0","id":${JSON.stringify(rpc.id)},"result":{"kind":"task","id":"a2a-${sends.length}","contextId":"c","status":{"state":"completed"},"artifacts":[{"artifactId":"a","parts":[{"kind":"data","data":${data}}]}]}}`,
      );
    });
  });
  return {
    /** The task types of the `message/send` requests received, in order. */
    sends,
    async listen(): Promise<string> {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      return base;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('external agents: stored, used after a dispatcher restart, removable (real PostgreSQL and NATS)', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let d: DispatcherHandle;
  const agent = startEchoAgent();
  let agentUrl: string;

  const register = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('register_agent'), input, { schema: agentHealthView });
  const unregister = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('unregister_agent'), input, { schema: unregisterAgentReply });
  const submit = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('submit'), input, { schema: taskSubmitReply });
  const execute = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('execute'), input, { schema: taskExecuteReply, timeoutMs: 20_000 });
  const get = (task_id: string): Promise<TaskView> =>
    request(nc, tasksSubject('get'), { task_id }, { schema: taskView });
  const appError = async (p: Promise<unknown>): Promise<AppError> => {
    try {
      await p;
    } catch (e) {
      if (isAppError(e)) return e;
      throw e;
    }
    assert.fail('expected an AppError');
  };

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'ext-agents-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'external-agents-test', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('external_agents'), max: 8 });
    store = new PostgresEventStore({ pool });
    await store.init();
    agentUrl = await agent.listen();
    d = await startDispatcher({ store, nats: nc, pool, logger, ...fast });
  });

  after(async () => {
    await d?.stop();
    await agent.close();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it('registered over NATS: stored, probed, and a task of its type completes on it; the reply carries no token', async () => {
    const view = await register({
      name: NAME,
      url: agentUrl,
      task_types: [TASK_TYPE],
      token: TOKEN,
      max_concurrency: 2,
      description: 'echoes',
      actor: 'apikey:tester',
    });
    assert.equal(view.agent, NAME);
    assert.equal(view.status, 'healthy');
    assert.deepEqual(view.task_types, [TASK_TYPE]);
    assert.deepEqual(
      view.instances.map((i) => [i.instance, i.kind, i.max_concurrency]),
      [[`http-${NAME}`, 'http', 2]],
    );
    assert.ok(!JSON.stringify(view).includes(TOKEN));

    // The read model follows the event (the delegation projections); the token is not in it.
    const row = await until(
      'the read model to show the agent',
      async () =>
        (
          await pool.query(
            `select url, task_types, max_concurrency, description from delegation.external_agents where name = $1`,
            [NAME],
          )
        ).rows[0],
    );
    assert.deepEqual(row, { url: agentUrl, task_types: [TASK_TYPE], max_concurrency: 2, description: 'echoes' });
    const columns = await pool.query(
      `select column_name from information_schema.columns where table_schema = 'delegation' and table_name = 'external_agents'`,
    );
    assert.ok(!columns.rows.some((c: { column_name: string }) => c.column_name === 'token'));
    // The token is kept apart, for the dispatcher alone.
    assert.deepEqual(
      (await pool.query(`select token from delegation_secrets.external_agent_tokens where name = $1`, [NAME])).rows,
      [{ token: TOKEN }],
    );

    const done = await execute({ task_type: TASK_TYPE, context: { echo: 'first' }, idempotency_key: 'ext-first' });
    assert.equal(done.agent, NAME);
    assert.equal(done.instance, `http-${NAME}`);
    assert.deepEqual(done.result, { echo: 'first' });
    assert.ok(agent.executed.includes(done.task_id));
  });

  it('a new dispatcher on the same database uses it without a new registration', async () => {
    await d.stop();
    d = await startDispatcher({ store, nats: nc, pool, logger, ...fast });
    // Loaded and probed before the dispatcher serves: the type is known and the agent healthy at once.
    const health = d.dispatcher.health().find((h) => h.agent === NAME);
    assert.equal(health?.status, 'healthy');
    const done = await execute({
      task_type: TASK_TYPE,
      context: { echo: 'after restart' },
      idempotency_key: 'ext-after-restart',
    });
    assert.equal(done.agent, NAME);
    assert.deepEqual(done.result, { echo: 'after restart' });
    assert.ok(agent.executed.includes(done.task_id));
  });

  it('a dispatcher stopped while its HTTP agent runs tasks: the new one counts those attempts (their requests went out) and runs them again, up to max_attempts', async () => {
    // 1. Two tasks held by the agent (their first request only), one of them allowed a single attempt.
    const twice = await submit({
      task_type: TASK_TYPE,
      context: { echo: 'twice', hold_first_ms: 10_000 },
      idempotency_key: 'ext-restart-twice',
    });
    const once = await submit({
      task_type: TASK_TYPE,
      context: { echo: 'once', hold_first_ms: 10_000 },
      max_attempts: 1,
      idempotency_key: 'ext-restart-once',
    });
    await until(
      'both tasks to reach the agent',
      () => agent.executed.includes(twice.task_id) && agent.executed.includes(once.task_id),
    );
    // 2. The dispatcher goes away mid-request; a new one recovers them, the agent still there.
    await d.stop();
    d = await startDispatcher({ store, nats: nc, pool, logger, ...fast });
    // 3. The first run counts: the task runs again, as its second attempt, and completes.
    const done = await until('the task run again to complete', async () => {
      const v = await get(twice.task_id);
      return v.status === 'completed' ? v : undefined;
    });
    assert.deepEqual(done.result, { echo: 'twice' });
    assert.equal(done.attempts, 2, 'both runs of the agent are attempts made');
    assert.equal(done.error, null, 'the abandoned attempt’s error stays in the log, not on the completed task');
    assert.equal(agent.executed.filter((id) => id === twice.task_id).length, 2);
    const events = await store.readStream(taskStreamId(twice.task_id));
    assert.deepEqual(
      events.map((e) => e.type),
      [
        'TaskSubmitted',
        'TaskQueued',
        'TaskAssigned',
        'TaskRetryScheduled',
        'TaskQueued',
        'TaskAssigned',
        'TaskCompleted',
      ],
    );
    assert.deepEqual(
      events
        .filter((e) => e.type === 'TaskRetryScheduled')
        .map((e) => e.data as { counted: boolean; attempts: number }),
      [
        {
          task_id: twice.task_id,
          agent: NAME,
          instance: `http-${NAME}`,
          assignment: 1,
          error: { code: 'unavailable', message: 'dispatcher restarted or partition taken over; attempt abandoned' },
          avoid_instance: false,
          counted: true,
          attempts: 1,
        },
      ],
    );
    assert.equal((events[5]!.data as { attempt: number }).attempt, 2);
    // The read model alike: the counted attempt, no error.
    await d.projections!.waitFor();
    assert.deepEqual(
      (await pool.query(`select status, attempts, error from delegation.tasks where task_id = $1`, [twice.task_id]))
        .rows,
      [{ status: 'completed', attempts: 1, error: null }],
    );
    // 4. The one allowed a single attempt has used it: it fails, and is not sent again.
    const failed = await get(once.task_id);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.attempts, 1);
    assert.equal(failed.error?.code, 'unavailable');
    assert.equal(agent.executed.filter((id) => id === once.task_id).length, 1);
  });

  it("a hostile answer fails its attempt as the agent's failure (unavailable, not the caller's validation or payload_too_large): nested past 64 levels or over 1 MiB; a 500 KB error message is kept cut and the task stays readable", async () => {
    const deep = await appError(
      execute({ task_type: TASK_TYPE, context: { answer: 'deep' }, idempotency_key: 'ext-deep', max_attempts: 1 }),
    );
    assert.equal(deep.code, 'unavailable');
    assert.match(deep.message, /nests deeper than 64 levels/);
    const huge = await appError(
      execute({ task_type: TASK_TYPE, context: { answer: 'huge' }, idempotency_key: 'ext-huge', max_attempts: 1 }),
    );
    assert.equal(huge.code, 'unavailable');
    assert.match(huge.message, /too large/);
    for (const e of [deep, huge])
      assert.equal(
        (await get((e.details as { task_id: string }).task_id)).error?.details?.['reason'],
        'agent_answer_unusable',
      );
    // Both counted against the agent (its breaker opens at the third in a row).
    const inst = d.dispatcher.health().find((h) => h.agent === NAME)!.instances[0]!;
    assert.match(String(inst.last_error), /too large/);
    // A success closes the count again, so that the tests after this one find the breaker closed.
    await execute({ task_type: TASK_TYPE, context: { echo: 'fine' }, idempotency_key: 'ext-after-hostile' });
    const long = await appError(
      execute({
        task_type: TASK_TYPE,
        context: { answer: 'long_error' },
        idempotency_key: 'ext-long-error',
        max_attempts: 1,
      }),
    );
    const taskId = (long.details as { task_id: string }).task_id;
    const view = await get(taskId);
    assert.equal(view.status, 'failed');
    assert.ok(view.error && view.error.message.length <= 2_000, `kept ${view.error?.message.length} characters`);
    assert.match(view.error.message, /^boom x+/);
  });

  it('a result the store refuses fails the task instead of leaving it assigned for good', async () => {
    const append = store.append.bind(store);
    store.append = (streamId, events, options) =>
      events.some((e) => e.type === 'TaskCompleted')
        ? Promise.reject(new UnstorableEventError(streamId, 'refused by the test'))
        : append(streamId, events, options);
    try {
      const refused = await appError(
        execute({ task_type: TASK_TYPE, context: { echo: 'x' }, idempotency_key: 'ext-unstorable', max_attempts: 1 }),
      );
      assert.equal(refused.code, 'validation');
      assert.match(refused.message, /the agent's result could not be recorded: refused by the test/);
    } finally {
      store.append = append;
    }
  });

  it('the audit events carry has_token and the actor, never the token', async () => {
    const events = await store.readAll({ streamPrefixes: [EXTERNAL_AGENT_STREAM_PREFIX] });
    assert.deepEqual(
      events.map((e) => [e.streamId, e.type]),
      [[externalAgentStreamId(NAME), 'ExternalAgentRegistered']],
    );
    const data = externalAgentRegisteredData.parse(events[0]!.data);
    assert.equal(data.has_token, true);
    assert.equal(data.url, agentUrl);
    assert.deepEqual(data.task_types, [TASK_TYPE]);
    assert.equal(events[0]!.metadata.actor, 'apikey:tester');
    // Nowhere in any stored event (data or metadata), in any stream.
    const all = await store.readAll({});
    assert.ok(all.length > 0);
    assert.ok(!JSON.stringify(all).includes(TOKEN), 'the token is in a stored event');
  });

  it("an A2A agent's answer nested past 64 levels or over 1 MiB is the agent's failure: unavailable, retried, counted against its breaker", async () => {
    const a2a = startHostileA2aAgent();
    const a2aUrl = await a2a.listen();
    try {
      for (const skill of ['deep_answer', 'huge_answer']) {
        const name = `a2a-${skill.replace('_', '-')}`;
        await register({
          name,
          a2a_card_url: `${a2aUrl}/${skill}/card.json`,
          token: 'a2a-tok',
          actor: 'apikey:tester',
        });
        const failed = await appError(
          execute({ task_type: skill, context: { n: 1 }, idempotency_key: `a2a-${skill}`, max_attempts: 3 }),
        );
        // Before: validation (400) or payload_too_large (413) at the first attempt, the caller blamed.
        assert.equal(failed.code, 'unavailable', failed.message);
        assert.ok(failed.retryable, 'a failure another attempt may not have');
        const view = await get((failed.details as { task_id: string }).task_id);
        assert.equal(view.status, 'failed');
        assert.equal(view.error?.code, 'unavailable');
        assert.equal(view.error?.details?.['reason'], 'agent_answer_unusable');
        assert.equal(view.attempts, 3);
        assert.equal(a2a.sends.filter((t) => t === skill).length, 3, 'each attempt reached the agent');
        // Three failures in a row: the breaker is open and the agent down for new tasks.
        const health = d.dispatcher.health().find((h) => h.agent === name)!;
        assert.equal(health.instances[0]?.breaker, 'open');
        assert.equal(health.status, 'down');
        assert.match(String(health.instances[0]?.last_error), skill === 'deep_answer' ? /nests deeper/ : /too large/);
      }
    } finally {
      for (const name of ['a2a-deep-answer', 'a2a-huge-answer']) await unregister({ name }).catch(() => undefined);
      await a2a.close();
    }
  });

  it('a URL with credentials is refused (they would land in events; the secret belongs in token); without a token, has_token is false', async () => {
    const refused = await appError(
      register({
        name: 'ext-userinfo',
        url: agentUrl.replace('http://', 'http://user:pa55word@'),
        task_types: ['ext_userinfo'],
      }),
    );
    assert.equal(refused.code, 'validation');
    assert.equal(
      (await pool.query(`select 1 from delegation.external_agents where name = 'ext-userinfo'`)).rowCount,
      0,
    );
    assert.deepEqual(await store.readStream(externalAgentStreamId('ext-userinfo')), []);

    await register({ name: 'ext-tokenless', url: agentUrl, task_types: ['ext_tokenless'] });
    const [e] = await store.readStream(externalAgentStreamId('ext-tokenless'));
    assert.equal(externalAgentRegisteredData.parse(e!.data).has_token, false);
    assert.equal(e!.metadata.actor, 'system:dispatcher');
    assert.deepEqual(await unregister({ name: 'ext-tokenless' }), { removed: 'ext-tokenless' });
  });

  it('unregistered: its running task goes back to the queue, it gets no new task, and a new dispatcher does not load it', async () => {
    // 1. A task is running there (the agent holds the request open).
    const running = await submit({ task_type: TASK_TYPE, context: { echo: 'held', hold_ms: 10_000 } });
    assert.equal(running.agent, NAME);
    await until('the held task to reach the agent', () => agent.executed.includes(running.task_id));
    const executedBefore = agent.executed.length;

    // 2. Removal: the row and the token go, the running task is handed back as for a lost instance.
    assert.deepEqual(await unregister({ name: NAME, actor: 'apikey:tester' }), { removed: NAME });
    await until(
      'the read model to drop the agent',
      async () => (await pool.query(`select 1 from delegation.external_agents where name = $1`, [NAME])).rowCount === 0,
    );
    assert.equal(
      (await pool.query(`select 1 from delegation_secrets.external_agent_tokens where name = $1`, [NAME])).rowCount,
      0,
    );
    // No other agent offers its type: it would wait in the queue for good, so it ends, canceled
    // by the removal's actor with the reason (before, it stayed queued across restarts).
    const ended = await until('the running task to end', async () => {
      const v = await get(running.task_id);
      return v.status === 'canceled' ? v : undefined;
    });
    assert.deepEqual(ended.failed_instances, [`http-${NAME}`]);
    const canceled = (await store.readStream(taskStreamId(running.task_id))).find((e) => e.type === 'TaskCanceled');
    assert.equal(canceled?.metadata.actor, 'apikey:tester');
    assert.match(
      String((canceled?.data as { reason?: string }).reason),
      new RegExp(`no agent takes task type ${TASK_TYPE} since ${NAME} was removed`),
    );
    assert.equal(ended.canceled?.by, 'apikey:tester', 'the task view names who canceled it');
    assert.equal(ended.canceled?.reason, (canceled?.data as { reason?: string }).reason);
    assert.ok(!d.dispatcher.health().some((h) => h.agent === NAME));

    // 3. No capable agent is left for its type: a new task of it is refused as an unknown type (the dispatcher's answer when nobody offers it).
    const refused = await appError(submit({ task_type: TASK_TYPE, context: { echo: 'nobody' } }));
    assert.equal(refused.code, 'validation');
    assert.match(refused.message, /unknown task_type ext_echo/);
    assert.equal(agent.executed.length, executedBefore, 'the removed agent got no new request');

    // 4. The removal is recorded.
    const types = (await store.readStream(externalAgentStreamId(NAME))).map((e) => [e.type, e.metadata.actor]);
    assert.deepEqual(types, [
      ['ExternalAgentRegistered', 'apikey:tester'],
      ['ExternalAgentRemoved', 'apikey:tester'],
    ]);

    // 5. A new dispatcher does not bring it back.
    await d.stop();
    d = await startDispatcher({ store, nats: nc, pool, logger, ...fast });
    assert.ok(!d.dispatcher.health().some((h) => h.agent === NAME));
    assert.ok(!d.dispatcher.knownTaskTypes().includes(TASK_TYPE));
    assert.equal((await get(running.task_id)).status, 'canceled');
  });

  it('built-in agent names are refused (400); removing a name never registered is a 404', async () => {
    const reg = await appError(register({ name: 'data_analyst', url: agentUrl, task_types: [TASK_TYPE] }));
    assert.equal(reg.code, 'validation');
    assert.match(reg.message, /built-in/);
    const del = await appError(unregister({ name: 'customer_success' }));
    assert.equal(del.code, 'validation');
    assert.match(del.message, /built-in/);
    const unknown = await appError(unregister({ name: 'never-registered' }));
    assert.equal(unknown.code, 'not_found');
    // A refused registration stored nothing.
    assert.equal(
      (await pool.query(`select 1 from delegation.external_agents where name = 'data_analyst'`)).rowCount,
      0,
    );
  });
  it('the read model is a projection: dropped and rebuilt from the log, it has the same rows', async () => {
    await register({ name: 'ext-rebuild-a', url: agentUrl, task_types: ['ext_rebuild'], max_concurrency: 3 });
    await register({ name: 'ext-rebuild-b', url: agentUrl, task_types: ['ext_rebuild'], description: 'second' });
    await register({ name: 'ext-rebuild-a', url: agentUrl, task_types: ['ext_rebuild', 'ext_more'] });
    await unregister({ name: 'ext-rebuild-b' });
    const rows = () =>
      pool
        .query(
          `select name, url, task_types, max_concurrency, description, registered_at, updated_at, a2a_card_url
             from delegation.external_agents order by name`,
        )
        .then((r) => r.rows);
    const projection = d.projections!;
    await projection.waitFor();
    const before = await rows();
    assert.ok(before.some((r: { name: string }) => r.name === 'ext-rebuild-a'));
    assert.ok(!before.some((r: { name: string }) => r.name === 'ext-rebuild-b'));
    await pool.query('truncate delegation.external_agents');
    await projection.rebuild('delegation.external_agents');
    await projection.waitFor();
    assert.deepEqual(await rows(), before);
    await unregister({ name: 'ext-rebuild-a' });
  });
  it('a removal and a registration of one name racing through two dispatchers: the token is there exactly when the agent is', async () => {
    // A second dispatcher on the same database and NATS: requests of the queue group go to either.
    const d2 = await startDispatcher({ store, nats: nc, pool, logger, ...fast });
    const name = 'ext-race';
    const tokenRow = async () =>
      (
        await pool.query<{ token: string }>(
          `select token from delegation_secrets.external_agent_tokens where name = $1`,
          [name],
        )
      ).rows[0]?.token;
    try {
      await register({ name, url: agentUrl, task_types: ['ext_race'], token: 'race-0' });
      for (let round = 1; round <= 15; round++) {
        const token = `race-${round}`;
        const [removed, registered] = await Promise.allSettled([
          unregister({ name }),
          register({ name, url: agentUrl, task_types: ['ext_race'], token }),
        ]);
        assert.equal(
          registered.status,
          'fulfilled',
          `round ${round}: the registration succeeds: ${registered.status === 'rejected' ? `${String(registered.reason)} ${JSON.stringify((registered.reason as AppError).details)}` : ''}`,
        );
        const last = (await store.readStream(externalAgentStreamId(name), { direction: 'backwards', maxCount: 1 }))[0];
        const stored = await tokenRow();
        if (last?.type === 'ExternalAgentRegistered')
          assert.equal(stored, token, `round ${round}: registered last, with its token (removal ${removed.status})`);
        else assert.equal(stored, undefined, `round ${round}: removed last, no token left behind`);
        if (last?.type !== 'ExternalAgentRegistered')
          await register({ name, url: agentUrl, task_types: ['ext_race'], token: `race-${round}-again` });
      }
    } finally {
      await unregister({ name }).catch(() => undefined);
      await d2.stop();
    }
  });
  it('many registrations at once through a dispatcher whose pool is small all complete (no lock holds a connection the store needs)', async () => {
    // A dispatcher whose event store and tables share one pool of 2 connections, as the launcher's share one pool.
    const small = new pg.Pool({ connectionString: await freshDatabase('external_agents'), max: 2 });
    const smallStore = new PostgresEventStore({ pool: small });
    const names = Array.from({ length: 8 }, (_, i) => `ext-many-${i}`);
    let d3: DispatcherHandle | undefined;
    try {
      await smallStore.init();
      d3 = await startDispatcher({ store: smallStore, nats: nc, pool: small, logger, ...fast });
      const views = await Promise.race([
        Promise.all(
          names.map((name) =>
            d3!.dispatcher.registerAgent({ name, url: agentUrl, task_types: ['ext_many'], token: `tok-${name}` }),
          ),
        ),
        // unref: the guard must not hold the file's process for 20 s once the registrations are done.
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('registrations hung')), 20_000).unref()),
      ]);
      assert.deepEqual(
        views.map((v) => v.agent),
        names,
      );
      const tokens = await small.query<{ n: number }>(
        `select count(*)::int as n from delegation_secrets.external_agent_tokens where name like 'ext-many-%'`,
      );
      assert.equal(tokens.rows[0]!.n, names.length);
    } finally {
      await d3?.stop();
      await smallStore.close();
      await small.end();
    }
  });
  it('an installation that kept tokens in the read model has them moved to the secrets table, and the column dropped', async () => {
    await pool.query(`create schema legacy_agents;
      create table legacy_agents.external_agents (name text primary key, url text not null, task_types text[] not null,
        token text, max_concurrency int not null, description text not null default '',
        registered_at timestamptz not null, updated_at timestamptz not null, a2a_card_url text);
      insert into legacy_agents.external_agents values
        ('old-a', 'http://a.example', '{t}', 'tok-a', 1, '', now(), now(), null),
        ('old-b', 'http://b.example', '{t}', null, 1, '', now(), now(), null)`);
    await ensureExternalAgentsTable(pool, 'legacy_agents');
    await ensureExternalAgentsTable(pool, 'legacy_agents'); // idempotent
    assert.deepEqual(
      (await pool.query(`select name, token from legacy_agents_secrets.external_agent_tokens order by name`)).rows,
      [{ name: 'old-a', token: 'tok-a' }],
    );
    const columns = await pool.query(
      `select column_name from information_schema.columns where table_schema = 'legacy_agents' and table_name = 'external_agents'`,
    );
    assert.ok(!columns.rows.some((c: { column_name: string }) => c.column_name === 'token'));
    assert.equal((await pool.query(`select 1 from legacy_agents.external_agents`)).rowCount, 2);
  });
});
