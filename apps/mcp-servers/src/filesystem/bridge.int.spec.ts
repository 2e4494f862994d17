import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { detectStdioSandbox } from '@switchyard/platform';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { call, httpClient, silentLogger } from '../test-helpers.js';
import { startFilesystemBridge, type FilesystemBridge, type FilesystemBridgeOptions } from './bridge.js';

const text = (r: { content: unknown }): string =>
  (r.content as { type: string; text: string }[]).map((c) => c.text).join('\n');

/** A bridge on `root` served over Streamable HTTP, and an SDK client of it; `close()` ends all three. */
async function serveBridge(opts: FilesystemBridgeOptions): Promise<{
  bridge: FilesystemBridge;
  http: McpHttpServerHandle;
  client: Client;
  close: () => Promise<void>;
}> {
  const bridge = await startFilesystemBridge(opts);
  const http = await startMcpHttpServer({
    name: 'filesystem-bridge',
    serverFactory: () => bridge.serverFactory(),
    port: 0,
    logger: silentLogger,
    health: async () => ({ root: bridge.root }),
  });
  const client = await httpClient(http.url);
  return {
    bridge,
    http,
    client,
    close: async () => {
      await client.close();
      await http.close();
      await bridge.close();
    },
  };
}

describe('filesystem bridge (official server-filesystem over stdio, exposed on Streamable HTTP)', () => {
  let scratch: string;
  let bridge: FilesystemBridge;
  let http: McpHttpServerHandle;
  let client: Client;
  let close: (() => Promise<void>) | undefined;

  before(async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'fs-bridge-'));
    writeFileSync(path.join(scratch, 'outside.txt'), 'not for you');
    ({ bridge, http, client, close } = await serveBridge({ root: path.join(scratch, 'root'), logger: silentLogger }));
  });

  after(async () => {
    await close?.();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('forwards the official tool list', async () => {
    const names = (await client.listTools()).tools.map((t) => t.name);
    for (const n of ['read_text_file', 'write_file', 'list_directory', 'create_directory', 'list_allowed_directories'])
      assert.ok(names.includes(n), n);
    // The sandbox is reported relative to itself: no absolute server path leaves the bridge.
    const allowed = await call(client, 'list_allowed_directories');
    assert.ok(!text(allowed).includes(bridge.root), text(allowed));
    assert.match(text(allowed), /^\.$/m);
  });

  it('reports a failed call without the absolute path of the sandbox', async () => {
    const missing = await call(client, 'read_text_file', { path: path.join(bridge.root, 'no', 'such.txt') });
    assert.equal(missing.isError, true);
    assert.ok(!text(missing).includes(bridge.root), `absolute root in: ${text(missing)}`);
    assert.match(text(missing), /no[/\\]such\.txt/);
    const outside = await call(client, 'read_text_file', { path: path.join(bridge.root, '..', 'outside.txt') });
    assert.equal(outside.isError, true);
    assert.ok(!text(outside).includes(bridge.root), `absolute root in: ${text(outside)}`);
  });

  it('writes, lists and reads inside the root', async () => {
    const mk = await call(client, 'create_directory', { path: path.join(bridge.root, 'notes') });
    assert.notEqual(mk.isError, true, text(mk));
    const w = await call(client, 'write_file', {
      path: path.join(bridge.root, 'notes', 'a.txt'),
      content: 'hello bridge',
    });
    assert.notEqual(w.isError, true, text(w));
    assert.equal(readFileSync(path.join(bridge.root, 'notes', 'a.txt'), 'utf8'), 'hello bridge');
    const ls = await call(client, 'list_directory', { path: bridge.root });
    assert.match(text(ls), /\[DIR\] notes/);
    const r = await call(client, 'read_text_file', { path: path.join(bridge.root, 'notes', 'a.txt') });
    assert.equal(text(r), 'hello bridge');
  });

  it('refuses an extended glob before it reaches the official server (it would match it without bound)', async () => {
    await assert.rejects(
      call(client, 'search_files', { path: bridge.root, pattern: '+(a|aa)+(a|aa)+(a|aa)b' }),
      /extended glob patterns/,
    );
    const plain = await call(client, 'search_files', { path: bridge.root, pattern: '*.txt' });
    assert.notEqual(plain.isError, true, text(plain));
  });

  it("passes the official server's refusal of ../ traversal back to the client", async () => {
    for (const p of [path.join(bridge.root, '..', 'outside.txt'), `${bridge.root}/../outside.txt`, '../outside.txt']) {
      const r = await call(client, 'read_text_file', { path: p });
      assert.equal(r.isError, true, `${p} should be refused`);
      assert.match(text(r), /Access denied|outside allowed/i);
      assert.doesNotMatch(text(r), /not for you/);
    }
    const w = await call(client, 'write_file', { path: path.join(bridge.root, '..', 'evil.txt'), content: 'x' });
    assert.equal(w.isError, true);
  });

  it('reports health from the child process', async () => {
    const res = await fetch(http.url.replace(/\/mcp$/, '/health'));
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { root: string }).root, bridge.root);
    assert.equal(bridge.alive(), true);
  });

  it('restarts the official server when it dies', async () => {
    const pid = bridge.pid;
    assert.ok(pid, 'child running');
    process.kill(pid, 'SIGKILL');
    // Wait for the outcome (a new child answering), not for a duration.
    for (let i = 0; i < 300 && (bridge.pid === null || bridge.pid === pid); i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.ok(bridge.pid && bridge.pid !== pid, 'a new child is running');
    const c = await httpClient(http.url);
    try {
      const r = await call(c, 'read_text_file', { path: path.join(bridge.root, 'notes', 'a.txt') });
      assert.equal(text(r), 'hello bridge');
    } finally {
      await c.close();
    }
  });
});

describe('filesystem bridge: a child that lives but no longer answers', () => {
  let scratch: string;
  let served: Awaited<ReturnType<typeof serveBridge>> | undefined;
  let stopped: number | undefined;

  before(async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'fs-bridge-hung-'));
    mkdirSync(path.join(scratch, 'root'));
    writeFileSync(path.join(scratch, 'root', 'a.txt'), 'still here');
    served = await serveBridge({
      root: path.join(scratch, 'root'),
      logger: silentLogger,
      ping: { everyMs: 200, timeoutMs: 300 },
    });
  });

  after(async () => {
    if (stopped) {
      try {
        process.kill(stopped, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    await served?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('is reported as not answering, then replaced by a child that does', async () => {
    const { bridge, http } = served!;
    assert.equal(await bridge.answers(1_000), true);
    stopped = bridge.pid!;
    process.kill(stopped, 'SIGSTOP');
    // Its process still exists, but it answers nothing: not healthy.
    assert.equal(bridge.alive(), true);
    assert.equal(await bridge.answers(300), false);
    // Wait for the outcome (a new child answering), not for a duration.
    for (let i = 0; i < 300 && (bridge.pid === null || bridge.pid === stopped); i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.ok(bridge.pid && bridge.pid !== stopped, 'a new child is running');
    assert.equal(await bridge.answers(2_000), true);
    const c = await httpClient(http.url);
    try {
      const r = await call(c, 'read_text_file', { path: path.join(bridge.root, 'a.txt') });
      assert.equal(text(r), 'still here');
    } finally {
      await c.close();
    }
  });
});

const sandbox = detectStdioSandbox('auto', [], silentLogger);
const noSandbox = sandbox ? false : 'bwrap cannot run on this machine (apt-get install bubblewrap): not tested here';
if (!sandbox) console.log(`# sandboxed filesystem bridge spec skipped: ${noSandbox}`);

describe(
  'filesystem bridge in the stdio sandbox: works, and what the sandbox hides stays hidden',
  { skip: noSandbox },
  () => {
    let scratch: string;
    let bridge: FilesystemBridge;
    let client: Client;
    let close: (() => Promise<void>) | undefined;

    before(async () => {
      mkdirSync(path.resolve('.tmp'), { recursive: true });
      scratch = mkdtempSync(path.resolve('.tmp', 'fs-bridge-sandboxed-'));
      const root = path.join(scratch, 'root');
      mkdirSync(path.join(root, 'hidden'), { recursive: true });
      writeFileSync(path.join(root, 'hidden', 'token'), 'the-nats-token');
      writeFileSync(path.join(root, 'open.txt'), 'for everyone');
      ({ bridge, client, close } = await serveBridge({
        root,
        logger: silentLogger,
        sandbox: { ...sandbox!, hide: [path.join(root, 'hidden')] },
      }));
    });

    after(async () => {
      await close?.();
      if (scratch) rmSync(scratch, { recursive: true, force: true });
    });

    it('reads what is open and sees an empty directory where a secret is hidden', async () => {
      const r = await call(client, 'read_text_file', { path: path.join(bridge.root, 'open.txt') });
      assert.equal(text(r), 'for everyone');
      const secret = await call(client, 'read_text_file', { path: path.join(bridge.root, 'hidden', 'token') });
      assert.equal(secret.isError, true);
      assert.ok(!text(secret).includes('the-nats-token'));
      const ls = await call(client, 'list_directory', { path: path.join(bridge.root, 'hidden') });
      assert.doesNotMatch(text(ls), /token/);
    });
  },
);
