import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { testNatsUrl } from '@switchyard/testing';
import { parseServerConfig } from '../registry/schema.js';
import { EventRecorder, startSdkHttpServer, testLogger, waitFor, type SdkHttpServer } from '../spec-support.js';
import { startConnectors, type RunningConnectors } from './connector-service.js';
import { callToolReplySchema, mcpSubject } from '@switchyard/contracts';
import { NatsKvCallCache } from './shared-call-cache.js';
import { Kvm } from '@nats-io/kv';

/**
 * Two connector services (each its own NATS connection and MCP session, as two processes have)
 * sharing the keyed-call bucket, against a real MCP server that counts how often each call ran.
 * Each service has its own subject prefix so the test can address one or the other.
 */
describe('keyed MCP calls shared by two connector services through NATS KV', () => {
  const logger = testLogger();
  let server: SdkHttpServer;
  const ran = new Map<string, number>();
  let ncA: NatsConnection;
  let ncB: NatsConnection;
  let client: NatsConnection;
  let a: RunningConnectors;
  let b: RunningConnectors;
  const recA = new EventRecorder();
  const recB = new EventRecorder();
  const prefixA = `switchyard.svc.sharedA${process.pid}.v1`;
  const prefixB = `switchyard.svc.sharedB${process.pid}.v1`;
  const bucket = `TEST_MCP_CALLS_${process.pid}`;

  before(async () => {
    server = await startSdkHttpServer(() => {
      const counting = new McpServer({ name: 'counting', version: '1.0.0' });
      counting.registerTool(
        'count',
        {
          description: 'counts its runs per label',
          inputSchema: { label: z.string(), delay_ms: z.number().int().min(0).max(10_000).optional() },
        },
        async ({ label, delay_ms }) => {
          const n = (ran.get(label) ?? 0) + 1;
          ran.set(label, n);
          if (delay_ms) await new Promise((r) => setTimeout(r, delay_ms));
          return { content: [{ type: 'text', text: `${label} run ${n} (${randomUUID()})` }] };
        },
      );
      return counting;
    });
    const registry = [
      parseServerConfig({
        name: 'counting',
        role: 'other',
        transport: { kind: 'http', url: server.url },
        timeouts: { connect_ms: 10_000, call_ms: 10_000 },
        health: { ping_interval_ms: 0 },
      }),
    ];
    const url = await testNatsUrl();
    [ncA, ncB, client] = await Promise.all([
      connectNats({ url, name: 'connectors-a', logger }),
      connectNats({ url, name: 'connectors-b', logger }),
      connectNats({ url, name: 'client', logger }),
    ]);
    [a, b] = await Promise.all([
      startConnectors({
        nats: ncA,
        registry,
        logger,
        onEvent: recA.sink,
        subjectPrefix: prefixA,
        sharedCalls: { bucket, leaseMs: 1_500 },
      }),
      startConnectors({
        nats: ncB,
        registry,
        logger,
        onEvent: recB.sink,
        subjectPrefix: prefixB,
        sharedCalls: { bucket, leaseMs: 1_500 },
      }),
    ]);
    // Both sessions connected before the first call (a session still connecting answers `unavailable`).
    await waitFor(
      () => [a, b].every((x) => x.connectors.get('counting')?.health().state === 'up'),
      'both connector services connected to the MCP server',
    );
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([ncA, ncB, client].map((nc) => nc?.close()));
    await server?.close();
  });

  const call = (prefix: string, body: unknown) =>
    request(client, mcpSubject('counting', 'call_tool', prefix), body, {
      schema: callToolReplySchema,
      timeoutMs: 15_000,
    });
  const text = (r: { content: { type: string; text?: unknown }[] }) => r.content.map((c) => String(c.text)).join('');

  it('a retry with the same key on the other service returns the first result; the tool ran once', async () => {
    const key = `retry-${randomUUID()}`;
    const first = await call(prefixA, { tool: 'count', arguments: { label: key }, idempotency_key: key });
    const again = await call(prefixB, { tool: 'count', arguments: { label: key }, idempotency_key: key });
    assert.match(text(first), new RegExp(`^${key} run 1 `));
    assert.equal(text(again), text(first));
    assert.equal(ran.get(key), 1, 'the MCP server ran the tool once');
    // B recorded no call of its own for this key: it answered from the shared entry.
    assert.equal(
      recB.events.filter(
        (e) => e.type === 'McpToolCalled' && (e.data as { idempotency_key?: string }).idempotency_key === key,
      ).length,
      0,
    );
    // Another key runs again.
    const other = await call(prefixB, { tool: 'count', arguments: { label: key }, idempotency_key: `${key}-2` });
    assert.match(text(other), new RegExp(`^${key} run 2 `));
  });

  it('a call still running on one service: the same key on the other joins it and gets its result', async () => {
    const key = `join-${randomUUID()}`;
    const body = { tool: 'count', arguments: { label: key, delay_ms: 1_500 }, idempotency_key: key };
    const first = call(prefixA, body);
    await waitFor(() => ran.get(key) === 1, 'the server started the first call');
    const joined = await call(prefixB, body);
    const done = await first;
    assert.equal(text(joined), text(done));
    assert.equal(ran.get(key), 1, 'the MCP server ran the tool once');
    console.log(`# joined across services: ${text(joined)}; runs on the server: ${ran.get(key)}`);
  });

  it('many concurrent requests with one key, spread over both services, run the tool once', async () => {
    const key = `burst-${randomUUID()}`;
    const body = { tool: 'count', arguments: { label: key, delay_ms: 300 }, idempotency_key: key };
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => call(i % 2 ? prefixA : prefixB, body)));
    assert.equal(new Set(answers.map(text)).size, 1);
    assert.equal(ran.get(key), 1);
  });

  it('a key left running by a process that died (its lease ran out) is taken over and run by the next caller', async () => {
    const key = `orphan-${randomUUID()}`;
    const kv = await new Kvm(client).open(bucket);
    // What a connectors process killed mid-call leaves: `running` with a lease nobody renews.
    await kv.put(
      NatsKvCallCache.keyOf({ server: 'counting', tool: 'count', key }),
      JSON.stringify({ state: 'running', owner: 'killed-process', lease_until: Date.now() + 800 }),
    );
    const answer = await call(prefixB, { tool: 'count', arguments: { label: key }, idempotency_key: key });
    assert.match(text(answer), new RegExp(`^${key} run 1 `));
    assert.equal(ran.get(key), 1);
    // And the outcome is now shared: A answers the same without running it.
    assert.equal(
      text(await call(prefixA, { tool: 'count', arguments: { label: key }, idempotency_key: key })),
      text(answer),
    );
    assert.equal(ran.get(key), 1);
  });

  it('two more services in one queue group (as two connectors processes run): a burst of one key runs the tool once, whichever instance takes each request', async () => {
    const prefixQ = `switchyard.svc.sharedQ${process.pid}.v1`;
    const queue = `shared-q-${process.pid}`;
    const registry = [a.connectors.get('counting')!.config];
    const [ncC, ncD] = await Promise.all(
      ['connectors-c', 'connectors-d'].map(async (name) => connectNats({ url: await testNatsUrl(), name, logger })),
    );
    const recC = new EventRecorder();
    const recD = new EventRecorder();
    const [c, d] = await Promise.all([
      startConnectors({
        nats: ncC!,
        registry,
        logger,
        onEvent: recC.sink,
        subjectPrefix: prefixQ,
        queue,
        sharedCalls: { bucket, leaseMs: 1_500 },
      }),
      startConnectors({
        nats: ncD!,
        registry,
        logger,
        onEvent: recD.sink,
        subjectPrefix: prefixQ,
        queue,
        sharedCalls: { bucket, leaseMs: 1_500 },
      }),
    ]);
    try {
      await waitFor(
        () => [c, d].every((x) => x.connectors.get('counting')?.health().state === 'up'),
        'both queue members connected',
      );
      const key = `queue-${randomUUID()}`;
      const body = { tool: 'count', arguments: { label: key, delay_ms: 300 }, idempotency_key: key };
      const answers = await Promise.all(Array.from({ length: 12 }, () => call(prefixQ, body)));
      assert.equal(new Set(answers.map(text)).size, 1);
      assert.equal(ran.get(key), 1, 'the MCP server ran the tool once');
      const handled = (r: EventRecorder) =>
        r.events.filter(
          (e) => e.type === 'McpToolCalled' && (e.data as { idempotency_key?: string }).idempotency_key === key,
        ).length;
      console.log(
        `# queue group: 12 requests, tool calls made by C ${handled(recC)}, by D ${handled(recD)}, runs on the server ${ran.get(key)}`,
      );
      assert.equal(handled(recC) + handled(recD), 1);
    } finally {
      await Promise.all([c.stop(), d.stop()]);
      await Promise.all([ncC!.close(), ncD!.close()]);
    }
  });
});
