import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@switchyard/platform';
import { connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { testNatsUrl } from '@switchyard/testing';
import {
  callToolReplySchema,
  mcpRegistryListSubject,
  mcpSubject,
  registryListReplySchema,
  type RegistryListReply,
} from '@switchyard/contracts';
import { testLogger, waitFor } from './spec-support.js';

/** The connectors process as the launcher would run it: defaults for all six roles, served on NATS. */
describe('connectors main process', () => {
  const main = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');
  const prefix = `switchyard.svc.mcpmain${process.pid}.v1`;
  let dir: string;
  let proc: ChildProcess;
  let exited: Promise<number | null>;
  let nc: NatsConnection;

  before(async () => {
    dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'sy-main-')));
    const url = await testNatsUrl();
    const closed = `http://127.0.0.1:${await freePort()}/mcp`; // nothing listens there: those servers are down
    const env: Record<string, string | undefined> = {
      ...process.env,
      NATS_URL: url,
      FILESYSTEM_ROOT: path.join(dir, 'files'),
      CONNECTORS_SUBJECT_PREFIX: prefix,
      CONNECTORS_QUEUE: `main-${process.pid}`,
      MCP_DATABASE_URL: closed,
      MCP_FETCH_URL: closed,
      MCP_AUTOMATION_URL: closed,
      MCP_ANALYTICS_URL: closed,
      // Every own server off its default port: a running `npm start` listens on 5002-5007.
      MCP_DATABASE_WRITER_URL: closed,
      LOG_LEVEL: 'warn',
      GITHUB_PERSONAL_ACCESS_TOKEN: undefined,
      MCP_SERVERS_FILE: undefined,
    };
    proc = spawn(process.execPath, [main], { cwd: dir, env: env, stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr!.resume();
    exited = new Promise((r) => proc.once('exit', (code) => r(code)));
    nc = await connectNats({ url, name: 'main-spec', logger: testLogger() });
  });

  after(async () => {
    if (proc && proc.exitCode === null) proc.kill('SIGKILL');
    await nc?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the six default roles: filesystem up, own HTTP servers down, github unconfigured', async () => {
    let reply: RegistryListReply | undefined;
    await waitFor(
      async () => {
        reply = await request(nc, mcpRegistryListSubject(prefix), undefined, {
          schema: registryListReplySchema,
          timeoutMs: 1_000,
        }).catch(() => undefined);
        return reply !== undefined;
      },
      'the connectors process to answer registry.list',
      30_000,
      200,
    );
    const byName = Object.fromEntries(reply!.servers.map((s) => [s.server, s]));
    assert.deepEqual(Object.keys(byName).sort(), [
      'analytics',
      'automation',
      'database',
      'database_writer',
      'fetch',
      'filesystem',
      'github',
    ]);
    assert.equal(byName.filesystem!.state, 'up');
    assert.equal(byName.github!.state, 'unconfigured');
    for (const n of ['database', 'database_writer', 'fetch', 'automation', 'analytics'])
      assert.equal(byName[n]!.state, 'down', n);
    const r = await request(
      nc,
      mcpSubject('filesystem', 'call_tool', prefix),
      { tool: 'list_allowed_directories' },
      { schema: callToolReplySchema, timeoutMs: 10_000 },
    );
    // The sandbox is reported relative to itself (`.`), never as the server's absolute path.
    assert.match(JSON.stringify(r.content), /Allowed directories:\\n\."/);
    // A failed call (missing file, a path outside) reports no absolute path of the sandbox either.
    for (const p of [path.join(dir, 'files', 'no', 'such.txt'), path.join(dir, 'files', '..', 'outside.txt')]) {
      const failed = await request(
        nc,
        mcpSubject('filesystem', 'call_tool', prefix),
        { tool: 'read_text_file', arguments: { path: p } },
        { schema: callToolReplySchema, timeoutMs: 10_000 },
      ).catch((e: unknown) => ({ content: [{ type: 'text', text: String(e) }] }));
      assert.ok(!JSON.stringify(failed).includes(path.join(dir, 'files')), JSON.stringify(failed));
      assert.match(JSON.stringify(failed), /such\.txt|outside|denied/i);
    }
  });

  it('stops cleanly on SIGTERM and takes its stdio children with it', async () => {
    const h = await request(nc, mcpRegistryListSubject(prefix), undefined, { schema: registryListReplySchema });
    const childPid = h.servers.find((s) => s.server === 'filesystem')!.pid!;
    assert.ok(childPid > 0);
    proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      exited,
      new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 20_000))),
    ]);
    clearTimeout(timer);
    assert.equal(code, 0);
    await waitFor(
      () => {
        try {
          process.kill(childPid, 0);
          return false;
        } catch {
          return true;
        }
      },
      'the filesystem server child to exit',
      10_000,
    );
  });
});
