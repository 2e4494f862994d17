/**
 * PushDelivery's bound on what waits per task: a hand-off that does not answer (the automation
 * server down) must not let a chatty task pile up its notifications without end. Pure unit: the
 * config store and the automation server are in-memory stand-ins.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { StreamResponse } from '@a2a-js/sdk';
import type { ServerCallContext } from '@a2a-js/sdk/server';
import { createLogger } from '@switchyard/platform';
import { MAX_WAITING_PER_TASK, PushDelivery, type ToolCaller } from './push.js';
import type { PgPushNotificationStore } from './store.js';

const artifact = (taskId: string, n: number): StreamResponse =>
  ({
    payload: {
      $case: 'artifactUpdate',
      value: {
        taskId,
        contextId: 'ctx',
        artifact: { artifactId: `a${n}`, name: '', description: '', parts: [], metadata: undefined, extensions: [] },
        append: false,
        lastChunk: true,
        metadata: undefined,
      },
    },
  }) as unknown as StreamResponse;

/**
 * A PushDelivery over one push config per task, whose automation server records the artifact id
 * of each hand-off; `before` runs first in every call (a hand-off that hangs).
 */
function deliveryRecording(drainMs: number, before: () => Promise<void> = async () => undefined) {
  const delivered: string[] = [];
  const mcp: ToolCaller = {
    async call(_server, _tool, args) {
      await before();
      const body = args['body'] as { artifactUpdate?: { artifact?: { artifactId?: string } } };
      delivered.push(String(body.artifactUpdate?.artifact?.artifactId));
      return { result: { delivery: { delivery_id: `d${delivered.length}`, status: 'queued' } } };
    },
  };
  const store = {
    loadWithMetadata: async (taskId: string) => [
      {
        config: { id: 'c1', url: 'https://receiver.example/hook', token: 'tok', tenant: '', taskId },
        wireVersion: '1.0',
      },
    ],
  } as unknown as PgPushNotificationStore;
  return { delivered, push: new PushDelivery(store, mcp, createLogger('push-unit', 'silent'), { drainMs }) };
}

describe('push delivery: what waits per task is bounded', () => {
  it('200 events behind a hand-off that hangs: the oldest waiting ones go, the newest stay, in order', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let calls = 0;
    // The first hand-off hangs until released; the others answer at once.
    const { delivered, push } = deliveryRecording(5_000, async () => {
      if (calls++ === 0) await gate;
    });
    for (let n = 0; n < 200; n++) await push.send(artifact('t1', n), {} as ServerCallContext);
    // The first is in flight; of the 199 behind it, MAX_WAITING_PER_TASK wait.
    assert.equal(push.dropped, 199 - MAX_WAITING_PER_TASK);
    release();
    await push.drain();
    assert.equal(delivered.length, 1 + MAX_WAITING_PER_TASK);
    assert.deepEqual(delivered, [
      'a0',
      ...Array.from({ length: MAX_WAITING_PER_TASK }, (_, i) => `a${200 - MAX_WAITING_PER_TASK + i}`),
    ]);
  });

  it('a notification sent just as the pump for its task ends is still handed off', async () => {
    const { delivered, push } = deliveryRecording(2_000);
    // Second sends at every microtask distance from the first: one of them lands as the pump ends.
    for (let gap = 0; gap < 40; gap++) {
      const id = `t2-${gap}`;
      await push.send(artifact(id, 0), {} as ServerCallContext);
      for (let i = 0; i < gap; i++) await Promise.resolve();
      await push.send(artifact(id, 1), {} as ServerCallContext);
    }
    await push.drain();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(delivered.length, 80, `${delivered.length} of 80 handed off`);
  });
});
