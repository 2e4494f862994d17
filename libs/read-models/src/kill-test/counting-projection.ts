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
