import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseServerConfig, type McpServerConfigInput } from '../registry/schema.js';
import { resolvePackageBin } from '../registry/resolve-bin.js';
import { McpConnector } from './mcp-connector.js';
import { EventRecorder, expectAppError, testLogger } from '../spec-support.js';

/**
 * A filesystem server whose host is short of disk space answers a write with an error result
 * (`ENOSPC: no space left on device, write`): through the real connector that is `unavailable`
 * and retryable, so a step's retry policy applies and a later call with the same key runs again;
 * any other error result stays the tool's answer (`tool_error`).
 */

const logger = testLogger();
const text = (r: { content?: unknown[] }): string =>
  ((r.content ?? []) as { type: string; text?: string }[])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');

const fast: Partial<McpServerConfigInput> = {
  timeouts: { connect_ms: 15_000, call_ms: 5_000 },
  retry: { max_attempts: 2, initial_delay_ms: 20, max_delay_ms: 100 },
  breaker: { consecutive_failures: 3, half_open_after_ms: 300 },
  reconnect: { initial_delay_ms: 100, max_delay_ms: 500 },
  health: { ping_interval_ms: 0 },
};

/**
 * A stdio server of the SDK: `write_file` answers as the official server does on a full disk while
 * `<root>/.disk-full` exists, else writes; `answer_error` answers an error result with the text it is given.
 */
const shortHostServer = (): string => `
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Server } from ${JSON.stringify(import.meta.resolve('@modelcontextprotocol/sdk/server/index.js'))};
import { StdioServerTransport } from ${JSON.stringify(import.meta.resolve('@modelcontextprotocol/sdk/server/stdio.js'))};
import { CallToolRequestSchema, ListToolsRequestSchema } from ${JSON.stringify(import.meta.resolve('@modelcontextprotocol/sdk/types.js'))};
const root = process.argv[2];
const server = new Server({ name: 'short-host', version: '1.0.0' }, { capabilities: { tools: {} } });
const object = (props) => ({ type: 'object', properties: props, required: Object.keys(props) });
server.setRequestHandler(ListToolsRequestSchema, async () => ({
  tools: [
    { name: 'write_file', inputSchema: object({ path: { type: 'string' }, content: { type: 'string' } }) },
    { name: 'answer_error', inputSchema: object({ text: { type: 'string' } }) },
  ],
}));
server.setRequestHandler(CallToolRequestSchema, async (req) => {
  const a = req.params.arguments ?? {};
  if (req.params.name === 'answer_error') return { content: [{ type: 'text', text: a.text }], isError: true };
  if (existsSync(path.join(root, '.disk-full')))
    return { content: [{ type: 'text', text: 'ENOSPC: no space left on device, write' }], isError: true };
  writeFileSync(a.path, a.content);
  return { content: [{ type: 'text', text: 'Successfully wrote to ' + a.path }] };
});
await server.connect(new StdioServerTransport());
`;

describe('a filesystem server short of a resource of its host (SDK server over stdio)', () => {
  let base: string;
  let root: string;
  let fsConnector: McpConnector;
  let otherConnector: McpConnector;
  const rec = new EventRecorder();

  const connector = (name: string, role: McpServerConfigInput['role'], script: string) =>
    new McpConnector({
      config: parseServerConfig({
        name,
        role,
        transport: { kind: 'stdio', command: process.execPath, args: [script, root], cwd: root },
        ...fast,
      }),
      logger,
      onEvent: rec.sink,
    });

  before(async () => {
    base = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'sy-short-host-')));
    root = path.join(base, 'root');
    mkdirSync(root);
    const script = path.join(base, 'short-host-server.mjs');
    writeFileSync(script, shortHostServer());
    fsConnector = connector('filesystem', 'filesystem', script);
    otherConnector = connector('notes', 'other', script);
    await Promise.all([fsConnector.start(), otherConnector.start()]);
  });
  after(async () => {
    await Promise.all([fsConnector?.close(), otherConnector?.close()]);
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('answers a write that finds the disk full unavailable (retryable), and runs it again under the same key once there is room', async () => {
    const full = path.join(root, '.disk-full');
    const report = path.join(root, 'report.md');
    writeFileSync(full, '');
    const call = () =>
      fsConnector.callTool({
        tool: 'write_file',
        arguments: { path: report, content: '# Revenue' },
        idempotency_key: 'report-1',
      });
    const e = await expectAppError(call(), 'unavailable');
    assert.equal(e.retryable, true);
    assert.equal(e.details.host_shortage, 'ENOSPC');
    assert.equal(e.details.retry_after_ms, 5_000);
    assert.match(e.message, /short of disk space.*ENOSPC: no space left on device, write$/);
    const failed = rec.of('McpToolFailed').at(-1)!;
    assert.equal(failed.data.outcome, 'error');
    assert.equal(failed.data.error_code, 'unavailable');
    assert.match(String(failed.data.error_message), /ENOSPC: no space left on device, write/);
    assert.equal(failed.data.attempts, 1, 'not retried within the connector');
    assert.equal(fsConnector.breakerState, 'closed', 'the server works: not counted against the breaker');

    rmSync(full);
    const again = await call();
    assert.notEqual(again.isError, true, text(again));
    assert.equal(readFileSync(report, 'utf8'), '# Revenue');
  });

  it('leaves every other error result the tool answer (tool_error), the codes only mentioned too', async () => {
    for (const answer of [
      'Access denied - path outside allowed directories: /etc/passwd not in /srv',
      "ENOENT: no such file or directory, open 'missing.txt'",
      'could not save the report: ENOSPC: no space left on device, write',
      'ENOSPC is what the log said',
      // A failing device, not a shortage that passes.
      'EIO: i/o error, write',
    ]) {
      const r = await fsConnector.callTool({ tool: 'answer_error', arguments: { text: answer } });
      assert.equal(r.isError, true, answer);
      const failed = rec.of('McpToolFailed').at(-1)!;
      assert.equal(failed.data.outcome, 'tool_error', answer);
      assert.equal(failed.data.error_code, 'tool_error', answer);
    }
  });

  it('leaves the same answer of a server of another role the tool answer', async () => {
    const r = await otherConnector.callTool({
      tool: 'answer_error',
      arguments: { text: 'ENOSPC: no space left on device, write' },
    });
    assert.equal(r.isError, true);
    assert.equal(rec.of('McpToolFailed').at(-1)!.data.outcome, 'tool_error');
  });
});

describe('the official filesystem server on a full tmpfs', () => {
  let base: string;
  let root: string;
  let mounted = false;
  let whyNot: string | undefined;
  let fsConnector: McpConnector;
  const rec = new EventRecorder();

  before(async () => {
    base = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'sy-full-disk-')));
    root = path.join(base, 'root');
    mkdirSync(root);
    if (process.getuid?.() !== 0) whyNot = 'mounting a tmpfs needs root';
    else
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', root], { stdio: 'pipe' });
        mounted = true;
      } catch (err) {
        whyNot = `cannot mount a tmpfs here: ${(err as Error).message}`;
      }
    if (!mounted) return;
    fsConnector = new McpConnector({
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
    await fsConnector.start();
  });
  after(async () => {
    await fsConnector?.close();
    if (mounted) execFileSync('umount', [root], { stdio: 'pipe' });
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('answers a write_file that hits ENOSPC unavailable (retryable); the same key writes it once there is room', async (t) => {
    if (!mounted) return t.skip(whyNot);
    writeFileSync(path.join(root, 'kept.txt'), 'kept');
    const filler = path.join(root, 'filler');
    assert.throws(() => writeFileSync(filler, Buffer.alloc(1024 * 1024, 1)), /ENOSPC/);
    const report = path.join(root, 'report.md');
    const call = () =>
      fsConnector.callTool({
        tool: 'write_file',
        arguments: { path: report, content: 'x'.repeat(16 * 1024) },
        idempotency_key: 'report-1',
      });
    const e = await expectAppError(call(), 'unavailable');
    assert.equal(e.retryable, true);
    assert.equal(e.details.host_shortage, 'ENOSPC');
    assert.match(e.message, /ENOSPC: no space left on device/);
    const failed = rec.of('McpToolFailed').at(-1)!;
    assert.equal(failed.data.outcome, 'error');
    assert.equal(failed.data.error_code, 'unavailable');
    // Reads need no room: they go on, and the breaker stays closed.
    const read = await fsConnector.callTool({
      tool: 'read_text_file',
      arguments: { path: path.join(root, 'kept.txt') },
    });
    assert.equal(text(read), 'kept');
    assert.equal(fsConnector.breakerState, 'closed');

    rmSync(filler);
    const again = await call();
    assert.notEqual(again.isError, true, text(again));
    assert.equal(readFileSync(report, 'utf8'), 'x'.repeat(16 * 1024));
  });
});
