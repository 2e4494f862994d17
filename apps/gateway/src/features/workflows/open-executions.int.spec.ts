/**
 * WORKFLOW_MAX_OPEN_PER_STARTER through the real HTTP API (auth on), PostgreSQL and the engine:
 * one key at its bound of executions not yet ended is refused further starts, forks and retries
 * (429, naming the bound) while another key still starts; a repeat of an accepted start is
 * answered as before; once one of its executions ends, the key starts again.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '@switchyard/platform';
import { startWorkflowGateway, type WorkflowGateway } from './workflow-gateway.spec-fixture.js';

const logger = createLogger('open-executions-int', process.env.LOG_LEVEL ?? 'silent');
const BOUND = 3;

const waiting = {
  id: 'held_open',
  steps: [{ id: 'hold', wait: { signal: 'release', timeout_ms: 600_000 } }],
};
const failing = {
  id: 'fails_fast',
  steps: [{ id: 'nope', wait: { signal: 'never', timeout_ms: 1 } }],
};

describe('open executions per starter over real HTTP', () => {
  let f: WorkflowGateway;
  const printed: string[] = [];
  let keys: { a: string; b: string };
  const saved = process.env.WORKFLOW_MAX_OPEN_PER_STARTER;

  before(async () => {
    // Read once, when the gateway's bound is built.
    process.env.WORKFLOW_MAX_OPEN_PER_STARTER = String(BOUND);
    f = await startWorkflowGateway({
      name: 'wf_open_bound',
      logger,
      gateway: { auth: { enabled: true, printAdminKey: (k) => printed.push(k) } },
    });
    const make = async (name: string) => {
      const r = await f.http('POST', '/api/v1/admin/api-keys', { name, role: 'operator' }, auth(printed[0]!));
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body.key as string;
    };
    keys = { a: await make('a'), b: await make('b') };
  });

  after(async () => {
    if (saved === undefined) delete process.env.WORKFLOW_MAX_OPEN_PER_STARTER;
    else process.env.WORKFLOW_MAX_OPEN_PER_STARTER = saved;
    await f?.close();
  });

  const auth = (key: string) => ({ authorization: `Bearer ${key}` });
  const start = (key: string, definition: unknown, headers: Record<string, string> = {}) =>
    f.http('POST', '/api/v1/integration/agents/workflow', { definition, input: {} }, { ...auth(key), ...headers });
  const statusOf = async (key: string, id: string) =>
    (await f.http('GET', `/api/v1/workflows/executions/${id}`, undefined, auth(key))).body?.status as string;
  const until = async (what: string, ok: () => Promise<boolean>) => {
    for (const end = Date.now() + 15_000; Date.now() < end; await sleep(100)) if (await ok()) return;
    assert.fail(`timed out waiting for ${what}`);
  };

  it('refuses a key past its bound, not another key, not a repeat; frees a place when one ends', async () => {
    // A failed execution of key a, for the retry below (it ends, so it holds no place).
    const failed = await start(keys.a, failing);
    assert.equal(failed.status, 202, JSON.stringify(failed.body));
    await until(
      'the failing execution to fail',
      async () => (await statusOf(keys.a, failed.body.execution_id)) === 'failed',
    );
    await until('its active row to go', async () => {
      const r = await f.pool.query(`select 1 from workflows.active_executions where execution_id = $1`, [
        failed.body.execution_id,
      ]);
      return r.rowCount === 0;
    });
    await sleep(1_100); // the bound's count of key a is read again

    const held: string[] = [];
    for (let i = 0; i < BOUND; i++) {
      const r = await start(keys.a, waiting, i === 0 ? { 'idempotency-key': 'first-held' } : {});
      assert.equal(r.status, 202, JSON.stringify(r.body));
      held.push(r.body.execution_id);
    }
    const refused = await start(keys.a, waiting);
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'rate_limited');
    assert.equal(refused.body.limit, 'WORKFLOW_MAX_OPEN_PER_STARTER');
    assert.equal(refused.body.max, BOUND);
    assert.match(refused.body.detail, /WORKFLOW_MAX_OPEN_PER_STARTER=3/);

    // Once the engine has recorded them, the count read from the database says the same.
    await until('the three to be active', async () => {
      const r = await f.pool.query<{ n: number }>(
        `select count(*)::int as n from workflows.active_executions where execution_id = any($1)`,
        [held],
      );
      return r.rows[0]!.n === BOUND;
    });
    await sleep(1_100);
    assert.equal((await start(keys.a, waiting)).status, 429, 'refused on the count read from the database');

    // A repeat of an accepted start is not a new execution: answered with the same id.
    const again = await start(keys.a, waiting, { 'idempotency-key': 'first-held' });
    assert.ok([200, 202].includes(again.status), JSON.stringify(again.body));
    assert.equal(again.body.execution_id, held[0]);

    // A fork and a retry are executions of the asker too.
    const fork = await f.http(
      'POST',
      `/api/v1/workflows/executions/${held[1]}/fork`,
      { from_step: 'hold' },
      auth(keys.a),
    );
    assert.equal(fork.status, 429, JSON.stringify(fork.body));
    const retry = await f.http(
      'POST',
      `/api/v1/workflows/executions/${failed.body.execution_id}/retry`,
      {},
      auth(keys.a),
    );
    assert.equal(retry.status, 429, JSON.stringify(retry.body));
    assert.equal(retry.body.limit, 'WORKFLOW_MAX_OPEN_PER_STARTER');

    // Another key has its own bound.
    const other = await start(keys.b, waiting);
    assert.equal(other.status, 202, JSON.stringify(other.body));

    // One of a's ends: a starts again once the engine has dropped it and the count is read again.
    const cancel = await f.http(
      'POST',
      `/api/v1/workflows/executions/${held[2]}/cancel`,
      { reason: 'make room' },
      auth(keys.a),
    );
    assert.ok([200, 202].includes(cancel.status), JSON.stringify(cancel.body));
    await until('the canceled execution to leave the active ones', async () => {
      const r = await f.pool.query(`select 1 from workflows.active_executions where execution_id = $1`, [held[2]]);
      return r.rowCount === 0;
    });
    await sleep(1_100);
    const after = await start(keys.a, waiting);
    assert.equal(after.status, 202, JSON.stringify(after.body));
    assert.equal((await start(keys.a, waiting)).status, 429, 'at the bound again');

    // The engine records the last start's row a moment after its 202.
    const byStarter = () =>
      f.pool.query<{ started_by: string; n: number }>(
        `select started_by, count(*)::int as n from workflows.active_executions group by 1 order by 1`,
      );
    await until('the last start to be active', async () => (await byStarter()).rows.some((r) => r.n === BOUND));
    const starters = await byStarter();
    assert.deepEqual(
      starters.rows.map((r) => r.n).sort(),
      [1, BOUND],
      `rows by starter: ${JSON.stringify(starters.rows)}`,
    );
    assert.ok(
      starters.rows.every((r) => r.started_by.startsWith('apikey:')),
      JSON.stringify(starters.rows),
    );
  });
});
