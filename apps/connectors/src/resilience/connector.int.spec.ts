import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { pino } from 'pino';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { AppError, freePort } from '@switchyard/platform';
import { parseServerConfig, type McpServerConfigInput } from '../registry/schema.js';
import { resolvePackageBin } from '../registry/resolve-bin.js';
import { McpConnector } from './mcp-connector.js';
import {
  EventRecorder,
  everythingBin,
  startEverythingHttp,
  startSdkHttpServer,
  testLogger,
  waitFor,
  type HttpServerHandle,
  type SdkHttpServer,
  expectAppError,
} from '../spec-support.js';

/**
 * The session + resilience layer against the real official MCP servers:
 * server-filesystem and server-everything over stdio, server-everything over Streamable HTTP.
 * Every wait is bounded; durations are printed as diagnostics, never asserted.
 */

const logger = testLogger();
const text = (r: { content?: unknown[] }): string =>
  ((r.content ?? []) as { type: string; text?: string }[])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');

/** Fast policies so outages play out in a second or two. */
const fast: Partial<McpServerConfigInput> = {
  timeouts: { connect_ms: 15_000, call_ms: 5_000 },
  retry: { max_attempts: 2, initial_delay_ms: 20, max_delay_ms: 100 },
  breaker: { consecutive_failures: 3, half_open_after_ms: 300 },
  reconnect: { initial_delay_ms: 100, max_delay_ms: 500 },
  health: { ping_interval_ms: 0 },
};

describe('filesystem server over stdio (sandboxed temp root)', () => {
  let root: string;
  let outside: string;
  let fs: McpConnector;
  const rec = new EventRecorder();

  before(async () => {
    const base = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'sy-fs-')));
    root = path.join(base, 'root');
    outside = path.join(base, 'outside.txt');
    await import('node:fs/promises').then((f) => f.mkdir(root));
    writeFileSync(outside, 'top secret');
    fs = new McpConnector({
      config: parseServerConfig({
        name: 'filesystem',
        role: 'filesystem',
        transport: {
          kind: 'stdio',
          command: process.execPath,
          args: [resolvePackageBin('@modelcontextprotocol/server-filesystem'), root],
          cwd: root,
        },
        ...fast,
      }),
      logger,
      onEvent: rec.sink,
    });
    await fs.start();
  });
  after(async () => {
    await fs?.close();
    if (root) rmSync(path.dirname(root), { recursive: true, force: true });
  });

  it('connects, caches the tool list and reports up', () => {
    const h = fs.health();
    assert.equal(h.state, 'up');
    assert.equal(h.transport, 'stdio');
    assert.ok(h.pid && h.pid > 0);
    for (const t of ['read_text_file', 'write_file', 'list_directory']) assert.ok(h.tools.includes(t), `missing ${t}`);
  });

  it('writes, reads back and lists a file inside the root', async () => {
    const file = path.join(root, 'hello.txt');
    const w = await fs.callTool({ tool: 'write_file', arguments: { path: file, content: 'hello switchyard' } });
    assert.notEqual(w.isError, true, text(w));
    assert.equal(readFileSync(file, 'utf8'), 'hello switchyard');
    const r = await fs.callTool({ tool: 'read_text_file', arguments: { path: file } });
    assert.equal(text(r), 'hello switchyard');
    const l = await fs.callTool({ tool: 'list_directory', arguments: { path: root } });
    assert.match(text(l), /\[FILE\] hello\.txt/);
    assert.equal(rec.count('McpToolSucceeded'), 3);
  });

  it('refuses ../ path traversal as a tool error, without retrying it', async () => {
    const before = rec.count('McpToolFailed');
    for (const p of [path.join(root, '..', 'outside.txt'), '../outside.txt']) {
      const r = await fs.callTool({ tool: 'read_text_file', arguments: { path: p } });
      assert.equal(r.isError, true, `traversal ${p} was not refused: ${text(r)}`);
      assert.doesNotMatch(text(r), /top secret/);
      assert.match(text(r), /denied|outside|not allowed/i);
      // Where the sandbox and its neighbours live on the host is not told.
      assert.ok(!text(r).includes(path.dirname(root)), `no host path in: ${text(r)}`);
    }
    const failed = rec.of('McpToolFailed').slice(before);
    assert.equal(failed.length, 2);
    for (const f of failed) {
      assert.equal(f.data.outcome, 'tool_error');
      assert.equal(f.data.attempts, 1, 'a tool error must not be retried');
    }
    assert.equal(fs.breakerState, 'closed', 'tool errors do not count against the breaker');
    // The server's refusal echoes the path it was given: a credential in it is cut out of the event.
    const token = 'sk_live_abcdefghijklmnopqrstuvwxyz0123';
    const echoed = await fs.callTool({ tool: 'read_text_file', arguments: { path: `/etc/Bearer ${token}` } });
    assert.equal(echoed.isError, true, text(echoed));
    const last = rec.of('McpToolFailed').at(-1)!;
    assert.match(String(last.data.error_message), /<outside the sandbox> \[redacted\]/);
    assert.doesNotMatch(JSON.stringify(last.data), new RegExp(token));
  });

  it('refuses an extended glob the server would match without bound; plain globs are searched', async () => {
    const e = await expectAppError(
      fs.callTool({ tool: 'search_files', arguments: { path: root, pattern: '+(a|aa)+(a|aa)+(a|aa)b' } }),
      'validation',
    );
    assert.match(e.message, /pattern: parentheses are not accepted/);
    const excluded = await expectAppError(
      fs.callTool({
        tool: 'search_files',
        arguments: { path: root, pattern: '*.txt', excludePatterns: ['ok', '!(x)'] },
      }),
      'validation',
    );
    assert.match(excluded.message, /excludePatterns\[1\]/);
    const plain = await fs.callTool({ tool: 'search_files', arguments: { path: root, pattern: '*.txt' } });
    assert.notEqual(plain.isError, true, JSON.stringify(plain.content));
    assert.equal(fs.breakerState, 'closed');
  });

  it('answers an unknown tool with not_found listing the valid tools', async () => {
    const e = await expectAppError(fs.callTool({ tool: 'format_disk', arguments: {} }), 'not_found');
    assert.ok(Array.isArray(e.details.valid_tools));
    assert.ok((e.details.valid_tools as string[]).includes('read_text_file'));
  });

  it('emits schema-valid events only', () => {
    assert.deepEqual(rec.invalid, []);
  });
});

describe('everything server over stdio: calls, errors, crash and recovery', () => {
  let ev: McpConnector;
  const rec = new EventRecorder();

  before(async () => {
    ev = new McpConnector({
      config: parseServerConfig({
        name: 'everything',
        role: 'other',
        transport: { kind: 'stdio', command: process.execPath, args: [everythingBin(), 'stdio'] },
        ...fast,
        // A longer first reconnect delay keeps the outage open long enough to be observed.
        reconnect: { initial_delay_ms: 1_500, max_delay_ms: 3_000 },
        payload_log: { max_chars: 64 },
      }),
      logger,
      onEvent: rec.sink,
    });
    await ev.start();
  });
  after(async () => {
    await ev?.close();
  });

  it('echoes and adds', async () => {
    assert.equal(text(await ev.callTool({ tool: 'echo', arguments: { message: 'hi' } })), 'Echo: hi');
    assert.match(text(await ev.callTool({ tool: 'get-sum', arguments: { a: 2, b: 3 } })), /is 5\b/);
    const ok = rec.of('McpToolSucceeded').at(-1)!;
    assert.equal(ok.data.tool, 'get-sum');
    assert.equal(ok.data.attempts, 1);
  });

  it('returns a tool error (invalid arguments) as isError, attempted exactly once', async () => {
    const r = await ev.callTool({ tool: 'get-sum', arguments: { a: 1, b: 'two' } });
    assert.equal(r.isError, true);
    const f = rec.of('McpToolFailed').at(-1)!;
    assert.equal(f.data.outcome, 'tool_error');
    assert.equal(f.data.attempts, 1);
  });

  it('redacts secret-looking arguments and truncates large ones in events', async () => {
    await ev
      .callTool({ tool: 'echo', arguments: { message: 'x'.repeat(500), api_key: 'sk-live-123' } })
      .catch(() => undefined);
    const called = rec.of('McpToolCalled').at(-1)!;
    assert.doesNotMatch(JSON.stringify(called), /sk-live-123/);
    assert.equal(called.data.arguments.truncated, true);
    assert.ok(called.data.arguments.size > 500);
  });

  it('records the arguments a caller names private as [redacted]; the server still gets them', async () => {
    const r = await ev.callTool({
      tool: 'echo',
      arguments: { message: 'https://hooks.example/services/T0/B0/PATHSECRET' },
      private_arguments: ['message', 'absent'],
    });
    assert.match(JSON.stringify(r.content), /PATHSECRET/, 'the server echoed what it got');
    const called = rec.of('McpToolCalled').at(-1)!;
    assert.deepEqual(called.data.arguments.value, { message: '[redacted]' });
  });

  it('runs a call once per idempotency key and hands the same result to the repeat', async () => {
    const calledBefore = rec.count('McpToolCalled');
    const key = `k-${Date.now()}`;
    const [a, b] = await Promise.all([
      ev.callTool({ tool: 'echo', arguments: { message: 'once' }, idempotency_key: key }),
      ev.callTool({ tool: 'echo', arguments: { message: 'once' }, idempotency_key: key }),
    ]);
    const c = await ev.callTool({ tool: 'echo', arguments: { message: 'once' }, idempotency_key: key });
    assert.deepEqual(a, b);
    assert.deepEqual(a, c);
    assert.equal(rec.count('McpToolCalled') - calledBefore, 1, 'the tool ran once');
    await ev.callTool({ tool: 'echo', arguments: { message: 'other' }, idempotency_key: `${key}-2` });
    assert.equal(rec.count('McpToolCalled') - calledBefore, 2, 'another key runs again');
  });

  it('keeps results for their keys within a byte budget; one too large for any reply is kept as its refusal', async () => {
    const rec2 = new EventRecorder();
    const capped = new McpConnector({
      config: parseServerConfig({
        name: 'everything-capped',
        role: 'other',
        transport: { kind: 'stdio', command: process.execPath, args: [everythingBin(), 'stdio'] },
        ...fast,
      }),
      logger,
      onEvent: rec2.sink,
      maxCachedResultChars: 2_000,
      cachedResultsBudgetChars: 5_000,
    });
    await capped.start();
    try {
      const runs = () => rec2.count('McpToolCalled');
      const call = (key: string, chars: number) =>
        capped.callTool({ tool: 'echo', arguments: { message: 'm'.repeat(chars) }, idempotency_key: key });
      // Too large to keep: the first caller gets it, a repeat gets the refusal without a second run.
      assert.equal(text(await call('big', 3_000)).length, 'Echo: '.length + 3_000);
      const before = runs();
      await assert.rejects(call('big', 3_000), (e: unknown) => (e as { code?: string }).code === 'result_too_large');
      assert.equal(runs(), before, 'the tool did not run again');
      // Five results of about 1.5 KB: the budget (5 KB) keeps the newest three.
      for (const k of ['k1', 'k2', 'k3', 'k4', 'k5']) await call(k, 1_500);
      const kept = runs();
      await call('k5', 1_500);
      await call('k3', 1_500);
      assert.equal(runs(), kept, 'the newest results are answered from the cache');
      await call('k1', 1_500);
      assert.equal(runs(), kept + 1, 'the oldest result was dropped for the budget, so its key runs again');
    } finally {
      await capped.close();
    }
  });

  it('does not count JSON-RPC errors (unknown prompt) against the breaker', async () => {
    for (let i = 0; i < 5; i++) await expectAppError(ev.getPrompt('no-such-prompt'), 'validation');
    assert.equal(ev.breakerState, 'closed');
  });

  it('retries a timed-out read-only call up to max_attempts, then answers timeout', async () => {
    const e = await expectAppError(
      ev.callTool({ tool: 'trigger-long-running-operation', arguments: { duration: 30, steps: 2 }, timeout_ms: 400 }),
      'timeout',
    );
    assert.equal(e.retryable, true);
    const f = rec.of('McpToolFailed').at(-1)!;
    assert.equal(f.data.error_code, 'timeout');
    assert.equal(f.data.attempts, 2, 'read-only tool: the timeout is retried once (max_attempts 2)');
    // A deadline the caller chose below the server's is its own budget: however many run out, the
    // breaker stays closed for everyone else (the server's own timeout still counts, below).
    for (let i = 0; i < 3; i++)
      await expectAppError(
        ev.callTool({ tool: 'trigger-long-running-operation', arguments: { duration: 30, steps: 2 }, timeout_ms: 200 }),
        'timeout',
      );
    assert.equal(ev.breakerState, 'closed');
  });

  it('SIGKILL mid-traffic: fails fast with unavailable, breaker opens, reconnects by itself, breaker closes', async (t) => {
    // The timeout test above left one breaker failure; start from a clean, healthy state.
    await waitFor(() => ev.health().state === 'up' && ev.breakerState === 'closed', 'healthy before the crash');
    const pid = ev.session.pid!;
    const from = rec.events.length;
    const outcomes: { ok: boolean; code?: string; breaker?: unknown; health?: unknown; ms: number }[] = [];
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const t0 = performance.now();
        try {
          await ev.callTool({ tool: 'echo', arguments: { message: 'traffic' } });
          outcomes.push({ ok: true, ms: performance.now() - t0 });
        } catch (err) {
          const e = err as AppError;
          outcomes.push({
            ok: false,
            code: e.code,
            breaker: e.details?.breaker,
            health: e.details?.health,
            ms: performance.now() - t0,
          });
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const workers = [worker(), worker(), worker()];
    await waitFor(() => outcomes.filter((o) => o.ok).length >= 10, 'traffic flowing');
    process.kill(pid, 'SIGKILL');
    try {
      await rec.waitFor('McpServerWentDown');
      await rec.waitFor('McpCircuitOpened');
      await rec.waitFor('McpServerRecovered', 1, 30_000);
      await waitFor(() => ev.breakerState === 'closed', 'breaker closed again', 30_000);
      await waitFor(
        () => outcomes.slice(-5).every((o) => o.ok) && outcomes.slice(-5).length === 5,
        'traffic succeeding again',
        30_000,
      );
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    const failures = outcomes.filter((o) => !o.ok);
    assert.ok(failures.length > 0, 'some calls must have failed during the outage');
    for (const f of failures) assert.equal(f.code, 'unavailable', `failure during outage was ${f.code}`);
    assert.ok(
      failures.some((f) => f.breaker === 'open'),
      'some calls were refused by the open circuit',
    );
    assert.ok(
      failures.some((f) => f.health === 'down' || f.breaker === undefined),
      'some calls saw the server down',
    );
    const newPid = ev.session.pid;
    assert.ok(newPid && newPid !== pid, 'a new server process was spawned');
    assert.equal(ev.health().state, 'up');
    // Order of the story: down before recovered, opened before half-opened before closed.
    const down = rec.indexOf('McpServerWentDown', from);
    const opened = rec.indexOf('McpCircuitOpened', from);
    const recovered = rec.indexOf('McpServerRecovered', from);
    const half = rec.indexOf('McpCircuitHalfOpened', opened);
    const closed = rec.indexOf('McpCircuitClosed', half);
    assert.ok(down >= 0 && recovered > down, 'WentDown then Recovered');
    assert.ok(opened >= 0 && half > opened && closed > half, 'Opened, HalfOpened, Closed');
    const wentDown = rec.of('McpServerWentDown').at(-1)!;
    assert.equal(wentDown.data.previous, 'up');
    const maxFailMs = Math.max(...failures.map((f) => f.ms));
    t.diagnostic(`calls: ${outcomes.length}, failed: ${failures.length}, slowest failure ${maxFailMs.toFixed(0)} ms`);
    assert.deepEqual(rec.invalid, []);
  });
});

describe('a hung stdio server (SIGSTOP): bounded calls, then replaced by itself', () => {
  let ev: McpConnector;
  const rec = new EventRecorder();
  before(async () => {
    ev = new McpConnector({
      config: parseServerConfig({
        name: 'hung',
        role: 'other',
        transport: { kind: 'stdio', command: process.execPath, args: [everythingBin(), 'stdio'] },
        ...fast,
        timeouts: { connect_ms: 15_000, call_ms: 1_200 },
        health: { ping_interval_ms: 400, degraded_after_ms: 300 },
      }),
      logger,
      onEvent: rec.sink,
    });
    await ev.start();
  });
  after(async () => {
    await ev?.close();
  });

  it('calls time out instead of hanging, the breaker opens, failed pings replace the process', async () => {
    const pid = ev.session.pid!;
    assert.equal(text(await ev.callTool({ tool: 'echo', arguments: { message: 'alive' } })), 'Echo: alive');
    process.kill(pid, 'SIGSTOP');
    try {
      const codes = await Promise.all(
        Array.from({ length: 4 }, () =>
          ev.callTool({ tool: 'echo', arguments: { message: 'x' } }).then(
            () => 'ok',
            (e: AppError) => e.code,
          ),
        ),
      );
      assert.ok(
        codes.every((c) => c === 'timeout' || c === 'unavailable'),
        `codes: ${codes.join(',')}`,
      );
      await rec.waitFor('McpServerWentDown', 1, 20_000);
    } finally {
      // SIGKILL from the session already ended it; continuing a dead pid is harmless.
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* gone */
      }
    }
    await rec.waitFor('McpServerRecovered', 1, 30_000);
    await waitFor(() => ev.breakerState === 'closed', 'breaker closed', 30_000);
    assert.notEqual(ev.session.pid, pid);
    assert.equal(text(await ev.callTool({ tool: 'echo', arguments: { message: 'new' } })), 'Echo: new');
    assert.ok(rec.count('McpCircuitOpened') >= 1, 'the timeouts opened the circuit');
    assert.match(rec.of('McpServerWentDown')[0]!.data.error, /ping/);
    assert.deepEqual(rec.invalid, []);
  });
});

describe('everything server over Streamable HTTP: stop and restart', () => {
  let port: number;
  let server: HttpServerHandle | undefined;
  let ev: McpConnector;
  const rec = new EventRecorder();

  before(async () => {
    port = await freePort();
    server = await startEverythingHttp(port);
    ev = new McpConnector({
      config: parseServerConfig({
        name: 'everything-http',
        role: 'other',
        transport: { kind: 'http', url: server.url },
        ...fast,
      }),
      logger,
      onEvent: rec.sink,
    });
    await ev.start();
  });
  after(async () => {
    await ev?.close();
    await server?.stop();
  });

  it('lists tools and calls echo and get-sum over HTTP', async () => {
    assert.equal(ev.health().state, 'up');
    assert.equal(ev.health().transport, 'http');
    const tools = await ev.listTools();
    assert.ok(tools.some((t) => t.name === 'echo'));
    assert.equal(text(await ev.callTool({ tool: 'echo', arguments: { message: 'over http' } })), 'Echo: over http');
    assert.match(text(await ev.callTool({ tool: 'get-sum', arguments: { a: 40, b: 2 } })), /is 42\b/);
    const resources = await ev.listResources();
    assert.ok(resources.length > 0);
    const read = await ev.readResource(resources[0]!.uri);
    assert.ok(read.contents.length > 0);
  });

  it('server stopped: unavailable, breaker opens; restarted: session and breaker recover by themselves', async () => {
    const from = rec.events.length;
    await server!.stop('SIGKILL');
    // Drive calls until the breaker refuses them; each is bounded by the policies.
    const codes: string[] = [];
    await waitFor(async () => {
      try {
        await ev.callTool({ tool: 'echo', arguments: { message: 'x' } });
        codes.push('ok');
      } catch (err) {
        codes.push((err as AppError).code);
        if ((err as AppError).details?.breaker === 'open') return true;
      }
      return false;
    }, 'the breaker to refuse calls');
    assert.ok(
      codes.every((c) => c === 'unavailable'),
      `codes while down: ${codes.join(',')}`,
    );
    assert.equal(ev.breakerState, 'open');
    assert.equal(ev.health().state, 'down');
    server = await startEverythingHttp(port);
    await rec.waitFor('McpServerRecovered', 1, 30_000);
    await waitFor(() => ev.breakerState === 'closed', 'breaker closed by the probe', 30_000);
    assert.equal(text(await ev.callTool({ tool: 'echo', arguments: { message: 'back' } })), 'Echo: back');
    assert.equal(ev.health().state, 'up');
    const types = rec.types().slice(from);
    assert.ok(types.includes('McpServerWentDown'));
    assert.ok(types.indexOf('McpCircuitOpened') < types.lastIndexOf('McpCircuitClosed'));
    assert.deepEqual(rec.invalid, []);
  });
});

describe('github server without a token', () => {
  it('is unconfigured: health says so, calls get unavailable with a clear message, nothing is spawned', async () => {
    const rec = new EventRecorder();
    const gh = new McpConnector({
      config: parseServerConfig({
        name: 'github',
        role: 'github',
        transport: {
          kind: 'stdio',
          command: process.execPath,
          args: [resolvePackageBin('@modelcontextprotocol/server-github')],
          required_env: ['GITHUB_PERSONAL_ACCESS_TOKEN'],
        },
      }),
      logger,
      onEvent: rec.sink,
    });
    await gh.start();
    const h = gh.health();
    assert.equal(h.state, 'unconfigured');
    assert.match(h.last_error ?? '', /GITHUB_PERSONAL_ACCESS_TOKEN/);
    assert.equal(h.pid, undefined);
    const e = await expectAppError(
      gh.callTool({ tool: 'search_repositories', arguments: { query: 'x' } }),
      'unavailable',
    );
    assert.match(e.message, /unconfigured.*GITHUB_PERSONAL_ACCESS_TOKEN/);
    assert.equal(e.details.health, 'unconfigured');
    assert.equal(rec.count('McpServerWentDown'), 0);
    await gh.close();
  });
});

describe('everything server over stdio, one call at a time: a waiting call tells its callers where it is', () => {
  let ev: McpConnector;

  before(async () => {
    ev = new McpConnector({
      config: parseServerConfig({
        name: 'everything',
        role: 'other',
        transport: { kind: 'stdio', command: process.execPath, args: [everythingBin(), 'stdio'] },
        ...fast,
        bulkhead: { max_concurrent: 1, max_queue: 8 },
      }),
      logger,
    });
    await ev.start();
  });
  after(async () => {
    await ev?.close();
  });

  it('queued, then started, to the first caller and to a caller joining by key; a call that waits past its queue budget is refused rate_limited', async () => {
    const heard: string[] = [];
    const slow = ev.callTool({
      tool: 'trigger-long-running-operation',
      arguments: { duration: 1.5, steps: 1 },
      idempotency_key: `slow-${Date.now()}`,
      onProgress: (s) => heard.push(`slow ${s}`),
    });
    await waitFor(() => ev.health().queue.in_flight === 1, 'the slow call to hold the slot');
    const key = `wait-${Date.now()}`;
    const first = ev.callTool({
      tool: 'echo',
      arguments: { message: 'after' },
      idempotency_key: key,
      queue_wait_ms: 20_000,
      onProgress: (s) => heard.push(`first ${s}`),
    });
    // Its queue budget (100 ms) runs out while the slow call holds the slot: refused, not run.
    const impatient = expectAppError(
      ev.callTool({
        tool: 'echo',
        arguments: { message: 'never' },
        idempotency_key: `${key}-x`,
        queue_wait_ms: 100,
        timeout_ms: 5_000,
      }),
      'rate_limited',
    );
    await waitFor(() => heard.includes('first queued'), 'the queued notice');
    // The same key again (a caller that sent it again after its restart): told at once that it waits.
    const again = ev.callTool({
      tool: 'echo',
      arguments: { message: 'after' },
      idempotency_key: key,
      onProgress: (s) => heard.push(`again ${s}`),
    });
    assert.ok(heard.includes('again queued'), heard.join(', '));
    await slow;
    assert.equal(text(await first), 'Echo: after');
    assert.equal(text(await again), 'Echo: after');
    const refused = await impatient;
    assert.equal(refused.retryable, true);
    assert.equal(refused.details.queue, 'expired');
    assert.deepEqual(
      heard.filter((h) => h.startsWith('slow')),
      [],
      'a call that ran at once sends nothing',
    );
    assert.deepEqual(
      heard.filter((h) => !h.startsWith('slow')),
      ['first queued', 'again queued', 'first started', 'again started'],
    );
  });

  it('a call canceled while it waits for a slot leaves the queue at once, canceled, without running', async () => {
    const slow = ev.callTool({ tool: 'trigger-long-running-operation', arguments: { duration: 2, steps: 1 } });
    await waitFor(() => ev.health().queue.in_flight === 1, 'the slow call to hold the slot');
    const key = `canceled-${Date.now()}`;
    const t0 = performance.now();
    const waiting = expectAppError(
      ev.callTool({ tool: 'echo', arguments: { message: 'never' }, idempotency_key: key }),
      'canceled',
    );
    await waitFor(() => ev.health().queue.depth === 1, 'the keyed call to wait');
    assert.equal(ev.cancelCall(key, 'the workflow was canceled'), true);
    const e = await waiting;
    const waited = performance.now() - t0;
    assert.equal(ev.health().queue.depth, 0, 'gone from the queue');
    assert.equal(ev.health().queue.in_flight, 1, 'while the slow call still runs');
    assert.ok(waited < 1_500, `answered after ${Math.round(waited)} ms, not after the slow call's 2 s`);
    assert.match(e.message, /the workflow was canceled/);
    await slow;
  });

  it("waiting calls take turns by who asked, then by workflow: a person's workflows share their turn and take turns within it", async () => {
    const answered: string[] = [];
    const call = (name: string, who: { correlation_id?: string; actor?: string; on_behalf_of?: string }) =>
      ev.callTool({ tool: 'echo', arguments: { message: name }, ...who }).then(() => void answered.push(name));
    const slow = ev.callTool({
      tool: 'trigger-long-running-operation',
      arguments: { duration: 0.5, steps: 1 },
    });
    await waitFor(() => ev.health().queue.in_flight === 1, 'the slow call to hold the slot');
    // Alice's two workflows (the engine asks on her behalf; each execution has its correlation id).
    const alice = { actor: 'system:orchestrator', on_behalf_of: 'apikey:alice' };
    const burst = [1, 2, 3, 4].map((i) => call(`a${i}`, { ...alice, correlation_id: 'workflow-a' }));
    const second = call('b', { ...alice, correlation_id: 'workflow-b' });
    // Bob's direct calls share one turn whatever their correlation ids.
    const bob = [
      call('k1', { actor: 'apikey:bob', correlation_id: 'x' }),
      call('k2', { actor: 'apikey:bob', correlation_id: 'y' }),
    ];
    // A workflow for nobody named (an older execution's, a sub-workflow's): its correlation id is its turn.
    const unnamed = call('c', { actor: 'system:orchestrator', correlation_id: 'workflow-c' });
    await waitFor(() => ev.health().queue.depth === 8, 'eight calls waiting');
    await Promise.all([slow, ...burst, second, ...bob, unnamed]);
    // Turns go alice, bob, workflow-c; within alice's, workflow-a then workflow-b; within bob's, x then y.
    assert.deepEqual(answered, ['a1', 'k1', 'c', 'b', 'k2', 'a2', 'a3', 'a4']);
  });
});

describe('a timed-out call is repeated only where running it again is harmless', () => {
  let server: SdkHttpServer;
  let connector: McpConnector;
  /** How often each tool began to run. */
  const runs = new Map<string, number>();
  const rec = new EventRecorder();

  before(async () => {
    server = await startSdkHttpServer(() => {
      const mcp = new McpServer({ name: 'effects', version: '1.0.0' });
      // Each answers after 600 ms, past the callers' 200 ms: every call below times out.
      const tool = (name: string, annotations: Record<string, boolean>) =>
        mcp.registerTool(name, { description: name, annotations, inputSchema: { n: z.number() } }, async ({ n }) => {
          runs.set(name, (runs.get(name) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 600));
          return { content: [{ type: 'text', text: `${name} ${n}` }] };
        });
      tool('append_row', {});
      tool('lookup', { readOnlyHint: true });
      tool('put_value', { idempotentHint: true });
      return mcp;
    });
    connector = new McpConnector({
      config: parseServerConfig({
        name: 'effects',
        role: 'other',
        transport: { kind: 'http', url: server.url },
        ...fast,
        retry: { max_attempts: 3, initial_delay_ms: 20, max_delay_ms: 100 },
      }),
      logger,
      onEvent: rec.sink,
    });
    await connector.start();
  });
  after(async () => {
    await connector?.close();
    await server?.close();
  });

  it('a keyed call to a tool that says nothing of its effects runs once; a read-only or idempotent one is tried max_attempts times', async () => {
    // The engine keys every step's call: a key lets a repeat of the request share its result,
    // it does not make the tool's effect happen once when the server is asked again.
    for (const name of ['append_row', 'lookup', 'put_value'])
      await expectAppError(
        connector.callTool({ tool: name, arguments: { n: 1 }, timeout_ms: 200, idempotency_key: `k-${name}` }),
        'timeout',
      );
    // Any repeat would have begun well within this.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(Object.fromEntries(runs), { append_row: 1, lookup: 3, put_value: 3 });
    const failed = rec.of('McpToolFailed');
    assert.deepEqual(
      failed.map((f) => [f.data.tool, f.data.attempts]),
      [
        ['append_row', 1],
        ['lookup', 3],
        ['put_value', 3],
      ],
    );
  });
});

describe('a cancel of a call the server already has', () => {
  let server: SdkHttpServer;
  let connector: McpConnector;
  /** Calls each tool finished (its effect done). */
  const finished = new Map<string, number>();
  const started = new Map<string, number>();

  before(async () => {
    server = await startSdkHttpServer(() => {
      const mcp = new McpServer({ name: 'effects2', version: '1.0.0' });
      // Runs 600 ms whatever it is told: as a database commits an INSERT its client gave up on.
      const tool = (name: string, annotations: Record<string, boolean>) =>
        mcp.registerTool(name, { description: name, annotations, inputSchema: { n: z.number() } }, async ({ n }) => {
          started.set(name, (started.get(name) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 600));
          finished.set(name, (finished.get(name) ?? 0) + 1);
          return { content: [{ type: 'text', text: `${name} ${n}` }] };
        });
      tool('insert_row', {});
      tool('count_rows', { readOnlyHint: true });
      return mcp;
    });
    connector = new McpConnector({
      config: parseServerConfig({
        name: 'effects2',
        role: 'other',
        transport: { kind: 'http', url: server.url },
        ...fast,
      }),
      logger,
    });
    await connector.start();
  });
  after(async () => {
    await connector?.close();
    await server?.close();
  });

  it('a tool that may have effects is let finish and its real outcome answered; a read-only one is stopped at once', async () => {
    // With effects: the caller learns what happened (the row is there), not "canceled" while the row lands after.
    const write = connector.callTool({ tool: 'insert_row', arguments: { n: 7 }, idempotency_key: 'cancel-write' });
    await waitFor(() => started.get('insert_row') === 1, 'the server to have the write');
    assert.equal(connector.cancelCall('cancel-write', 'the workflow was canceled'), true);
    assert.equal(text(await write), 'insert_row 7');
    assert.equal(finished.get('insert_row'), 1);

    // Read-only: nothing to wait for, canceled at once.
    const read = expectAppError(
      connector.callTool({ tool: 'count_rows', arguments: { n: 1 }, idempotency_key: 'cancel-read' }),
      'canceled',
    );
    await waitFor(() => started.get('count_rows') === 1, 'the server to have the read');
    const t0 = performance.now();
    assert.equal(connector.cancelCall('cancel-read', 'the workflow was canceled'), true);
    assert.match((await read).message, /the workflow was canceled/);
    assert.ok(performance.now() - t0 < 400, 'answered before the read ended');
  });
});

describe('an SDK server over Streamable HTTP that records what it receives: cancellations', () => {
  let server: SdkHttpServer;
  let url: string;
  /** Every JSON-RPC message the server received, in order: method and, for a cancel, the request it names. */
  const received: { method: string; requestId?: unknown }[] = [];
  let connector: McpConnector;

  before(async () => {
    server = await startSdkHttpServer(
      () => {
        const mcp = new McpServer({ name: 'recording', version: '1.0.0' });
        mcp.registerTool('quick', { description: 'answers at once', inputSchema: { n: z.number() } }, ({ n }) =>
          Promise.resolve({ content: [{ type: 'text', text: `quick ${n}` }] }),
        );
        mcp.registerTool(
          'slow',
          { description: 'answers when canceled', annotations: { readOnlyHint: true } },
          (extra) =>
            new Promise((resolve) =>
              extra.signal.addEventListener('abort', () => resolve({ content: [{ type: 'text', text: 'stopped' }] }), {
                once: true,
              }),
            ),
        );
        return mcp;
      },
      {
        onMessage: (m) => {
          if (m.method) received.push({ method: m.method, requestId: m.params?.requestId });
        },
      },
    );
    url = server.url;
    connector = new McpConnector({
      config: parseServerConfig({
        name: 'recording',
        role: 'other',
        transport: { kind: 'http', url },
        ...fast,
        timeouts: { connect_ms: 5_000, call_ms: 400 },
        retry: { max_attempts: 1, initial_delay_ms: 20, max_delay_ms: 100 },
      }),
      logger,
    });
    await connector.start();
  });
  after(async () => {
    await connector?.close();
    await server?.close();
  });

  it('health checks every 50 ms and a 400 ms ping interval: the interval pings only what nobody else did', async () => {
    const pinging = new McpConnector({
      config: parseServerConfig({
        name: 'recording',
        role: 'other',
        transport: { kind: 'http', url },
        ...fast,
        health: { ping_interval_ms: 400 },
      }),
      logger,
    });
    await pinging.start();
    try {
      const from = received.length;
      let checks = 0;
      for (const until = Date.now() + 2_000; Date.now() < until; checks++) {
        await pinging.checkHealth();
        await new Promise((r) => setTimeout(r, 50));
      }
      const pings = received.slice(from).filter((m) => m.method === 'ping').length;
      // Without the check for a recent ping, the interval added about five more.
      assert.ok(pings >= checks && pings <= checks + 1, `${pings} pings for ${checks} health checks`);
    } finally {
      await pinging.close();
    }
  });

  it('a call that answered is not canceled afterwards; a call that times out is', async () => {
    const from = received.length;
    for (let n = 0; n < 20; n++)
      assert.equal(text(await connector.callTool({ tool: 'quick', arguments: { n } })), `quick ${n}`);
    await Promise.all(Array.from({ length: 20 }, (_, n) => connector.callTool({ tool: 'quick', arguments: { n } })));
    // A cancel would be sent right after its call's answer: give it time to arrive before looking.
    await new Promise((r) => setTimeout(r, 200));
    const methods = received.slice(from).map((m) => m.method);
    assert.equal(methods.filter((m) => m === 'tools/call').length, 40);
    assert.deepEqual(
      methods.filter((m) => m === 'notifications/cancelled'),
      [],
      'the server was told to cancel calls it had already answered',
    );

    // The attempt's own timeout still tells the server, as the protocol asks.
    await expectAppError(connector.callTool({ tool: 'slow', arguments: {} }), 'timeout');
    await waitFor(
      () => received.slice(from).some((m) => m.method === 'notifications/cancelled'),
      'the server to be told the timed-out call is canceled',
      5_000,
    );
    assert.equal(received.slice(from).filter((m) => m.method === 'notifications/cancelled').length, 1);
  });
});

describe('what an upstream server is told of a call', () => {
  let server: SdkHttpServer;
  let connector: McpConnector;
  const events: { type: string; data: { actor?: string; on_behalf_of?: string } }[] = [];
  before(async () => {
    server = await startSdkHttpServer(() => {
      const mcp = new McpServer({ name: 'meta', version: '1.0.0' });
      mcp.registerTool('meta', { description: "answers the request's _meta" }, (extra) =>
        Promise.resolve({ content: [{ type: 'text', text: JSON.stringify(extra._meta ?? {}) }] }),
      );
      return mcp;
    });
    connector = new McpConnector({
      config: parseServerConfig({ name: 'meta', role: 'other', transport: { kind: 'http', url: server.url }, ...fast }),
      logger,
      onEvent: (e) => void events.push(e as (typeof events)[number]),
    });
    await connector.start();
  });
  after(async () => {
    await connector?.close();
    await server?.close();
  });

  it('the person the call is for goes in _meta.actor (the key, or the starter a workflow names); the system alone, none', async () => {
    const meta = async (req: { actor?: string; on_behalf_of?: string }) =>
      JSON.parse(text(await connector.callTool({ tool: 'meta', arguments: {}, correlation_id: 'corr-1', ...req })));
    assert.deepEqual(await meta({ actor: 'apikey:k1' }), { correlationId: 'corr-1', actor: 'apikey:k1' });
    assert.deepEqual(await meta({ actor: 'system:workflow-engine', on_behalf_of: 'apikey:k2' }), {
      correlationId: 'corr-1',
      actor: 'apikey:k2',
    });
    assert.deepEqual(await meta({ actor: 'token:mcp' }), { correlationId: 'corr-1', actor: 'token:mcp' });
    assert.deepEqual(await meta({ actor: 'system:monitor' }), { correlationId: 'corr-1' });
    assert.deepEqual(await meta({ actor: 'system:automation-trigger', on_behalf_of: 'system:other' }), {
      correlationId: 'corr-1',
    });
    // The recorded call names whom the system called for (the audit lists it under that key); a
    // key's own call names none.
    const called = events.filter((e) => e.type === 'McpToolCalled').map((e) => e.data);
    const ended = events.filter((e) => e.type === 'McpToolSucceeded').map((e) => e.data);
    assert.equal(called.length, 5);
    assert.deepEqual(
      called.map((d) => [d.actor, d.on_behalf_of]),
      [
        ['apikey:k1', undefined],
        ['system:workflow-engine', 'apikey:k2'],
        ['token:mcp', undefined],
        ['system:monitor', undefined],
        ['system:automation-trigger', 'system:other'],
      ],
    );
    assert.deepEqual(
      ended.map((d) => d.on_behalf_of),
      [undefined, 'apikey:k2', undefined, undefined, 'system:other'],
    );
  });
});

describe("a server whose tool's output schema has a catastrophic pattern", () => {
  let server: SdkHttpServer;
  let connector: McpConnector;
  const warnings: string[] = [];

  before(async () => {
    const s = { type: 'string', pattern: '^(a+)+$' };
    // The low-level server: it sends its JSON schemas as written (McpServer would build zod ones
    // and run the pattern on its own answer first).
    const tools = [
      { name: 'redos', inputSchema: { type: 'object' }, outputSchema: { type: 'object', properties: { s } } },
      {
        name: 'lookahead',
        inputSchema: { type: 'object' },
        outputSchema: { type: 'object', properties: { s: { type: 'string', pattern: '^(?=b)b$' } } },
      },
      { name: 'huge', inputSchema: { type: 'object' } },
      { name: 'small', inputSchema: { type: 'object' } },
    ];
    server = await startSdkHttpServer(() => {
      const hostile = new Server({ name: 'hostile', version: '1.0.0' }, { capabilities: { tools: {} } });
      hostile.setRequestHandler(ListToolsRequestSchema, () => ({ tools }));
      hostile.setRequestHandler(CallToolRequestSchema, (r) => {
        if (r.params.name === 'huge') return { content: [{ type: 'text', text: 'x'.repeat(3_000_000) }] };
        if (r.params.name === 'small') return { content: [{ type: 'text', text: 'small' }] };
        // 60 a's and a !: a backtracking RegExp would take longer than the universe has run.
        const value = r.params.name === 'redos' ? `${'a'.repeat(60)}!` : 'x';
        return { content: [{ type: 'text', text: value }], structuredContent: { s: value } };
      });
      return hostile;
    });
    connector = new McpConnector({
      config: parseServerConfig({
        name: 'hostile',
        role: 'other',
        transport: { kind: 'http', url: server.url },
        ...fast,
      }),
      // Warnings kept to look at: the session says when a schema cannot be used.
      logger: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }),
    });
    await connector.start();
  });
  after(async () => {
    await connector?.close();
    await server?.close();
  });

  it('an answer over max_response_bytes fails the call result_too_large, read no further; the next call is answered', async () => {
    const capped = new McpConnector({
      config: parseServerConfig({
        name: 'hostile-capped',
        role: 'other',
        transport: { kind: 'http', url: server.url },
        ...fast,
        max_response_bytes: 1024 * 1024,
      }),
      logger: testLogger(),
    });
    await capped.start();
    try {
      await expectAppError(capped.callTool({ tool: 'huge', arguments: {} }), 'result_too_large');
      const next = await capped.callTool({ tool: 'small', arguments: {} });
      assert.equal(text(next), 'small');
      // The same answer under the default cap (16 MiB) is read whole.
      assert.equal(text(await connector.callTool({ tool: 'huge', arguments: {} })).length, 3_000_000);
    } finally {
      await capped.close();
    }
  });

  it('answers that the result does not match, in linear time; a schema it cannot use checks nothing and is reported', async () => {
    const refused = await connector.callTool({ tool: 'redos', arguments: {} }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(refused instanceof AppError, `a refusal, got ${String(refused)}`);
    assert.match(refused.message, /does not match the tool's output schema/);
    const passed = await connector.callTool({ tool: 'lookahead', arguments: {} });
    assert.deepEqual(passed.structuredContent, { s: 'x' });
    assert.ok(
      warnings.some((w) => w.includes('output schema cannot be used') && w.includes('Perl syntax')),
      warnings.join('\n'),
    );
  });
});

describe('a server whose tool list pages on and on', () => {
  let server: SdkHttpServer;
  let connector: McpConnector;
  const warnings: string[] = [];
  let pagesServed = 0;

  before(async () => {
    server = await startSdkHttpServer(() => {
      const paging = new Server({ name: 'paging', version: '1.0.0' }, { capabilities: { tools: {} } });
      // Every page one tool with a 200 KB description, and always a next page.
      paging.setRequestHandler(ListToolsRequestSchema, (r) => {
        const page = Number(r.params?.cursor ?? 0);
        pagesServed++;
        return {
          tools: [{ name: `t${page}`, description: 'd'.repeat(200_000), inputSchema: { type: 'object' } }],
          nextCursor: String(page + 1),
        };
      });
      return paging;
    });
    connector = new McpConnector({
      config: parseServerConfig({
        name: 'paging',
        role: 'other',
        transport: { kind: 'http', url: server.url },
        ...fast,
        max_response_bytes: 1024 * 1024,
      }),
      logger: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }),
    });
    await connector.start();
  });
  after(async () => {
    await connector?.close();
    await server?.close();
  });

  it('keeps the pages within max_response_bytes in all and says so, instead of a hundred pages', async () => {
    const tools = await connector.listTools();
    assert.ok(tools.length >= 1 && tools.length <= 5, `${tools.length} tools kept`);
    assert.ok(pagesServed <= 6, `${pagesServed} pages read`);
    assert.ok(
      warnings.some((w) => w.includes('tools list is over max_response_bytes')),
      warnings.join('\n'),
    );
  });
});
