/**
 * An external A2A agent whose card no probe has read yet is read when a task goes to it: a card it
 * serves badly then (not a card, no JSON-RPC interface, over the size bound) is the agent's
 * failure, `unavailable` and retried, not a `validation` error that blames the task's context.
 * A real HTTP server on a free loopback port serves the card.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AppError, EgressGuard } from '@switchyard/platform';
import { AGENT_ANSWER_UNUSABLE } from './a2a-agents.js';
import type { AgentInstance } from './instances.js';
import { callA2a, type AssignedTask } from './transport.js';

describe('an A2A agent card read at task time', () => {
  let server: Server;
  let base = '';
  const cards: Record<string, string> = {
    '/not-a-card.json': JSON.stringify({ hello: 'world' }),
    '/no-jsonrpc.json': JSON.stringify({
      protocolVersion: '0.3.0',
      name: 'x',
      description: 'x',
      url: 'http://127.0.0.1:1/',
      preferredTransport: 'GRPC',
      version: '1',
      capabilities: {},
      defaultInputModes: ['text'],
      defaultOutputModes: ['text'],
      skills: [{ id: 'noop', name: 'noop', description: 'noop', tags: [] }],
    }),
    '/huge.json': JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }),
  };

  before(async () => {
    server = createServer((req, res) => {
      const card = cards[req.url ?? ''];
      res.writeHead(card ? 200 : 404, { 'content-type': 'application/json' });
      res.end(card ?? '{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const task = { taskId: 't1', taskType: 'noop', context: {}, attempt: 1 } as unknown as AssignedTask;
  const instance = (path: string) => ({ key: 'a/1', a2aCardUrl: `${base}${path}` }) as unknown as AgentInstance;

  for (const path of Object.keys(cards)) {
    it(`${path}: unavailable (the agent's card), retryable, not validation`, async () => {
      const guard = new EgressGuard({ allowCidrs: ['127.0.0.0/8'] });
      const err = await callA2a(guard, task, instance(path), new AbortController().signal).then(
        () => assert.fail('a task on a broken card answered'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof AppError, String(err));
      assert.equal(err.code, 'unavailable', err.message);
      assert.equal(err.retryable, true);
      assert.equal(err.details['reason'], AGENT_ANSWER_UNUSABLE);
      assert.match(err.message, /card|JSON-RPC interface/);
    });
  }

  it('an address the egress policy refuses stays forbidden', async () => {
    const guard = new EgressGuard({});
    const err = await callA2a(guard, task, instance('/not-a-card.json'), new AbortController().signal).then(
      () => assert.fail('answered'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof AppError);
    assert.equal(err.code, 'forbidden', err.message);
  });
});
