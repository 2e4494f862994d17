import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * The launcher itself, given two port variables with one value: it exits 1 at once naming both,
 * before it starts or touches anything (no PostgreSQL cluster made in its data dir).
 */
describe('a launcher given one port twice, or a port another program holds', () => {
  it('refuses at once, naming both variables, and starts nothing', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'port-clash-'));
    try {
      const env: Record<string, string | undefined> = {
        ...process.env,
        DATA_DIR: path.join(dir, 'data'),
        GATEWAY_PORT: '30700',
        MCP_DATABASE_PORT: '30700',
        LOG_LEVEL: 'info',
      };
      for (const k of ['DATABASE_URL', 'NATS_URL', 'TEST_DATABASE_URL', 'TEST_NATS_URL']) delete env[k];
      const t0 = Date.now();
      const r = spawnSync(process.execPath, [path.resolve(import.meta.dirname, 'main.js')], {
        env,
        encoding: 'utf8',
        timeout: 60_000,
      });
      const out = `${r.stdout}${r.stderr}`;
      assert.equal(r.status, 1, out.slice(-2000));
      assert.match(out, /GATEWAY_PORT: 30700 is also MCP_DATABASE_PORT/);
      assert.equal(existsSync(path.join(dir, 'data', 'postgres')), false, 'no cluster was made');
      console.log(`# refused in ${Date.now() - t0} ms`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses at once when an HTTP listener's port is held by another program, naming its variable", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'port-taken-'));
    const squatter = http.createServer((_req, res) => res.end('not ours'));
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const port = (squatter.address() as AddressInfo).port;
    try {
      const env: Record<string, string | undefined> = {
        ...process.env,
        DATA_DIR: path.join(dir, 'data'),
        GATEWAY_PORT: String(port),
        LOG_LEVEL: 'info',
      };
      for (const k of ['DATABASE_URL', 'NATS_URL', 'TEST_DATABASE_URL', 'TEST_NATS_URL']) delete env[k];
      const r = await new Promise<{ status: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, [path.resolve(import.meta.dirname, 'main.js')], { env });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        child.once('exit', (status) => resolve({ status, out }));
      });
      assert.equal(r.status, 1, r.out.slice(-2000));
      assert.match(r.out, new RegExp(`GATEWAY_PORT: port ${port} \\(gateway\\) is taken by another program`));
      assert.equal(existsSync(path.join(dir, 'data', 'postgres')), false, 'no cluster was made');
    } finally {
      squatter.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
