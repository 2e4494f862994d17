import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseServerConfig } from '../registry/schema.js';
import { testLogger } from '../spec-support.js';
import { McpSession } from './mcp-session.js';
import { detectStdioSandbox, type StdioSandbox } from '@switchyard/platform';

const probeMain = path.join(import.meta.dirname, 'testing', 'proc-probe-main.js');
const sandbox = detectStdioSandbox('auto', [], testLogger());
const skip = sandbox
  ? false
  : 'bwrap cannot run on this machine (apt-get install bubblewrap): the sandbox is not tested here';
if (!sandbox) console.log(`# stdio sandbox spec skipped: ${skip}`);

/**
 * A stdio MCP server is someone else's program running as our OS user. In the sandbox it must not
 * see this process (its environment and memory hold the NATS token, the API keys, the database
 * passwords) nor the data dir's secret files; as a plain child it can, which the control shows.
 * A real stdio server (the SDK's), spawned through the real session.
 */
describe('stdio MCP servers run in a sandbox: they see neither this process nor the hidden secrets', { skip }, () => {
  let scratch: string;
  let secretFile: string;
  let secretDir: string;

  before(() => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'stdio-sandbox-'));
    secretFile = path.join(scratch, 'token');
    writeFileSync(secretFile, 'the-nats-token', { mode: 0o600 });
    secretDir = path.join(scratch, 'nats');
    mkdirSync(secretDir);
    writeFileSync(path.join(secretDir, 'relay-password'), 'p', { mode: 0o600 });
  });

  after(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  async function probe(box: StdioSandbox | undefined, writable: string[] = []): Promise<Record<string, unknown>> {
    const session = new McpSession({
      config: parseServerConfig({
        name: 'probe',
        role: 'other',
        transport: { kind: 'stdio', command: process.execPath, args: [probeMain], writable },
        timeouts: { connect_ms: 20_000, call_ms: 20_000 },
        health: { ping_interval_ms: 0 },
      }),
      logger: testLogger(),
      ...(box && { stdioSandbox: box }),
    });
    await session.start();
    try {
      const r = await session.callTool('probe', {
        pid: process.pid,
        file: secretFile,
        dir: secretDir,
        writes: [path.join(scratch, 'outside.js'), path.join(scratch, 'given', 'inside.txt')],
      });
      return JSON.parse((r.content[0] as { text: string }).text) as Record<string, unknown>;
    } finally {
      await session.close();
    }
  }

  it('sandboxed: no /proc of this process, the secret file not readable, the secret directory empty', async () => {
    mkdirSync(path.join(scratch, 'given'), { recursive: true });
    const seen = await probe({ ...sandbox!, hide: [secretFile, secretDir, path.join(scratch, 'not-there')] }, [
      path.join(scratch, 'given'),
    ]);
    assert.deepEqual(
      { ...seen, umount: String(seen.umount).startsWith('error') ? 'refused' : seen.umount },
      {
        sees_pid: false,
        environ: 'error: ENOENT',
        file: 'error: EACCES',
        dir: '',
        cap_eff: '0000000000000000',
        umount: 'refused',
        // The machine is read-only (a server could otherwise rewrite code the launcher loads later);
        // it writes where it was given.
        wrote: ['error: EROFS', 'written'],
      },
    );
  });

  it('a plain child (the control) sees all of it', async () => {
    const seen = await probe(undefined);
    assert.equal(seen.sees_pid, true);
    assert.match(String(seen.environ), /^\d+$/);
    assert.equal(seen.file, 'the-nats-token');
    assert.equal(seen.dir, 'relay-password');
    assert.notEqual(seen.umount, 'unmounted');
  });
});

describe('detectStdioSandbox', () => {
  it('without a working bwrap: `auto` runs without a sandbox, `bwrap` refuses to start, `off` never looks', () => {
    const missing = path.join('/nonexistent', 'bwrap');
    assert.equal(detectStdioSandbox('auto', [], testLogger(), missing), undefined);
    assert.throws(() => detectStdioSandbox('bwrap', [], testLogger(), missing), /MCP_STDIO_SANDBOX=bwrap/);
    assert.equal(detectStdioSandbox('off', [], testLogger()), undefined);
  });
});
