import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { closeNats, connectNats, request, serviceClient, type NatsConnection } from '@switchyard/messaging';
import {
  createLogger,
  freePort,
  isAppError,
  newId,
  startNatsServer,
  type NatsServerHandle,
} from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import {
  agentCancelReply,
  agentCapabilitiesReply,
  agentCardJsonSchema,
  agentExecuteReply,
  agentInstanceSubject,
  agentLoadReply,
  agentServiceName,
  agentSubject,
  startAgent,
  startAgentHttp,
  type AgentHandle,
} from './index.js';

/** Agent services on a real nats-server of this suite's own (nothing else registers agents there). */
const logger = createLogger('agent-service-int', process.env.LOG_LEVEL ?? 'silent');

describe('agents as NATS services', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let a1: AgentHandle;
  let a2: AgentHandle;
  let solo: AgentHandle;

  const exec = (subject: string, input: Record<string, unknown>) =>
    request(nc, subject, { task_id: newId(), attempt: 1, ...input }, { schema: agentExecuteReply, timeoutMs: 15_000 });

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'agent-svc-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'agent-service-test', logger });
    // No demo data: every call here is refused before a query, or is the noop task.
    pool = new pg.Pool({ connectionString: await freshDatabase('agent_svc'), max: 2 });
    a1 = await startAgent({ nats: nc, pool, agent: 'data_analyst', instanceId: 'da-1', logger, noop: true });
    a2 = await startAgent({ nats: nc, pool, agent: 'data_analyst', instanceId: 'da-2', logger, noop: true });
    solo = await startAgent({
      nats: nc,
      pool,
      agent: 'customer_success',
      instanceId: 'cs-1',
      logger,
      noop: true,
      maxConcurrency: 1,
    });
  });

  after(async () => {
    await Promise.all([a1, a2, solo].map((a) => a?.stop()));
    await closeNats(nc);
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it('is discoverable with $SRV.INFO/PING: name, version, the capability card in the metadata', async () => {
    const infos = [];
    for await (const i of await serviceClient(nc, { timeoutMs: 500 }).info(agentServiceName('data_analyst')))
      infos.push(i);
    assert.deepEqual(infos.map((i) => i.metadata?.instance).sort(), ['da-1', 'da-2']);
    const info = infos[0]!;
    assert.equal(info.name, 'agent-data-analyst');
    assert.equal(info.version, '1.0.0');
    const card = agentCardJsonSchema.parse(JSON.parse(info.metadata!.card!));
    assert.deepEqual(card.taskTypes.map((t) => t.type).sort(), ['customer_segmentation', 'noop', 'revenue_analysis']);
    assert.ok(card.taskTypes.find((t) => t.type === 'revenue_analysis')!.inputSchema);
    const pings = [];
    for await (const p of await serviceClient(nc, { timeoutMs: 500 }).ping()) pings.push(p.name);
    assert.deepEqual(pings.sort(), ['agent-customer-success', 'agent-data-analyst', 'agent-data-analyst']);
    const caps = await request(nc, agentSubject('data_analyst', 'capabilities'), undefined, {
      schema: agentCapabilitiesReply,
    });
    assert.equal(caps.card.name, 'data_analyst');
  });

  it('instances share the agent subject (queue group); the instance subject reaches only that instance', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++)
      seen.add((await exec(agentSubject('data_analyst', 'execute'), { task_type: 'noop', context: {} })).instance);
    assert.deepEqual([...seen].sort(), ['da-1', 'da-2']);
    for (let i = 0; i < 5; i++)
      assert.equal(
        (
          await exec(agentInstanceSubject('data_analyst', 'da-2', 'execute'), {
            task_type: 'noop',
            context: { echo: i },
          })
        ).instance,
        'da-2',
      );
    const [l1, l2] = await Promise.all(
      ['da-1', 'da-2'].map((id) =>
        request(nc, agentInstanceSubject('data_analyst', id, 'load'), undefined, { schema: agentLoadReply }),
      ),
    );
    assert.equal(l1!.completed + l2!.completed, 45);
    assert.equal(l1!.in_flight + l2!.in_flight, 0);
    assert.equal(l2!.max_concurrency, 4);
  });

  it('bad context is a 400 naming the field; an unknown task type lists the valid ones', async () => {
    await assert.rejects(
      exec(agentSubject('data_analyst', 'execute'), { task_type: 'revenue_analysis', context: { timeframe: '12x' } }),
      (e) => {
        assert.ok(isAppError(e));
        assert.equal(e.code, 'validation');
        assert.match(e.message, /context\.timeframe/);
        return true;
      },
    );
    // An alias reaches its canonical type's schema (not "does not handle"): analyze_revenue is revenue_analysis.
    await assert.rejects(
      exec(agentSubject('data_analyst', 'execute'), { task_type: 'analyze_revenue', context: { timeframe: '12x' } }),
      (e) => {
        assert.ok(isAppError(e));
        assert.equal(e.code, 'validation');
        assert.match(e.message, /invalid context for analyze_revenue: context\.timeframe/);
        return true;
      },
    );
    await assert.rejects(
      exec(agentSubject('data_analyst', 'execute'), { task_type: 'support_response', context: {} }),
      (e) => {
        assert.ok(isAppError(e));
        assert.equal(e.code, 'validation');
        assert.match(e.message, /revenue_analysis/);
        return true;
      },
    );
  });

  it('beyond max concurrency a task is refused as busy (unavailable)', async () => {
    const subject = agentInstanceSubject('customer_success', 'cs-1', 'execute');
    const first = exec(subject, { task_type: 'noop', context: { sleep_ms: 800 } });
    await new Promise((r) => setTimeout(r, 100));
    await assert.rejects(exec(subject, { task_type: 'noop', context: {} }), (e) => {
      assert.ok(isAppError(e));
      assert.equal(e.code, 'unavailable');
      assert.equal(e.details.reason, 'busy');
      return true;
    });
    assert.equal((await first).instance, 'cs-1');
  });

  it('the attempt number fences a task here: a higher attempt supersedes a running lower one; a lower one is refused', async () => {
    const taskId = newId();
    const subject = agentInstanceSubject('data_analyst', 'da-1', 'execute');
    const send = (attempt: number, sleep_ms: number) =>
      request(
        nc,
        subject,
        { task_id: taskId, attempt, task_type: 'noop', context: { sleep_ms, echo: `a${attempt}` } },
        { schema: agentExecuteReply, timeoutMs: 15_000 },
      );
    const first = send(1, 20_000);
    const superseded = assert.rejects(
      first,
      (e) => isAppError(e) && e.code === 'illegal_state' && /superseded/.test(e.message),
    );
    await new Promise((r) => setTimeout(r, 100));
    // A new owner's attempt 2 (after a takeover) replaces attempt 1, which a stale owner sent.
    const second = await send(2, 0);
    assert.deepEqual(second.result, { echo: 'a2', slept_ms: 0 });
    await superseded;
    // The stale owner sends attempt 1 again (paused, resumed): refused, nothing runs.
    await assert.rejects(
      send(1, 0),
      (e) => isAppError(e) && e.code === 'illegal_state' && /superseded by attempt 2/.test(e.message),
    );
  });

  it('cancel aborts the handler; a deadline aborts it too', async () => {
    const taskId = newId();
    const running = request(
      nc,
      agentInstanceSubject('data_analyst', 'da-1', 'execute'),
      { task_id: taskId, task_type: 'noop', context: { sleep_ms: 20_000 } },
      {
        schema: agentExecuteReply,
        timeoutMs: 15_000,
      },
    );
    const outcome = assert.rejects(
      running,
      (e) => isAppError(e) && e.code === 'illegal_state' && /canceled/.test(e.message),
    );
    await new Promise((r) => setTimeout(r, 100));
    const c = await request(
      nc,
      agentInstanceSubject('data_analyst', 'da-1', 'cancel'),
      { task_id: taskId },
      { schema: agentCancelReply },
    );
    assert.equal(c.canceled, true);
    await outcome;
    const load = await request(nc, agentInstanceSubject('data_analyst', 'da-1', 'load'), undefined, {
      schema: agentLoadReply,
    });
    assert.equal(load.canceled, 1);
    await assert.rejects(
      exec(agentInstanceSubject('data_analyst', 'da-1', 'execute'), {
        task_type: 'noop',
        context: { sleep_ms: 20_000 },
        deadline: new Date(Date.now() + 200).toISOString(),
      }),
      (e) => isAppError(e) && e.code === 'timeout',
    );
  });

  // A deadline is an instant by the sender's clock: on a host an hour ahead of it, one an hour past.
  it("the time left as sent decides, not the sender's deadline by this host's clock (NATS and HTTP)", async () => {
    const anHourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const inAnHour = new Date(Date.now() + 3_600_000).toISOString();
    const subject = agentInstanceSubject('data_analyst', 'da-1', 'execute');
    const done = await exec(subject, {
      task_type: 'noop',
      context: { sleep_ms: 200, echo: 'ahead' },
      deadline: anHourAgo,
      remaining_ms: 5_000,
    });
    assert.deepEqual(done.result, { echo: 'ahead', slept_ms: 200 });
    // An hour behind: the agent stops itself when the time left runs out, not in an hour.
    await assert.rejects(
      exec(subject, { task_type: 'noop', context: { sleep_ms: 20_000 }, deadline: inAnHour, remaining_ms: 200 }),
      (e) => isAppError(e) && e.code === 'timeout',
    );
    const http = await startAgentHttp({ runtime: a1.runtime, port: 0, host: '127.0.0.1', token: 'tok', logger });
    try {
      const res = await fetch(`${http.url}/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer tok' },
        body: JSON.stringify({
          task_type: 'noop',
          context: { sleep_ms: 200, echo: 'http' },
          deadline: anHourAgo,
          remaining_ms: 5_000,
        }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(((await res.json()) as { result: unknown }).result, { echo: 'http', slept_ms: 200 });
    } finally {
      await http.close();
    }
  });

  it('the HTTP agent contract: /health, bearer token on /execute, same handlers', async () => {
    const http = await startAgentHttp({ runtime: a1.runtime, port: 0, host: '127.0.0.1', token: 'tok', logger });
    try {
      const h = await fetch(`${http.url}/health`);
      assert.equal(h.status, 200);
      const hb = (await h.json()) as { status: string; agent: string; task_types: string[] };
      assert.equal(hb.agent, 'data_analyst');
      assert.ok(hb.task_types.includes('revenue_analysis'));
      const post = (body: unknown, token?: string) =>
        fetch(`${http.url}/execute`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify(body),
        });
      assert.equal((await post({ task_type: 'noop', context: {} })).status, 401);
      assert.equal((await post({ task_type: 'noop', context: {} }, 'wrong')).status, 401);
      const ok = await post({ task_type: 'noop', context: { echo: 'hi' } }, 'tok');
      assert.equal(ok.status, 200);
      const body = (await ok.json()) as { status: string; result: unknown };
      assert.equal(body.status, 'completed');
      assert.deepEqual(body.result, { echo: 'hi', slept_ms: 0 });
      const bad = await post({ task_type: 'revenue_analysis', context: { timeframe: '12x' } }, 'tok');
      assert.equal(bad.status, 400);
      assert.match(((await bad.json()) as { error: { message: string } }).error.message, /context\.timeframe/);
      const aliased = await post({ task_type: 'analyze_revenue', context: { timeframe: '12x' } }, 'tok');
      assert.equal(aliased.status, 400);
      assert.match(((await aliased.json()) as { error: { message: string } }).error.message, /context\.timeframe/);
    } finally {
      await http.close();
    }
  });
});
