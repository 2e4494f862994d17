import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { scratchDataDir, startNatsCluster, type NatsCluster } from '@switchyard/testing';
import { testLogger } from '../spec-support.js';
import { NatsKvCallCache, SHARED_CALL_TIMEOUT_MS } from './shared-call-cache.js';

const result = (text: string): CallToolResult => ({ content: [{ type: 'text', text }] });

/**
 * The connectors' shared call bucket on a real 3-node JetStream cluster: it takes the configured
 * replicas, and a bucket whose only copy is on a dead node holds a call back at most about
 * SHARED_CALL_TIMEOUT_MS before the call runs without it.
 */
describe('the shared call bucket on a 3-node cluster', () => {
  const logger = testLogger();
  let cluster: NatsCluster;
  let nc: NatsConnection;

  before(async () => {
    cluster = await startNatsCluster({ dir: path.join(scratchDataDir('shared-calls-cluster-'), 'cluster'), nodes: 3 });
    nc = await connectNats({ url: cluster.url, name: 'shared-calls-cluster', logger });
  });
  after(async () => {
    await closeNats(nc).catch(() => undefined);
    await cluster?.stop();
  });

  it('a connectors process that makes the bucket gives it NATS_STREAM_REPLICAS copies; one with fewer is raised', async () => {
    const made = `TEST_CALLS_R3_${process.pid}`;
    const cache = new NatsKvCallCache({ nats: nc, logger, bucket: made, replicas: 3 });
    assert.equal((await cache.run({ server: 's', tool: 't', key: 'k1' }, async () => result('one'))).content.length, 1);
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(`KV_${made}`)).config.num_replicas, 3);

    const old = `TEST_CALLS_R1_${process.pid}`;
    await new Kvm(nc).create(old, { history: 1, ttl: 600_000 });
    await new NatsKvCallCache({ nats: nc, logger, bucket: old, replicas: 3 }).bucket();
    assert.equal((await jsm.streams.info(`KV_${old}`)).config.num_replicas, 3);
    // A role's own NATS user may not change it: used as it is.
    const kept = `TEST_CALLS_KEPT_${process.pid}`;
    await new Kvm(nc).create(kept, { history: 1, ttl: 600_000 });
    await new NatsKvCallCache({ nats: nc, logger, bucket: kept, replicas: 3, manage: false }).bucket();
    assert.equal((await jsm.streams.info(`KV_${kept}`)).config.num_replicas, 1);
  });

  it("a bucket whose only copy is on a dead node: the call runs without it within about SHARED_CALL_TIMEOUT_MS, not JetStream's 5 s", async () => {
    const name = `TEST_CALLS_LOST_${process.pid}`;
    await new Kvm(nc).create(name, { history: 1, ttl: 600_000 });
    const leader = (await (await jetstreamManager(nc)).streams.info(`KV_${name}`)).cluster?.leader;
    const host = cluster.nodes.find((n) => n.name === leader);
    assert.ok(host, `the bucket's node (${leader})`);
    // The connectors process is connected to another node, which survives.
    const other = cluster.nodes.find((n) => n !== host)!;
    const own = await connectNats({ url: other.url, name: 'connectors-on-survivor', logger });
    try {
      const cache = new NatsKvCallCache({ nats: own, logger, bucket: name, replicas: 1 });
      await cache.run({ server: 's', tool: 't', key: 'before' }, async () => result('before'));
      await host.kill();
      try {
        let ran = 0;
        for (const key of ['a', 'b']) {
          const t0 = Date.now();
          const r = await cache.run({ server: 's', tool: 't', key }, async () => {
            ran++;
            return result(key);
          });
          const took = Date.now() - t0;
          assert.deepEqual(r, result(key));
          assert.ok(took < SHARED_CALL_TIMEOUT_MS + 700, `call ${key} held ${took} ms`);
        }
        assert.equal(ran, 2, 'each call ran (without the bucket)');
      } finally {
        await host.restart();
      }
    } finally {
      await closeNats(own).catch(() => undefined);
    }
  });
});
