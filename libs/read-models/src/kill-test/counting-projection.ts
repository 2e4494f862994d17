import type { Projection } from '../projection.js';

/**
 * A projection whose effect can be counted: one row per event id with the number of times
 * it was applied. Exactly-once means every row says 1.
 */
export function countingProjection(table = 'kt_applied', name = 'counting'): Projection {
  return {
    name,
    handles: ['Counted'],
    async setup(c) {
      await c.query(
        `create table if not exists ${table} (event_id uuid primary key, position bigint not null, applied int not null)`,
      );
    },
    async apply(c, e) {
      await c.query(
        `insert into ${table} (event_id, position, applied) values ($1, $2, 1)
         on conflict (event_id) do update set applied = ${table}.applied + 1`,
        [e.id, e.position],
      );
    },
    async reset(c) {
      await c.query(`truncate ${table}`);
    },
  };
}

/**
 * The same counts through `batchStatement`: a batch is one statement, which the runner sends
 * with its transaction's start and commit in one round trip. A `Counted` event whose data has
 * `poison: true` makes the statement fail (a division by zero), for the rollback paths.
 */
export function countingStatementProjection(table = 'kt_applied', name = 'counting'): Projection {
  const base = countingProjection(table, name);
  return {
    ...base,
    batchStatement(events) {
      const poisoned = events.some((e) => (e.data as { poison?: unknown } | null)?.poison === true);
      return {
        text: `insert into ${table} (event_id, position, applied)
               select id, position, 1 / $3::int from unnest($1::uuid[], $2::bigint[]) as v(id, position)
               on conflict (event_id) do update set applied = ${table}.applied + 1`,
        values: [events.map((e) => e.id), events.map((e) => e.position), poisoned ? 0 : 1],
      };
    },
  };
}

/**
 * The same counts through `batchText`: one insert per event in one SQL text, which the runner
 * sends with its transaction's start and commit as one query. A poisoned event (as above) puts a
 * division by zero after the inserts before it, so a failure comes mid-text. `settled` keeps what
 * the runner told it, in order.
 */
export function countingTextProjection(
  table = 'kt_applied',
  name = 'counting',
): Projection & { readonly settled: boolean[] } {
  const base = countingProjection(table, name);
  const settled: boolean[] = [];
  const literal = (v: string | number) => `'${String(v).replace(/'/g, "''")}'`;
  return {
    ...base,
    settled,
    batchText(_client, events) {
      const text = events
        .map((e) =>
          (e.data as { poison?: unknown } | null)?.poison === true
            ? 'select 1 / 0'
            : `insert into ${table} (event_id, position, applied) values (${literal(e.id)}, ${e.position}, 1)
               on conflict (event_id) do update set applied = ${table}.applied + 1`,
        )
        .join(';\n');
      return Promise.resolve({ text, settled: (committed: boolean) => void settled.push(committed) });
    },
  };
}
