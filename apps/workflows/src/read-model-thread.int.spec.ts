import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createLogger, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, until } from '@switchyard/testing';
import type { WorkflowDefinitionInput } from '@switchyard/domain';
import { startExecution } from '@switchyard/workflow-executions';
import { startReadModelThread } from './read-model-thread.js';

const logger = createLogger('read-model-thread-int', process.env.LOG_LEVEL ?? 'silent');
const definition: WorkflowDefinitionInput = {
  id: 'thread_rm',
  version: 1,
  name: 'read model on a thread',
  steps: [{ id: 'one', uses: 'mcp:noop/a' }],
};

describe('the workflow read model on its own thread', () => {
  let url: string;
  let store: PostgresEventStore;
  let pool: pg.Pool;
  before(async () => {
    url = await freshDatabase('rm_thread');
    store = new PostgresEventStore({ connectionString: url });
    await store.init();
    pool = new pg.Pool({ connectionString: url, max: 2 });
  });
  after(async () => {
    await store.close();
    await pool.end();
  });

  const row = async (id: string) =>
    (
      await pool.query<{ status: string; steps: string }>(
        `select x.status, (select count(*) from read_models.workflow_steps s where s.execution_id = x.execution_id)::text as steps
         from read_models.workflow_executions x where execution_id = $1`,
        [id],
      )
    ).rows[0];
  const checkpoint = async () =>
    Number(
      (
        await pool.query<{ position: string }>(
          `select position from read_models.checkpoints where name = 'workflow_executions'`,
        )
      ).rows[0]?.position ?? -1,
    );

  it('projects what the engine appends, stops cleanly, and resumes from its checkpoint after a restart', async () => {
    const first = newId();
    await startExecution(store, { definition, input: {}, correlationId: first, executionId: first });
    let thread = await startReadModelThread({ databaseUrl: url, logLevel: 'warn' }, logger);
    let settled = false;
    void thread.failed.then(() => (settled = true));
    try {
      // Past events, then a live one (the thread's own store client hears of it by NOTIFY).
      assert.deepEqual(await until('the first execution in the read model', () => row(first)), {
        status: 'running',
        steps: '1',
      });
      const second = newId();
      await startExecution(store, { definition, input: {}, correlationId: second, executionId: second });
      assert.deepEqual(await until('the second execution in the read model', () => row(second)), {
        status: 'running',
        steps: '1',
      });
    } finally {
      await thread.stop();
    }
    assert.equal(settled, false, 'a stop asked for is not a failure');
    const stoppedAt = await checkpoint();
    // A mark a replay from the start would overwrite (it touches every row it passes again).
    await pool.query(`update read_models.workflow_executions set last_position = -5 where execution_id = $1`, [first]);
    // Appended while stopped: the next thread starts from the checkpoint, not from the start.
    const third = newId();
    const appended = await startExecution(store, { definition, input: {}, correlationId: third, executionId: third });
    thread = await startReadModelThread({ databaseUrl: url, logLevel: 'warn' }, logger);
    try {
      assert.deepEqual(await until('the third execution in the read model', () => row(third)), {
        status: 'running',
        steps: '1',
      });
      await until('the checkpoint at the head', async () => (await checkpoint()) >= (appended.position ?? Infinity));
    } finally {
      await thread.stop();
    }
    assert.ok(stoppedAt >= 0);
    assert.equal(
      Number(
        (await pool.query(`select last_position from read_models.workflow_executions where execution_id = $1`, [first]))
          .rows[0].last_position,
      ),
      -5,
      'resumed, not replayed',
    );
    assert.equal(Number((await pool.query(`select count(*) from read_models.workflow_executions`)).rows[0].count), 3);
  });

  it('refuses a bad configuration before starting a thread', async () => {
    await assert.rejects(startReadModelThread({ databaseUrl: 'mysql://nope' }, logger), /postgres/);
  });

  it('a thread that cannot start reports it and ends', async () => {
    // A database that does not exist: the thread's start fails and the caller hears why.
    const bad = new URL(url);
    bad.pathname = `/missing_${newId().slice(0, 8).replace(/-/g, '')}`;
    await assert.rejects(
      startReadModelThread({ databaseUrl: bad.toString(), logLevel: 'silent' }, logger),
      /read-model thread failed/,
    );
  });
});
