import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeciderSpecification } from '@switchyard/testing';
import { AppError } from '@switchyard/platform';
import { webhookDecider, type AutomationMetadata, type WebhookCommand, type WebhookEvent } from './webhooks.decider.js';

const spec = DeciderSpecification.for(webhookDecider);
const isCode = (code: string) => (e: unknown) => e instanceof AppError && e.code === code;
const T0 = '2026-03-01T10:00:00.000Z';
const T1 = '2026-03-01T11:00:00.000Z';
const meta = (timestamp = T0): AutomationMetadata => ({ timestamp, correlationId: 'corr-w', actor: 'mcp:automation' });
const ID = '0190a000-0000-7000-8000-000000000001';
const ID2 = '0190a000-0000-7000-8000-000000000002';
const S1 = '0190a000-0000-7000-8000-0000000000a1';
const S2 = '0190a000-0000-7000-8000-0000000000a2';

const register = (id = ID, secret_id = S1): WebhookCommand => ({
  type: 'RegisterWebhook',
  data: { id, name: 'orders', url: 'https://hooks.test/o', events: ['order.created'], secret_id },
  metadata: meta(),
});
const registered = (id = ID, secret_id = S1): WebhookEvent => ({
  type: 'WebhookRegistered',
  data: { id, name: 'orders', url: 'https://hooks.test/o', events: ['order.created'], secret_id, registered_at: T0 },
  metadata: meta(),
});
const deleted = (id = ID): WebhookEvent => ({
  type: 'WebhookDeleted',
  data: { id, name: 'orders', deleted_at: T1 },
  metadata: meta(T1),
});

describe('Webhook: none', () => {
  it('RegisterWebhook records the registration, dated by the command', () => {
    spec.given([]).when(register()).then([registered()]);
  });
  it('UpdateWebhook and DeleteWebhook: not_found', () => {
    spec
      .given([])
      .when({ type: 'UpdateWebhook', data: { name: 'orders', url: 'https://x.test/' }, metadata: meta() })
      .thenThrows(isCode('not_found'));
    spec
      .given([])
      .when({ type: 'DeleteWebhook', data: { name: 'orders' }, metadata: meta() })
      .thenThrows(isCode('not_found'));
  });
});

describe('Webhook: registered', () => {
  it('RegisterWebhook again: illegal_state "already exists"', () => {
    const e = spec.given([registered()]).when(register(ID2)).thenThrows<AppError>(isCode('illegal_state'));
    assert.equal(e.message, 'webhook "orders" already exists');
  });
  it('UpdateWebhook records the full new values, keeping what was not given', () => {
    spec
      .given([registered()])
      .when({
        type: 'UpdateWebhook',
        data: { name: 'orders', events: ['order.paid'], secret_id: S2 },
        metadata: meta(T1),
      })
      .then([
        {
          type: 'WebhookUpdated',
          data: {
            id: ID,
            name: 'orders',
            url: 'https://hooks.test/o',
            events: ['order.paid'],
            secret_id: S2,
            updated_at: T1,
          },
          metadata: meta(T1),
        },
      ]);
  });
  it('UpdateWebhook that changes nothing: nothing happened', () => {
    spec
      .given([registered()])
      .when({
        type: 'UpdateWebhook',
        data: { name: 'orders', url: 'https://hooks.test/o', events: ['order.created'] },
        metadata: meta(T1),
      })
      .thenNothingHappened();
  });
  it('DeleteWebhook records the deletion; by id only when the id is this registration', () => {
    spec
      .given([registered()])
      .when({ type: 'DeleteWebhook', data: { name: 'orders', id: ID }, metadata: meta(T1) })
      .then([deleted()]);
    spec
      .given([registered()])
      .when({ type: 'DeleteWebhook', data: { name: 'orders', id: ID2 }, metadata: meta(T1) })
      .thenThrows(isCode('not_found'));
  });
});

describe('Webhook: deleted', () => {
  it('the name may be registered again, under a new id', () => {
    spec
      .given([registered(), deleted()])
      .when(register(ID2, S2))
      .then([registered(ID2, S2)]);
  });
  it('DeleteWebhook again: not_found', () => {
    spec
      .given([registered(), deleted()])
      .when({ type: 'DeleteWebhook', data: { name: 'orders' }, metadata: meta(T1) })
      .thenThrows(isCode('not_found'));
  });
});
