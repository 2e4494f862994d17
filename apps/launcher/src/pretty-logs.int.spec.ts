/**
 * The launcher's own logger in pretty mode (LOG_FORMAT=pretty, stdout a pipe): readable lines with
 * level, app and correlation id, the start banner at the end, and no JSON on stdout.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { freePort } from '@switchyard/platform';
import { freshDatabase, stopOwnInfra, testNatsUrl, until } from '@switchyard/testing';

const main = path.resolve(import.meta.dirname, 'main.js');
const adminKey = `sy_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;

describe('launcher logs in pretty mode', () => {
  let proc: ChildProcess;
  let stdout = '';
  let stderr = '';
  let port = 0;
  let exited: Promise<number | null>;

  before(async () => {
    port = await freePort();
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      DATABASE_URL: await freshDatabase('pretty_logs'),
      NATS_URL: await testNatsUrl(),
      GATEWAY_PORT: String(port),
      GATEWAY_HOST: '127.0.0.1',
      SWITCHYARD_ADMIN_KEY: adminKey,
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'pretty',
      NO_COLOR: '1',
    };
    proc = spawn(process.execPath, [main, 'relay', 'gateway'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    exited = new Promise((r) => proc.once('exit', (c) => r(c)));
    await until('the start banner', () => stdout.includes('Ctrl-C') || proc.exitCode !== null, 90_000);
    assert.equal(proc.exitCode, null, `launcher exited:\n${stdout}\n${stderr}`);
  });

  after(async () => {
    if (proc && proc.exitCode === null) {
      proc.kill('SIGTERM');
      await exited;
    }
    await stopOwnInfra();
  });

  it('writes readable lines, not JSON, and ends the start with the banner', () => {
    const lines = stdout.split('\n').filter((l) => l.trim());
    assert.ok(lines.length > 3, stdout);
    assert.equal(lines.filter((l) => l.startsWith('{')).length, 0, `JSON on stdout:\n${stdout}`);
    assert.match(
      stdout,
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: \[switchyard\] switchyard is up \{.*"gatewayUrl":"http:\/\/127\.0\.0\.1:\d+"/m,
    );
    assert.match(stdout, new RegExp(`API docs +http://127\\.0\\.0\\.1:${port}/docs`));
    assert.match(stdout, /Admin key +the value of SWITCHYARD_ADMIN_KEY/);
    assert.match(stdout, /PostgreSQL postgres:\/\/.*\(DATABASE_URL\)/);
    assert.doesNotMatch(stdout, /postgres:\/\/[^:\s]+:(?!\*\*\*@)[^@\s]+@/, 'no database password in the banner');
    // The banner comes after the last start line.
    assert.ok(stdout.lastIndexOf('Switchyard is up.') > stdout.indexOf('switchyard is up'));
  });

  it('keeps the correlation id of a request in its line', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/events?limit=1`, {
      headers: { authorization: `Bearer ${adminKey}`, 'x-correlation-id': 'pretty-logs-check-1' },
    });
    assert.equal(res.status, 200);
    await until('the request line', () => stdout.includes('[pretty-logs-check-1]'), 10_000);
    const line = stdout.split('\n').find((l) => l.includes('[pretty-logs-check-1]'))!;
    assert.match(line, /INFO: \[switchyard\] \[pretty-logs-check-1\] request completed \{.*"status":200/);
  });
});
