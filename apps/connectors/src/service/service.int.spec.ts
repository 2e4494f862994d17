import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AppError } from '@switchyard/platform';
import { connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { testNatsUrl } from '@switchyard/testing';
import { parseServerConfig, type McpServerConfig } from '../registry/schema.js';
import { resolvePackageBin } from '../registry/resolve-bin.js';
import { EventRecorder, everythingBin, testLogger, waitFor, expectAppError } from '../spec-support.js';
import { startConnectors, type RunningConnectors } from './connector-service.js';
import {
  callToolReplySchema,
  getPromptReplySchema,
  listPromptsReplySchema,
  listResourcesReplySchema,
  listToolsReplySchema,
  mcpCancelCallSubject,
  mcpRegistryListSubject,
  mcpSubject as baseSubject,
  readResourceReplySchema,
  registryListReplySchema,
  serverHealthSchema,
} from '@switchyard/contracts';

/**
 * The connector service over a real nats-server, with real MCP servers behind it:
 * two connector instances in one queue group share the requests.
 */

const logger = testLogger();
// A prefix of its own keeps this suite apart from any other connectors on the shared test nats-server.
const prefix = `switchyard.svc.mcptest${process.pid}.v1`;
const mcpSubject = (server: string, endpoint: Parameters<typeof baseSubject>[1]) =>
  baseSubject(server, endpoint, prefix);
const MCP_REGISTRY_LIST_SUBJECT = mcpRegistryListSubject(prefix);
const text = (r: { content: { type: string; text?: unknown }[] }): string =>
  r.content
    .filter((c) => c.type === 'text')
    .map((c) => String(c.text))
    .join('\n');

describe('McpConnectorService over NATS', () => {
  let base: string;
  let root: string;
  let registry: McpServerConfig[];
  let ncA: NatsConnection;
  let ncB: NatsConnection;
  let client: NatsConnection;
  let a: RunningConnectors;
  let b: RunningConnectors;
  const recA = new EventRecorder();
  const recB = new EventRecorder();
  const call = (server: string, body: unknown, timeoutMs = 10_000) =>
    request(client, mcpSubject(server, 'call_tool'), body, { schema: callToolReplySchema, timeoutMs });

  before(async () => {
    base = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'sy-svc-')));
    root = path.join(base, 'files');
    mkdirSync(root);
    const policies = {
      timeouts: { connect_ms: 15_000, call_ms: 5_000 },
      retry: { max_attempts: 2, initial_delay_ms: 20, max_delay_ms: 100 },
      breaker: { consecutive_failures: 3, half_open_after_ms: 300 },
      reconnect: { initial_delay_ms: 1_500, max_delay_ms: 3_000 },
      health: { ping_interval_ms: 0 },
    };
    registry = [
      parseServerConfig({
        name: 'filesystem',
        role: 'filesystem',
        transport: {
          kind: 'stdio',
          command: process.execPath,
          args: [resolvePackageBin('@modelcontextprotocol/server-filesystem'), root],
        },
        ...policies,
      }),
      parseServerConfig({
        name: 'everything',
        role: 'other',
        transport: { kind: 'stdio', command: process.execPath, args: [everythingBin(), 'stdio'] },
        ...policies,
      }),
      parseServerConfig({
        name: 'github',
        role: 'github',
        transport: {
          kind: 'stdio',
          command: process.execPath,
          args: [resolvePackageBin('@modelcontextprotocol/server-github')],
          required_env: ['GITHUB_PERSONAL_ACCESS_TOKEN'],
        },
      }),
    ];
    const url = await testNatsUrl();
    [ncA, ncB, client] = await Promise.all([
      connectNats({ url, name: 'connectors-a', logger }),
      connectNats({ url, name: 'connectors-b', logger }),
      connectNats({ url, name: 'client', logger }),
    ]);
    const queue = `mcp-test-${process.pid}`;
    [a, b] = await Promise.all([
      startConnectors({ nats: ncA, registry, logger, onEvent: recA.sink, queue, subjectPrefix: prefix }),
      startConnectors({ nats: ncB, registry, logger, onEvent: recB.sink, queue, subjectPrefix: prefix }),
    ]);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([ncA, ncB, client].map((nc) => nc?.close()));
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('lists the registry: every server with role, transport, health, breaker and tools', async () => {
    const reply = await request(client, MCP_REGISTRY_LIST_SUBJECT, undefined, { schema: registryListReplySchema });
    const byName = Object.fromEntries(reply.servers.map((s) => [s.server, s]));
    assert.deepEqual(Object.keys(byName).sort(), ['everything', 'filesystem', 'github']);
    assert.equal(byName.filesystem!.state, 'up');
    assert.equal(byName.filesystem!.transport, 'stdio');
    assert.equal(byName.filesystem!.role, 'filesystem');
    assert.equal(byName.filesystem!.breaker, 'closed');
    assert.ok(byName.everything!.tools.includes('echo'));
    assert.equal(byName.github!.state, 'unconfigured');
    assert.doesNotMatch(JSON.stringify(reply), /Bearer|ghp_/);
  });

  it('calls tools through NATS: echo, get-sum, write then read a file', async () => {
    assert.equal(
      text(await call('everything', { tool: 'echo', arguments: { message: 'via nats' } })),
      'Echo: via nats',
    );
    assert.match(text(await call('everything', { tool: 'get-sum', arguments: { a: 20, b: 22 } })), /is 42\b/);
    const file = path.join(root, 'n.txt');
    const w = await call('filesystem', { tool: 'write_file', arguments: { path: file, content: 'over nats' } });
    assert.notEqual(w.isError, true);
    assert.equal(text(await call('filesystem', { tool: 'read_text_file', arguments: { path: file } })), 'over nats');
  });

  it('shares the load between two instances in one queue group', async () => {
    const before = recA.count('McpToolSucceeded') + recB.count('McpToolSucceeded');
    const beforeA = recA.count('McpToolSucceeded');
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => call('everything', { tool: 'echo', arguments: { message: `m${i}` } })),
    );
    const handledA = recA.count('McpToolSucceeded') - beforeA;
    const total = recA.count('McpToolSucceeded') + recB.count('McpToolSucceeded') - before;
    assert.equal(total, 40, 'each request handled exactly once');
    assert.ok(handledA > 0 && handledA < 40, `both instances served requests (A served ${handledA} of 40)`);
  });

  it('returns a tool error as a result with isError (not retried), and path traversal is one', async () => {
    const r = await call('filesystem', {
      tool: 'read_text_file',
      arguments: { path: path.join(root, '..', '..', 'etc', 'passwd') },
    });
    assert.equal(r.isError, true);
    const failed = [...recA.of('McpToolFailed'), ...recB.of('McpToolFailed')].filter(
      (e) => e.data.tool === 'read_text_file',
    );
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.data.attempts, 1);
    assert.equal(failed[0]!.data.outcome, 'tool_error');
    assert.ok(failed[0]!.data.correlation_id, 'the request correlation id is on the event');
  });

  it('answers an unknown tool with not_found and the valid tool names', async () => {
    const e = await expectAppError(call('everything', { tool: 'nope', arguments: {} }), 'not_found');
    assert.ok((e.details.valid_tools as string[]).includes('echo'));
  });

  it('rejects a malformed request with validation', async () => {
    await expectAppError(call('everything', { arguments: {} }), 'validation');
  });

  it('answers the unconfigured github server with unavailable and a clear message', async () => {
    const e = await expectAppError(
      call('github', { tool: 'search_repositories', arguments: { query: 'x' } }),
      'unavailable',
    );
    assert.match(e.message, /GITHUB_PERSONAL_ACCESS_TOKEN/);
    assert.equal(e.retryable, false, 'it stays unconfigured until the token is set: a retry cannot help');
    const h = await request(client, mcpSubject('github', 'health'), undefined, { schema: serverHealthSchema });
    assert.equal(h.state, 'unconfigured');
  });

  it('serves list_tools, list_resources, read_resource, list_prompts, get_prompt and health', async () => {
    const tools = await request(
      client,
      mcpSubject('everything', 'list_tools'),
      { refresh: true },
      { schema: listToolsReplySchema },
    );
    assert.ok(tools.tools.some((t) => t.name === 'get-sum' && typeof t.inputSchema === 'object'));
    const resources = await request(client, mcpSubject('everything', 'list_resources'), undefined, {
      schema: listResourcesReplySchema,
    });
    assert.ok(resources.resources.length > 0);
    const read = await request(
      client,
      mcpSubject('everything', 'read_resource'),
      { uri: resources.resources[0]!.uri },
      { schema: readResourceReplySchema },
    );
    assert.ok(read.contents.length > 0);
    const prompts = await request(client, mcpSubject('everything', 'list_prompts'), undefined, {
      schema: listPromptsReplySchema,
    });
    const simple =
      prompts.prompts.find((p) => !('arguments' in p) || (p.arguments as unknown[] | undefined)?.length === 0) ??
      prompts.prompts[0]!;
    const got = await request(
      client,
      mcpSubject('everything', 'get_prompt'),
      { name: simple.name },
      { schema: getPromptReplySchema },
    ).catch((err: unknown) => err);
    // A prompt with required arguments answers validation; either way the endpoint answered.
    assert.ok(!(got instanceof AppError) || got.code === 'validation', String(got));
    const h = await request(
      client,
      mcpSubject('everything', 'health'),
      { probe: true },
      { schema: serverHealthSchema },
    );
    assert.equal(h.state, 'up');
    assert.ok(typeof h.response_ms === 'number');
  });

  it("a cancel published under a running call's idempotency key stops it: the caller gets canceled, nothing is retried, the breaker stays closed", async () => {
    const key = `cancel-me-${process.pid}-${Date.now()}`;
    const pending = expectAppError(
      call(
        'everything',
        { tool: 'trigger-long-running-operation', arguments: { duration: 6, steps: 6 }, idempotency_key: key },
        15_000,
      ),
      'canceled',
    );
    const calledWith = () =>
      [...recA.of('McpToolCalled'), ...recB.of('McpToolCalled')].find((e) => e.data.idempotency_key === key);
    await waitFor(() => calledWith() !== undefined, 'the call to be running on one instance');
    // Published, not requested: every instance hears it, the one running the call stops it.
    client.publish(
      mcpCancelCallSubject('everything', prefix),
      JSON.stringify({ idempotency_key: key, reason: 'workflow canceled' }),
    );
    const err = await pending;
    assert.match(err.message, /workflow canceled/);
    const failed = [...recA.of('McpToolFailed'), ...recB.of('McpToolFailed')].find(
      (e) => e.data.call_id === calledWith()!.data.call_id,
    );
    assert.equal(failed?.data.error_code, 'canceled');
    assert.equal(failed?.data.attempts, 1, 'not retried');
    // Not the server's fault: the breaker stays closed and the next call works.
    const health = await request(
      client,
      mcpSubject('everything', 'health'),
      {},
      { schema: serverHealthSchema, timeoutMs: 5_000 },
    );
    assert.equal(health.breaker, 'closed');
    assert.match(text(await call('everything', { tool: 'echo', arguments: { message: 'still here' } })), /still here/);
    // A malformed cancel or one for a key nobody runs changes nothing.
    client.publish(mcpCancelCallSubject('everything', prefix), JSON.stringify({ nope: true }));
    client.publish(mcpCancelCallSubject('everything', prefix), JSON.stringify({ idempotency_key: 'nobody-runs-this' }));
    assert.match(text(await call('everything', { tool: 'echo', arguments: { message: 'after' } })), /after/);
  });

  it('a crashed server: callers get unavailable (circuit open in details), then it comes back by itself', async () => {
    // Kill the child of both instances so whichever answers sees the crash.
    const pids = [a, b].map((r) => r.connectors.require('everything').session.pid!);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    let sawOpen = false;
    await waitFor(async () => {
      try {
        await call('everything', { tool: 'echo', arguments: { message: 'x' } });
      } catch (err) {
        assert.ok(err instanceof AppError);
        assert.equal(err.code, 'unavailable');
        if (err.details.breaker === 'open') sawOpen = true;
      }
      return sawOpen;
    }, 'an open-circuit answer over NATS');
    await waitFor(
      async () => {
        const r = await request(client, MCP_REGISTRY_LIST_SUBJECT, undefined, { schema: registryListReplySchema });
        return (
          [a, b].every(
            (x) =>
              x.connectors.require('everything').health().state === 'up' &&
              x.connectors.require('everything').breakerState === 'closed',
          ) && r.servers.some((s) => s.server === 'everything')
        );
      },
      'both instances recovered',
      30_000,
    );
    assert.equal(text(await call('everything', { tool: 'echo', arguments: { message: 'back' } })), 'Echo: back');
    for (const rec of [recA, recB]) {
      assert.ok(rec.count('McpServerWentDown') >= 1);
      assert.ok(rec.count('McpServerRecovered') >= 1);
      assert.deepEqual(rec.invalid, []);
    }
  });
});
