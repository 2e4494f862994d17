import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { closeNats, connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { testNatsUrl } from '@switchyard/testing';
import { callToolReplySchema, mcpSubject } from '@switchyard/contracts';
import { parseServerConfig } from '../registry/schema.js';
import { startSdkHttpServer, testLogger, waitFor, type SdkHttpServer } from '../spec-support.js';
import { startConnectors, type RunningConnectors } from './connector-service.js';

/**
 * A connectors process that took a keyed call's shared claim and was then held up past the
 * claim's lease (stopped with SIGSTOP while the call waited for a slot): another connectors process
 * takes the key over and runs the call. Woken, the first must not send the call as well: it finds
 * its claim gone and answers with the other's result. The first runs in a child process (its own
 * NATS connection and MCP session), so it can really be stopped; the MCP server counts each run.
 */
describe('a connectors process held up past its claim of a keyed call does not run it again', () => {
  const logger = testLogger();
  let server: SdkHttpServer;
  const ran = new Map<string, number>();
  let ncB: NatsConnection;
  let client: NatsConnection;
  let b: RunningConnectors;
  let child: ChildProcessWithoutNullStreams;
  const prefixA = `switchyard.svc.heldA${process.pid}.v1`;
  const prefixB = `switchyard.svc.heldB${process.pid}.v1`;
  const bucket = `TEST_MCP_HELD_${process.pid}`;
  let config: Record<string, unknown>;

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
    // One slot: a keyed call waits behind a slow one, with its claim taken, for as long as it is held up.
    config = {
      name: 'counting',
      role: 'other',
      transport: { kind: 'http', url: server.url },
      timeouts: { connect_ms: 10_000, call_ms: 20_000 },
      health: { ping_interval_ms: 0 },
      bulkhead: { max_concurrent: 1 },
    };
    const url = await testNatsUrl();
    [ncB, client] = await Promise.all([
      connectNats({ url, name: 'connectors-b', logger }),
      connectNats({ url, name: 'client', logger }),
    ]);
    b = await startConnectors({
      nats: ncB,
      registry: [parseServerConfig(config)],
      logger,
      subjectPrefix: prefixB,
      sharedCalls: { bucket, leaseMs: 1_000 },
    });
    const dist = path.resolve(import.meta.dirname, '..');
    const source = `
      const [url, prefix, bucket, config, dist] = process.argv.slice(1);
      const { connectNats } = await import('@switchyard/messaging');
      const { createLogger } = await import('@switchyard/platform');
      const { startConnectors } = await import(new URL('service/connector-service.js', dist).href);
      const { parseServerConfig } = await import(new URL('registry/schema.js', dist).href);
      const logger = createLogger('held-owner', 'silent');
      const nats = await connectNats({ url, name: 'connectors-a', logger });
      await startConnectors({ nats, registry: [parseServerConfig(JSON.parse(config))], logger, subjectPrefix: prefix, sharedCalls: { bucket, leaseMs: 1000 } });
      console.log('ready');`;
    child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        source,
        url,
        prefixA,
        bucket,
        JSON.stringify(config),
        `${pathToFileURL(dist).href}/`,
      ],
      { cwd: path.resolve(dist, '..', '..', '..'), stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const first = await Promise.race([
      lines.next(),
      new Promise<never>((_, reject) => child.once('exit', () => reject(new Error(`the child exited: ${stderr}`)))),
    ]);
    assert.equal(first.value, 'ready');
  });

  after(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await b?.stop();
    await closeNats(ncB).catch(() => undefined);
    await closeNats(client).catch(() => undefined);
    await server?.close();
  });

  const call = (prefix: string, args: Record<string, unknown>, key?: string) =>
    request(
      client,
      mcpSubject('counting', 'call_tool', prefix),
      { tool: 'count', arguments: args, ...(key && { idempotency_key: key }) },
      { schema: callToolReplySchema, timeoutMs: 30_000 },
    );
  const text = (r: { content: unknown[] }) => (r.content[0] as { text: string }).text;

  it('stopped 3 s with its claim taken and the call waiting for a slot: the other process runs it once, the woken one answers with that result', async () => {
    const key = `held-${randomUUID()}`;
    // A slow call holds A's only slot; the keyed call then waits behind it, its claim taken.
    const slow = call(prefixA, { label: 'slow', delay_ms: 1_200 });
    await waitFor(() => ran.get('slow') === 1, 'the slow call to hold the slot', 10_000);
    const heldCall = call(prefixA, { label: 'keyed' }, key);
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGSTOP');
    try {
      // A's lease (1 s) runs out while it is stopped; B takes the key over and runs the call.
      await new Promise((r) => setTimeout(r, 2_500));
      const fromB = await call(prefixB, { label: 'keyed' }, key);
      assert.match(text(fromB), /^keyed run 1 /);
    } finally {
      child.kill('SIGCONT');
    }
    // Woken, A finishes the slow call, then finds the keyed call's claim no longer its own.
    const fromA = await heldCall;
    assert.equal((await slow).isError ?? false, false);
    assert.equal(ran.get('keyed'), 1, 'the keyed call ran once, in B');
    assert.match(text(fromA), /^keyed run 1 /, "A answers with B's result");
  });
});
