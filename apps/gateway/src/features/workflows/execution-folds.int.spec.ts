/**
 * ExecutionFolds on the real PostgreSQL event store: a whole read of a large execution stream
 * waits for a turn of the gate, and the callers that ask while it waits share it (one read of the
 * database); a caller that asks once it started gets a read of its own, which sees what was
 * appended after the first began. A small stream, a partial read and any other stream never wait.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PostgresEventStore, type EventStore, type NewEvent } from '@switchyard/event-store';
import { workflowExecutionStream } from '@switchyard/domain';
import { createLogger, isAppError } from '@switchyard/platform';
import { countingCalls, freshDatabase, overriding } from '@switchyard/testing';
import { PayloadReads } from '../../http/payload-reads.js';
import { ExecutionFolds } from './execution-folds.js';

const logger = createLogger('execution-folds-test', process.env.LOG_LEVEL ?? 'silent');
const ev = (type: string, data: Record<string, unknown> = {}): NewEvent => ({
  type,
  data,
  metadata: { correlationId: 'c', actor: 'test', timestamp: new Date().toISOString() },
});

describe('ExecutionFolds (real PostgreSQL event store)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let calls: Record<'readStream', number>;
  let sizesAnswered = 0;
  let gate: PayloadReads;
  let folds: ExecutionFolds;
  const large = workflowExecutionStream('large');
  const small = workflowExecutionStream('small');
  const largeToo = workflowExecutionStream('large-too');
  const blob = () => ({ blob: randomBytes(800_000).toString('base64') });

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('execution_folds'), max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    const counted = countingCalls(store, ['readStream']);
    calls = counted.calls;
    // Sizes answered so far: a caller joins or queues a read once its stream's size is known.
    const sizing = overriding<EventStore>(counted.target, {
      storedBytes: async (streamId: string) => {
        const bytes = await store.storedBytes(streamId);
        sizesAnswered += 1;
        return bytes;
      },
    });
    // One read at a time, one waiting.
    gate = new PayloadReads(1, 1, 30_000);
    folds = new ExecutionFolds(sizing, pool, gate);
    // Random bytes as base64 do not compress: the stored size is the real one.
    await store.append(large, [ev('Big', blob())]);
    await store.append(largeToo, [ev('Big', blob())]);
    await store.append('task-large', [ev('Big', blob())]);
    await store.append(small, [ev('Small', { n: 1 })]);
    assert.ok(await folds.isLarge('large'));
    assert.ok(!(await folds.isLarge('small')));
  });

  after(async () => {
    await store?.close();
    await pool?.end();
  });

  /** Takes the gate's one turn until the returned function is called. */
  const holdTheTurn = () => {
    let release!: () => void;
    const held = gate.whileRunning(() => new Promise<void>((r) => (release = r)));
    return async () => {
      release();
      await held;
    };
  };

  it('callers of a large stream that ask while its read waits share that one read', async () => {
    const release = holdTheTurn();
    const before = calls.readStream;
    const sizedBefore = sizesAnswered;
    const reads = Array.from({ length: 16 }, () => folds.store.readStream(large));
    // Let them all reach the gate: each has its stream's size, and went on from there.
    while (sizesAnswered < sizedBefore + 16) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setImmediate(r));
    assert.equal(calls.readStream, before, 'no read of the database before the turn');
    assert.deepEqual(gate.load, { running: 1, waiting: 1 }, 'one read waits for the 16 of them');
    await release();
    const got = await Promise.all(reads);
    assert.equal(calls.readStream - before, 1, 'one read of the database');
    for (const events of got) assert.equal(events, got[0], 'the same events, read once');
    assert.deepEqual(
      got[0]!.map((e) => e.type),
      ['Big'],
    );
  });

  it('a caller that asks once the read started gets a read of its own, which sees what came after', async () => {
    const release = holdTheTurn();
    const first = folds.store.readStream(large);
    await new Promise((r) => setTimeout(r, 50));
    const before = calls.readStream;
    await release(); // the first read starts: it is no longer one to join
    await store.append(large, [ev('After')]);
    const second = await folds.store.readStream(large);
    assert.deepEqual((await first).map((e) => e.type).slice(0, 1), ['Big']);
    assert.deepEqual(
      second.map((e) => e.type),
      ['Big', 'After'],
    );
    assert.equal(calls.readStream - before, 2);
  });

  it('while the gate is full another large stream is refused (503, retry after 1 s); a small, a partial, an absent one and other streams are read at once', async () => {
    const release = holdTheTurn();
    const queued = folds.store.readStream(large); // the one waiting place
    try {
      await new Promise((r) => setTimeout(r, 50));
      const refused = await folds.store.readStream(largeToo).then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(isAppError(refused) && refused.code === 'unavailable', String(refused));
      assert.equal((refused.details as { retry_after_ms?: number }).retry_after_ms, 1_000);
      assert.deepEqual(
        (await folds.store.readStream(small)).map((e) => e.type),
        ['Small'],
      );
      assert.equal((await folds.store.readStream(large, { maxCount: 1 })).length, 1);
      assert.equal((await folds.store.readStream(large, { direction: 'backwards', maxCount: 1 })).length, 1);
      assert.deepEqual(await folds.store.readStream(workflowExecutionStream('absent')), []);
      assert.equal((await folds.store.readStream('task-large')).length, 1);
    } finally {
      await release();
    }
    assert.equal((await queued)[0]!.type, 'Big');
  });
});
