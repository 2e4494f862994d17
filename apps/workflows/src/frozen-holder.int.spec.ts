import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createLogger, newId, trySessionLock, type SessionLock } from '@switchyard/platform';
import pg from 'pg';
import { freshDatabase } from '@switchyard/testing';
import { ensureWorkflowSchema } from '@switchyard/workflow-executions';
import { PartitionLeases } from './partitions.js';

const logger = createLogger('frozen-holder-int', process.env.LOG_LEVEL ?? 'silent');
const PARTITIONS = 4;
const IDLE_MS = 1_500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A process that stops without dying (SIGSTOP here; a paused VM, a long stall) keeps its TCP
 * connection to PostgreSQL open, and with it its session advisory locks: before, the engine's
 * partitions and the monitor's and relay's single-instance lock stayed with the frozen process
 * for as long as it was frozen, and nothing took over. Now PostgreSQL ends a lock session left
 * idle for the lock's idle time, and the others take over. Real PostgreSQL, a real child process.
 */
describe('a frozen holder loses its session locks (real PostgreSQL, a SIGSTOPped process)', () => {
  let url: string;
  let child: ChildProcess | undefined;
  const lines: string[] = [];
  const lockName = `frozen-${newId().slice(0, 8)}`;

  before(async () => {
    url = await freshDatabase('wf_frozen_holder');
    // The engine's tables (engine_members) as the engine makes them.
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    await ensureWorkflowSchema(pool);
    await pool.end();
  });
  after(() => {
    if (child && child.exitCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
  });

  it("the engine's partitions and a single-instance lock go to the others while the holder is frozen; the holder hears it lost them when it wakes", async () => {
    const partitionsModule = new URL('./partitions.js', import.meta.url).href;
    const script = `
      import { createLogger, trySessionLock } from '@switchyard/platform';
      import { PartitionLeases } from ${JSON.stringify(partitionsModule)};
      const held = new Set();
      const leases = new PartitionLeases({
        connectionString: process.env.DB_URL, memberId: 'frozen', partitions: ${PARTITIONS},
        logger: createLogger('child', 'silent'), tickMs: 100, memberTtlMs: 500, lockIdleMs: ${IDLE_MS},
        onAcquire: (p) => { held.add(p); if (held.size === ${PARTITIONS}) console.log('partitions held'); },
        onRelease: (p) => { held.delete(p); if (held.size === 0) console.log('partitions lost'); },
      });
      await leases.start();
      const lock = await trySessionLock({ connectionString: process.env.DB_URL }, { namespace: 'test', name: process.env.LOCK_NAME },
        { connectionName: 'frozen-lock', idleMs: ${IDLE_MS} });
      console.log(lock ? 'lock held' : 'lock refused');
      lock?.lost.then(() => console.log('lock lost'));
      setInterval(() => undefined, 1000);
    `;
    child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: new URL('.', import.meta.url).pathname,
      env: { ...process.env, DB_URL: url, LOCK_NAME: lockName },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
    const waitFor = async (line: string, ms: number) => {
      const deadline = Date.now() + ms;
      while (!lines.includes(line) && Date.now() < deadline) await sleep(20);
      return lines.includes(line);
    };
    assert.ok(await waitFor('partitions held', 15_000), `the child took every partition: ${lines.join(' | ')}`);
    assert.ok(await waitFor('lock held', 5_000), `the child took the lock: ${lines.join(' | ')}`);

    child.kill('SIGSTOP');
    const frozenAt = Date.now();
    const owned = new Set<number>();
    const survivor = new PartitionLeases({
      connectionString: url,
      memberId: 'survivor',
      partitions: PARTITIONS,
      logger,
      tickMs: 100,
      memberTtlMs: 500,
      lockIdleMs: IDLE_MS,
      onAcquire: (p) => owned.add(p),
      onRelease: (p) => owned.delete(p),
    });
    let lock: SessionLock | undefined;
    try {
      await survivor.start();
      while ((owned.size < PARTITIONS || !lock) && Date.now() - frozenAt < 10_000) {
        lock ??= await trySessionLock(
          { connectionString: url },
          { namespace: 'test', name: lockName },
          { connectionName: 'survivor-lock', idleMs: IDLE_MS },
        );
        await sleep(100);
      }
      const tookMs = Date.now() - frozenAt;
      assert.equal(
        owned.size,
        PARTITIONS,
        `the survivor holds every partition while the holder is frozen (${tookMs} ms)`,
      );
      assert.ok(lock, `the survivor took the single-instance lock (${tookMs} ms)`);

      child.kill('SIGCONT');
      assert.ok(
        await waitFor('partitions lost', 10_000),
        `the woken holder dropped its partitions: ${lines.join(' | ')}`,
      );
      assert.ok(await waitFor('lock lost', 10_000), `the woken holder heard its lock was lost: ${lines.join(' | ')}`);
      // The survivor's own connections stay: a live holder touches them well within the idle time.
      await sleep(2 * IDLE_MS);
      assert.equal(owned.size >= PARTITIONS / 2, true, `the survivor kept its share (${owned.size})`);
      assert.equal(await Promise.race([lock.lost.then(() => 'lost'), sleep(10).then(() => 'held')]), 'held');
    } finally {
      await lock?.release();
      await survivor.stop();
      child.kill('SIGKILL');
    }
  });
});
