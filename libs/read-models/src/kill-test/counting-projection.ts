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
