import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { EVENTS_STREAM, MCP_CALLS_BUCKET } from '@switchyard/contracts';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { pino } from 'pino';
import { createLogger, type Logger } from '@switchyard/platform';
import { scratchDataDir, startNatsCluster, type NatsCluster } from '@switchyard/testing';
import { setUpNatsStreams } from './nats-streams.js';

const logger = createLogger('nats-streams-int', 'silent');
const BUCKET_STREAM = `KV_${MCP_CALLS_BUCKET}`;

/** The stream's replica count as configured and as the cluster runs it (leader + followers). */
async function replicasOf(nc: NatsConnection, stream: string): Promise<{ configured: number; running: number }> {
  const info = await (await jetstreamManager(nc)).streams.info(stream);
  return { configured: info.config.num_replicas, running: 1 + (info.cluster?.replicas?.length ?? 0) };
}

async function eventually<T>(f: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('JetStream setup on a 3-node cluster: every stream and bucket gets NATS_STREAM_REPLICAS', () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;

  before(async () => {
    cluster = await startNatsCluster({ dir: path.join(scratchDataDir('nats-streams-'), 'cluster'), nodes: 3 });
    nc = await connectNats({ url: cluster.url, name: 'nats-streams-test', logger });
  });
  after(async () => {
    await closeNats(nc).catch(() => undefined);
    await cluster?.stop();
  });

  it('a fresh setup with replicas 3 makes the events stream and the call bucket R3', async () => {
    await setUpNatsStreams(nc, { replicas: 3, logger });
    for (const stream of [EVENTS_STREAM, BUCKET_STREAM]) {
      const r = await eventually(
        () => replicasOf(nc, stream),
        (v) => v.running === 3,
      );
      assert.deepEqual(r, { configured: 3, running: 3 }, stream);
    }
  });

  it('a bucket made R1 before (a connectors process created it) is raised to R3, and the change is logged', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(BUCKET_STREAM);
    // What a connectors process without the setting made: one copy, on one node.
    await new Kvm(nc).create(MCP_CALLS_BUCKET, { history: 1, ttl: 600_000 });
    const kv = await new Kvm(nc).open(MCP_CALLS_BUCKET);
    await kv.put('c.kept', '{"state":"done"}');
    assert.equal((await replicasOf(nc, BUCKET_STREAM)).configured, 1);

    const lines: unknown[] = [];
    const recording = pino(
      { level: 'info' },
      { write: (l: string) => void lines.push(JSON.parse(l)) },
    ) as unknown as Logger;
    await setUpNatsStreams(nc, { replicas: 3, logger: recording });
    const r = await eventually(
      () => replicasOf(nc, BUCKET_STREAM),
      (v) => v.running === 3,
    );
    assert.deepEqual(r, { configured: 3, running: 3 });
    assert.equal((await kv.get('c.kept'))?.string(), '{"state":"done"}', 'the entries stay');
    const changed = lines.find((l) => (l as { msg?: string }).msg === 'updated JetStream KV bucket') as
      { changed: { replicas: unknown } } | undefined;
    assert.deepEqual(changed?.changed.replicas, { from: 1, to: 3 });

    // A process started without the setting (replicas 1) takes no copies away.
    await setUpNatsStreams(nc, { replicas: 1, logger });
    assert.equal((await replicasOf(nc, BUCKET_STREAM)).configured, 3);
  });
});
