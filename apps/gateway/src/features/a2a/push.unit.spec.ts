import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StreamResponse, type TaskPushNotificationConfig } from '@a2a-js/sdk';
import { V1PushNotificationSerializer } from '@a2a-js/sdk/server';
import { V03PushNotificationSerializer } from '@a2a-js/sdk/compat/v0_3/server';
import { handoffFor } from './push.js';

const config = (over: Partial<TaskPushNotificationConfig> = {}): TaskPushNotificationConfig => ({
  tenant: '',
  id: 'cfg-1',
  taskId: 't-1',
  url: 'https://hooks.example.com/a2a',
  token: 'tok',
  authentication: undefined,
  ...over,
});
const status = (state: number): StreamResponse => ({
  payload: {
    $case: 'statusUpdate',
    value: {
      taskId: 't-1',
      contextId: 'c-1',
      status: { state, message: undefined, timestamp: '2026-12-03T12:00:00.000Z' },
      metadata: undefined,
    },
  },
});

describe('push hand-off: one queue_webhook call per (task, config, event)', () => {
  it('keys by task, config and event, orders by task and config, and carries the 1.0 body as the SDK serializes it', () => {
    const sr = status(3);
    const h = handoffFor('t-1', config(), sr, undefined, new V1PushNotificationSerializer())!;
    assert.equal(h.idempotency_key, 'a2a:t-1:cfg-1:status:completed');
    assert.equal(h.ordering_key, 'a2a:t-1:cfg-1');
    assert.equal(h.content_type, 'application/a2a+json');
    assert.equal(h.token, 'tok');
    assert.equal(h.authentication, undefined);
    assert.deepEqual(h.body, StreamResponse.toJSON(sr));
    // The same event published again has the same key (delivered once); another state another key.
    assert.equal(
      handoffFor('t-1', config(), status(3), undefined, new V1PushNotificationSerializer())!.idempotency_key,
      h.idempotency_key,
    );
    assert.notEqual(
      handoffFor('t-1', config(), status(2), undefined, new V1PushNotificationSerializer())!.idempotency_key,
      h.idempotency_key,
    );
  });

  it('passes authentication only with both scheme and credentials (as the SDK sender does), and a 0.3 config gets application/json', () => {
    const withAuth = handoffFor(
      't-1',
      config({ authentication: { scheme: 'Bearer', credentials: 'c' } }),
      status(2),
      undefined,
      new V03PushNotificationSerializer(),
    )!;
    assert.deepEqual(withAuth.authentication, { scheme: 'Bearer', credentials: 'c' });
    assert.equal(withAuth.content_type, 'application/json');
    assert.equal((withAuth.body as { kind?: string }).kind, 'status-update');
    const half = handoffFor(
      't-1',
      config({ authentication: { scheme: 'Bearer', credentials: '' } }),
      status(2),
      undefined,
      new V1PushNotificationSerializer(),
    )!;
    assert.equal(half.authentication, undefined);
  });

  it('hashes a config id that is long or not plain, so the key stays within the tool limit', () => {
    const h = handoffFor(
      't-1',
      config({ id: 'x'.repeat(300) }),
      status(2),
      undefined,
      new V1PushNotificationSerializer(),
    )!;
    assert.ok(h.idempotency_key.length <= 200);
    assert.match(h.ordering_key, /^a2a:t-1:[0-9a-f]{32}$/);
  });
});
