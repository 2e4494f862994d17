// An agent on a host whose wall clock is an hour ahead of the dispatcher's (roles on separate
// hosts). Sent only the attempt's deadline, an instant by the dispatcher's clock, such an agent
// read it as an hour past and stopped every task at once, each a timed-out attempt. The agent's
// clock is moved here only while it takes the task (Date.now, as its host's would read), the
// dispatcher's not at all.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { z } from 'zod';
import { closeNats, connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import { taskStreamId } from '@switchyard/domain';
import { taskExecuteReply, tasksSubject } from '@switchyard/contracts';
import { AgentRuntime, startAgent, startAgentHttp, type AgentHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from './index.js';

const logger = createLogger('agent-clock-int', process.env.LOG_LEVEL ?? 'silent');
const fast = {
  pollIntervalMs: 100,
  healthIntervalMs: 200,
  discoveryIntervalMs: 300,
  discoveryWaitMs: 150,
  probeTimeoutMs: 500,
};
const AN_HOUR_MS = 3_600_000;

/** The runtime takes each task as on a host whose clock is `aheadMs` ahead of this one. */
function onHostAhead(runtime: AgentRuntime, aheadMs: number): void {
  const run = runtime.run.bind(runtime);
  runtime.run = (req, onAdmitted) => {
    const realNow = Date.now;
    Date.now = () => realNow() + aheadMs;
    try {
      return run(req, onAdmitted); // its timer is armed before the handler's first await
    } finally {
      Date.now = realNow;
    }
  };
}

describe("dispatcher: an agent whose host's clock is an hour ahead", () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let d: DispatcherHandle;
  let agent: AgentHandle;

  const execute = (input: Record<string, unknown>) =>
    request(nc, tasksSubject('execute'), input, { schema: taskExecuteReply, timeoutMs: 30_000 });
  const eventTypes = async (id: string) => (await store.readStream(taskStreamId(id))).map((e) => e.type);

  before(async () => {
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'agent-clock-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    nc = await connectNats({ url: natsServer.url, name: 'agent-clock-test', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('agent_clock'), max: 6 });
    store = new PostgresEventStore({ pool });
    await store.init();
    d = await startDispatcher({ store, nats: nc, pool, logger, egress: { allowCidrs: ['127.0.0.0/8'] }, ...fast });
    agent = await startAgent({ nats: nc, pool, agent: 'data_analyst', instanceId: 'ahead-1', logger, noop: true });
    onHostAhead(agent.runtime, AN_HOUR_MS);
    await until(
      'the dispatcher to see ahead-1',
      () =>
        d.dispatcher.health().some((a) => a.instances.some((i) => i.instance === 'ahead-1' && i.healthy)) || undefined,
    );
  });

  after(async () => {
    await d?.stop();
    await agent?.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    rmSync(natsDir, { recursive: true, force: true });
  });

  it('over NATS: runs the task to its end in one attempt', async () => {
    const r = await execute({
      task_type: 'noop',
      context: { sleep_ms: 300, echo: 'nats' },
      agent: 'data_analyst',
      max_attempts: 1,
      idempotency_key: 'ahead-nats',
    });
    assert.deepEqual(r.result, { echo: 'nats', slept_ms: 300 });
    assert.ok(!(await eventTypes(r.task_id)).includes('TaskTimedOut'));
  });

  it('over the HTTP agent contract: runs the task to its end in one attempt', async () => {
    const runtime = new AgentRuntime({
      agent: 'automation_specialist',
      instanceId: 'ahead-h',
      pool,
      logger,
      noop: true,
    });
    onHostAhead(runtime, AN_HOUR_MS);
    const http = await startAgentHttp({ runtime, port: 0, logger });
    try {
      await request(
        nc,
        tasksSubject('register_agent'),
        { name: 'ahead-http', url: http.url, task_types: ['noop'] },
        { schema: z.unknown() },
      );
      const r = await execute({
        task_type: 'noop',
        context: { sleep_ms: 300, echo: 'http' },
        agent: 'ahead-http',
        max_attempts: 1,
        idempotency_key: 'ahead-http',
      });
      assert.deepEqual(r.result, { echo: 'http', slept_ms: 300 });
      assert.ok(!(await eventTypes(r.task_id)).includes('TaskTimedOut'));
    } finally {
      await http.close();
    }
  });
});
