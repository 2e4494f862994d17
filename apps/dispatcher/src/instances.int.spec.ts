import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { z } from 'zod';
import { addService, closeNats, connectNats, serviceClient, type NatsConnection } from '@switchyard/messaging';
import { createLogger, EgressGuard } from '@switchyard/platform';
import { freshDatabase, testNatsUrl } from '@switchyard/testing';
import { startAgent, type AgentHandle } from '@switchyard/agents';
import { InstanceRegistry, type AgentInstance } from './instances.js';

const logger = createLogger('instances-int', process.env.LOG_LEVEL ?? 'silent');

/**
 * Any service role may answer service discovery, but only the agents may serve an agent's
 * subjects: an instance is taken as up only once it answers on its own `load` subject. Real NATS,
 * a real agent, and a service that copies its discovery answer under another instance name.
 */
describe('InstanceRegistry: an answer to discovery alone does not make an agent instance', () => {
  let nc: NatsConnection;
  let pool: pg.Pool;
  let real: AgentHandle;
  const stops: (() => Promise<unknown>)[] = [];

  before(async () => {
    nc = await connectNats({ url: await testNatsUrl(), name: 'instances-test', logger });
    pool = new pg.Pool({ connectionString: await freshDatabase('instances'), max: 2 });
    real = await startAgent({ nats: nc, pool, agent: 'data_analyst', instanceId: 'real-1', logger, noop: true });
  });

  after(async () => {
    for (const stop of stops) await stop().catch(() => undefined);
    await real?.stop();
    await pool?.end();
    await closeNats(nc);
  });

  it('the real instance is up after discovery; one that only answers discovery is not, and stays down', async () => {
    // The real instance's discovery answer, copied under the name of an instance nobody serves.
    let realInfo: { name: string; metadata: Record<string, string> } | undefined;
    for await (const i of await serviceClient(nc, { timeoutMs: 300 }).info())
      if (i.metadata?.['instance'] === 'real-1') realInfo = { name: i.name, metadata: i.metadata };
    assert.ok(realInfo, 'the real agent answers discovery');
    const impostor = await addService(nc, {
      name: realInfo.name,
      version: '1.0.0',
      logger,
      metadata: { ...realInfo.metadata, instance: 'impostor-1' },
      // Serves something (a service must), not the instance's subjects.
      endpoints: { other: { subject: 'test.instances.impostor.other', schema: z.unknown(), handler: () => ({}) } },
    });
    stops.push(() => impostor.stop());

    const up: string[] = [];
    const registry = new InstanceRegistry({
      nats: nc,
      logger,
      egress: new EgressGuard({}),
      discoveryWaitMs: 300,
      probeTimeoutMs: 500,
      onUp: (i: AgentInstance) => void up.push(i.instance),
      onDown: () => undefined,
    });
    await registry.discover();
    const byInstance = (name: string) => [...registry.instances.values()].find((i) => i.instance === name);
    assert.equal(byInstance('real-1')?.healthy, true);
    assert.equal(byInstance('impostor-1')?.healthy, false);
    // Discovered again, it is still not up (before, each discovery brought it back).
    await registry.discover();
    assert.equal(byInstance('impostor-1')?.healthy, false);
    assert.deepEqual(up, ['real-1']);
  });
});
