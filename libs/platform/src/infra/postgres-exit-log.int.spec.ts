import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { freePort } from './ports.js';
import { startEmbeddedPostgres } from './postgres.js';

describe('an embedded PostgreSQL that stops on its own', () => {
  it('logs its last lines at error level, so the reason is seen at the default level', async () => {
    const lines: { level: number; msg: string; lastLines?: string[] }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
        done();
      },
    });
    const logger = pino({ level: 'info' }, sink);
    const dir = mkdtempSync(path.join(tmpdir(), 'pg-exit-log-'));
    try {
      // A setting the server refuses: it writes why and exits 1 before accepting connections.
      await assert.rejects(
        startEmbeddedPostgres({
          dataDir: path.join(dir, 'pg'),
          port: await freePort(),
          logger,
          settings: { shared_buffers: 'nonsense' },
        }),
        /exited with code/,
      );
      const exit = lines.find((l) => l.msg.startsWith('postgres exited'));
      assert.ok(exit, `an exit line among ${JSON.stringify(lines.map((l) => l.msg))}`);
      assert.equal(exit.level, 50);
      assert.ok(
        exit.lastLines?.some((l) => /invalid value for parameter "shared_buffers"/.test(l)),
        JSON.stringify(exit.lastLines),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
