import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@switchyard/platform';
import { vetStatement } from './statement-vetting.js';

const refused = async (sql: string, allowWrites = false): Promise<AppError> => {
  try {
    await vetStatement(sql, { allowWrites });
  } catch (e) {
    assert.ok(e instanceof AppError, String(e));
    return e;
  }
  assert.fail(`accepted: ${sql}`);
};

describe('vetStatement (PostgreSQL parser in front of the database server)', () => {
  it('a statement that overflows the parser fails alone: 30 of them, each new, and ordinary statements before and after still pass', async () => {
    const deep = (n: number) => `SELECT ${Array.from({ length: 49_000 }, () => '1').join('+')} -- ${n}`;
    const ok = { kind: 'SelectStmt', writes: false };
    for (let n = 0; n < 30; n++) {
      await assert.rejects(
        vetStatement(deep(n), { allowWrites: false }),
        (e: { code?: string }) => e.code === 'validation',
      );
      assert.deepEqual(await vetStatement(`SELECT ${n} AS n`, { allowWrites: false }), ok, `after overflow ${n + 1}`);
    }
    // Forbidden statements are still refused by the parser that replaced the broken one.
    await assert.rejects(vetStatement(`COPY x TO PROGRAM 'id'`, { allowWrites: false }), (e: { code?: string }) =>
      ['forbidden', 'validation'].includes(e.code ?? ''),
    );
  });

  it('accepts the queries the templates and agents send', async () => {
    for (const sql of [
      'select count(*) from business.customers',
      'SELECT id FROM business.customers WHERE lower(email) = lower($1::text)',
      "WITH p AS (SELECT substring($1 FROM '^[0-9]+')::int AS n, right($1, 1) AS unit) SELECT date_trunc('month', now()) - make_interval(months => p.n) FROM p",
      "select extract(year from current_date), coalesce(null, 1), greatest(1, 2), x at time zone 'UTC' from (values (now())) v(x)",
      "select trim(both ' ' from 'a '), position('a' in 'ba'), row_number() over (order by 1), 'a;b' as semi, $$ pg_read_file('x') $$ as quoted",
      'table business.orders',
      '/* DO $$ copy $$ */ select 1 -- ; copy x to program',
    ]) {
      const v = await vetStatement(sql, { allowWrites: false });
      assert.equal(v.kind, 'SelectStmt', sql);
    }
  });

  it('refuses DO, COPY, CALL and DDL whatever the quoting or comments', async () => {
    for (const sql of [
      "DO $$ begin execute 'copy (select 1) to program ''id'''; end $$",
      '/* hi */ do $x$ begin perform 1; end $x$',
      "COPY (select 1) TO PROGRAM 'id'",
      'copy business.customers from stdin',
      'call some_proc()',
      'create table t (x int)',
      'drop table business.orders',
      'grant all on business.orders to public',
      'alter system set shared_preload_libraries = $$x$$',
      'create extension dblink',
    ]) {
      assert.equal((await refused(sql, true)).code, 'forbidden', sql);
    }
  });

  it('refuses transaction and session control and several statements as bad requests', async () => {
    for (const sql of [
      'commit',
      '/* x */ ROLLBACK',
      'set role postgres',
      'reset all',
      'discard all',
      'listen x',
      'begin',
      'select 1; select 2',
      "select 1; copy x to program 'id'",
      '',
    ]) {
      assert.equal((await refused(sql)).code, 'validation', sql);
    }
    assert.match((await refused('select 1; delete from t')).message, /multiple commands/);
    assert.equal((await refused('selec 1')).code, 'validation');
  });

  it('refuses every function outside the safe list, anywhere in the tree', async () => {
    for (const sql of [
      "select pg_read_file('/etc/passwd')",
      "select * from pg_ls_dir('.')",
      "select lo_import('/etc/passwd')",
      "select pg_catalog.pg_read_binary_file('/etc/passwd')",
      "select * from dblink('host=x', 'select 1') as t(x int)",
      "select set_config('role', 'postgres', false)",
      "select current_setting('data_directory')",
      'select pg_terminate_backend(1)',
      "select nextval('s')",
      'select public.lower(1)',
      'select 1 where exists (select 1 from (select query_to_xml($$select 1$$, true, true, $$$$)) x)',
      "select count(*) filter (where pg_read_file('x') is not null) from t",
      "select * from t order by pg_ls_dir('.')",
    ]) {
      const e = await refused(sql);
      assert.equal(e.code, 'forbidden', sql);
      assert.match(e.message, /function .* is not allowed/, sql);
    }
  });

  it('refuses writes on the read-only server, even hidden in a CTE; allows them on the writer', async () => {
    for (const sql of [
      'insert into t values (1)',
      'update t set x = 1',
      'delete from t',
      'with d as (delete from t returning 1) select * from d',
      'merge into t using s on t.id = s.id when matched then delete',
    ]) {
      const e = await refused(sql);
      assert.equal(e.code, 'forbidden', sql);
      assert.match(e.message, /writes are not allowed/);
      const v = await vetStatement(sql, { allowWrites: true });
      assert.equal(v.writes, true);
    }
    assert.equal((await refused('select * into t2 from t', true)).code, 'forbidden');
  });
});
