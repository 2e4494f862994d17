import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from './postgres.js';
import { freePort } from './ports.js';

const why =
  os.userInfo().uid !== 0 ? 'needs root (the cluster is relocated only for the postgres user root runs it as)' : '';

/**
 * A data dir below a directory the postgres user cannot enter (a clone in /root) keeps its cluster
 * in /var/lib/switchyard/<hash of the path>; the data dir records where. A copy of the data dir at
 * another path is refused, naming both places, instead of starting an empty database.
 */
describe('a relocated cluster follows its data dir, or the start says where it is', { skip: why || false }, () => {
  let scratch: string;
  const relocated: string[] = [];

  before(() => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'pg-relocated-'));
    chmodSync(scratch, 0o755);
    mkdirSync(path.join(scratch, 'closed'), { mode: 0o700 });
    chmodSync(path.join(scratch, 'closed'), 0o700);
  });

  after(() => {
    for (const dir of relocated) rmSync(path.dirname(dir), { recursive: true, force: true });
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('records where the cluster went; a copy of the data dir elsewhere is refused, naming both places', async () => {
    const original = path.join(scratch, 'closed', 'a', 'data', 'postgres');
    const port = await freePort();
    const pg = await startEmbeddedPostgres({ dataDir: original, port, fallback: 'off' });
    await pg.stop();
    const marker = `${original}.location`;
    const where = readFileSync(marker, 'utf8').trim();
    relocated.push(where);
    assert.match(where, /^\/var\/lib\/switchyard\/[0-9a-f]{16}\/postgres$/);
    assert.ok(existsSync(path.join(where, 'PG_VERSION')));
    // Started again where it was: the same cluster.
    await (await startEmbeddedPostgres({ dataDir: original, port, fallback: 'off' })).stop();

    cpSync(path.join(scratch, 'closed', 'a'), path.join(scratch, 'closed', 'b'), { recursive: true });
    const copy = path.join(scratch, 'closed', 'b', 'data', 'postgres');
    const started = await startEmbeddedPostgres({ dataDir: copy, port: await freePort(), fallback: 'on' }).catch(
      (e: Error) => e,
    );
    // A cluster started by mistake is stopped, so the failure is reported rather than a hang.
    if (!(started instanceof Error)) await started.stop();
    assert.ok(started instanceof Error, 'the copy started (an empty cluster)');
    assert.ok(started.message.includes(`was kept in ${where}`), started.message);
    assert.ok(started.message.includes('moved or copied without it'), started.message);
  });
});
