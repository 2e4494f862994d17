/**
 * customer_onboarding's two writes, as PostgreSQL runs them on the demo schema: create_records
 * (ids from the identity columns, the row naming its execution) and its compensation
 * remove_customer (the rows of that execution only). The statements are the template's own, with
 * the parameters its expressions give.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { loadDemoData } from '@switchyard/agents';
import { customerOnboardingTemplate } from '@switchyard/domain';
import { freshDatabase } from '@switchyard/testing';

const step = (id: string) => {
  const s = customerOnboardingTemplate.steps.find((x) => x.id === id);
  assert.ok(s && 'with' in s, id);
  return s.with as { sql: string };
};

describe('customer_onboarding on PostgreSQL: what create_records makes and remove_customer removes', () => {
  let pool: pg.Pool;
  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('onboarding_sql'), max: 8 });
    await loadDemoData(pool, { customers: 50 });
  });
  after(async () => {
    await pool?.end();
  });

  const create = async (execution: string, email: string) =>
    (
      await pool.query<{ customer_id: number; subscription_id: number | null; created: boolean }>(
        step('create_records').sql,
        ['Ada', email, 'smb', 'emea', 'growth', 3, execution],
      )
    ).rows[0]!;
  const remove = async (execution: string) =>
    (await pool.query<{ id: number }>(step('remove_customer').sql, [execution])).rows.map((r) => r.id);
  const customers = async (email: string) =>
    (await pool.query(`select id from business.customers where email = $1`, [email])).rowCount;

  it('twenty at once: each its own ids, every one created', async () => {
    const rows = await Promise.all(
      Array.from({ length: 20 }, (_, i) => create(`burst-${i}`, `burst-${i}@example.com`)),
    );
    assert.ok(rows.every((r) => r.created));
    assert.equal(new Set(rows.map((r) => r.customer_id)).size, 20);
    assert.equal(new Set(rows.map((r) => r.subscription_id)).size, 20);
  });

  it('an attempt whose answer was lost made the row: the retry finds it as created, and the compensation removes it', async () => {
    const first = await create('exec-a', 'lost@example.com'); // its answer never reached the engine
    const retry = await create('exec-a', 'lost@example.com');
    assert.equal(retry.customer_id, first.customer_id);
    assert.equal(retry.created, true, "this execution's row, though this attempt inserted nothing");
    assert.deepEqual(await remove('exec-a'), [first.customer_id]);
    assert.equal(await customers('lost@example.com'), 0);
    const subs = await pool.query(`select 1 from business.subscriptions where customer_id = $1`, [first.customer_id]);
    assert.equal(subs.rowCount, 0, 'its subscription went first');
  });

  it('another execution that lands on the same e-mail neither reports it created nor removes it', async () => {
    const mine = await create('exec-b', 'shared@example.com');
    const theirs = await create('exec-c', 'shared@example.com');
    assert.equal(theirs.customer_id, mine.customer_id);
    assert.equal(theirs.created, false);
    assert.deepEqual(await remove('exec-c'), []);
    assert.equal(await customers('shared@example.com'), 1);
    // A generated customer (no execution) is never a compensation's to remove.
    const generated = await pool.query(`select count(*)::int as n from business.customers where onboarded_by is null`);
    assert.equal(generated.rows[0].n, 50);
  });
});
