/**
 * The PostgreSQL schema of the event store. Everything lives in one schema (default
 * `eventstore`) so it can share a database with read models without name clashes.
 *
 * Global order without gaps: an append is one statement calling `append_batch`, which
 * takes a transaction-scoped advisory lock first. Appends therefore assign positions in
 * commit order: the next append can only take the lock after the previous one has
 * committed and become visible (Postgres releases locks after the commit is visible).
 * A reader that sees position p can never later see a lower position appear, so readers
 * and subscribers need no xmin/in-flight bookkeeping, and read-your-writes holds.
 * The cost is that commits are serialised, so a commit (one WAL flush) is the unit of
 * throughput: one statement per append, and concurrent appends of one process share one
 * statement and one commit (group commit), so more writers mean more appends per flush.
 * Because appends are serialised, positions are simply max(position) + 1: dense, no gaps
 * left by rolled-back appends, and the stream revision check under the lock is exact.
 */
export function schemaSql(schema: string): string {
  const s = quoteIdent(schema);
  return `
create schema if not exists ${s};

create table if not exists ${s}.events (
  position    bigint primary key,
  stream_id   text not null,
  revision    bigint not null,
  event_id    uuid not null,
  type        text not null,
  data        jsonb not null,
  metadata    jsonb not null,
  recorded_at timestamptz not null default now(),
  unique (stream_id, revision)
);
-- Bytes of the event's data before compression, taken at append from the value itself: the stored
-- size of jsonb is compressed, and repetitive data (rows of a query result) read back 60 times
-- larger than it was stored. Null for events appended before the column existed (their stored
-- size stands in). Added only when missing: ALTER TABLE takes an exclusive lock on the table even
-- when the column is there, and every append and read would queue behind one long reader.
do $data_bytes$ begin
  if not exists (select 1 from pg_attribute
                  where attrelid = ${literal(`${s}.events`)}::regclass and attname = 'data_bytes' and not attisdropped) then
    alter table ${s}.events add column data_bytes integer;
  end if;
end $data_bytes$;

-- Fencing tokens (see Fence in port.ts): an append carrying { name, epoch } commits only while
-- the row's epoch is that one. Raised (never lowered) by whoever takes over a lease.
create table if not exists ${s}.fences (
  name  text primary key,
  epoch bigint not null
);

drop function if exists ${s}.append_events(text, text, bigint, jsonb);
-- append_batch gained recorded_at, then fenced, in its result (a result type cannot be replaced in place).
do $drop$ begin
  if exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
              where n.nspname = ${literal(schema)} and p.proname = 'append_batch'
                and not ('fenced' = any(coalesce(p.proargnames, '{}')))) then
    drop function ${s}.append_batch(jsonb);
  end if;
end $drop$;

-- Appends several independent appends (each all-or-nothing with its own expectation) in one
-- statement: one lock, one commit, one WAL flush for all of them (group commit; see
-- PostgresEventStore.append). p_batch: [{ "stream", "mode", "expected", "events": [...], "fence"?: { "name", "epoch" } }].
create or replace function ${s}.append_batch(p_batch jsonb)
returns table (idx int, ok boolean, revision bigint, last_position bigint, recorded_at timestamptz, fenced bigint)
language plpgsql volatile as $fn$
declare
  v_item jsonb;
  v_idx bigint;
  v_stream text;
  v_mode text;
  v_expected bigint;
  v_current bigint;
  v_head bigint;
  v_count bigint;
  v_stale boolean[] := '{}';
  v_fence bigint;
begin
  -- 0. Stale expectations fail fast, before queueing for the lock (conflicts stay cheap under
  --    contention); only a definite contradiction is decided here, the rest under the lock.
  for v_item, v_idx in select t.value, t.ordinality from jsonb_array_elements(p_batch) with ordinality t loop
    v_mode := v_item->>'mode';
    v_expected := (v_item->>'expected')::bigint;
    v_current := null;
    if v_mode <> 'any' then
      select max(e.revision) into v_current from ${s}.events e where e.stream_id = v_item->>'stream';
    end if;
    v_stale := v_stale || ((v_mode = 'no_stream' and v_current is not null)
      or (v_mode = 'exact' and (v_current is null or v_current > v_expected)));
  end loop;
  if v_stale <> '{}' and true = all(v_stale) then
    for v_item, v_idx in select t.value, t.ordinality from jsonb_array_elements(p_batch) with ordinality t loop
      select max(e.revision) into v_current from ${s}.events e where e.stream_id = v_item->>'stream';
      return query select v_idx::int, false, v_current, null::bigint, null::timestamptz, null::bigint;
    end loop;
    return;
  end if;
  -- 1. Serialise appends until commit: positions follow commit order (see above).
  perform pg_advisory_xact_lock(hashtext(${literal(`${schema}.append`)}));
  select coalesce(max(e.position), -1) into v_head from ${s}.events e;
  for v_item, v_idx in select t.value, t.ordinality from jsonb_array_elements(p_batch) with ordinality t loop
    v_stream := v_item->>'stream';
    v_mode := v_item->>'mode';
    v_expected := (v_item->>'expected')::bigint;
    -- 2. The fence, then the optimistic concurrency check, both exact because no other append
    --    (nor raise_fence, which takes the same lock) runs now. A refused fence reports the
    --    fence's current epoch (-1: no such fence).
    select max(e.revision) into v_current from ${s}.events e where e.stream_id = v_stream;
    if v_item ? 'fence' then
      select f.epoch into v_fence from ${s}.fences f where f.name = v_item->'fence'->>'name';
      if v_fence is distinct from (v_item->'fence'->>'epoch')::bigint then
        return query select v_idx::int, false, v_current, null::bigint, null::timestamptz, coalesce(v_fence, -1);
        continue;
      end if;
    end if;
    if (v_mode = 'no_stream' and v_current is not null)
       or (v_mode = 'stream_exists' and v_current is null)
       or (v_mode = 'exact' and v_current is distinct from v_expected) then
      return query select v_idx::int, false, v_current, null::bigint, null::timestamptz, null::bigint;
      continue;
    end if;
    -- 3. Insert in the order given; revisions and positions are dense.
    v_count := jsonb_array_length(v_item->'events');
    insert into ${s}.events (position, stream_id, revision, event_id, type, data, metadata, data_bytes)
    select v_head + t.ord, v_stream, coalesce(v_current, -1) + t.ord, (t.e->>'id')::uuid, t.e->>'type', t.e->'data', t.e->'metadata',
           pg_column_size(t.e->'data')
    from jsonb_array_elements(v_item->'events') with ordinality as t(e, ord);
    v_head := v_head + v_count;
    return query select v_idx::int, true, coalesce(v_current, -1) + v_count, v_head, now(), null::bigint;
  end loop;
  -- 4. Wake live subscribers; NOTIFY is delivered only after commit.
  perform pg_notify(${literal(channelName(schema))}, v_head::text);
end
$fn$;

-- Raise a fence under the append lock: when it returns, no append with a lower epoch can commit.
create or replace function ${s}.raise_fence(p_name text, p_epoch bigint)
returns bigint language plpgsql volatile as $fn$
declare v_epoch bigint;
begin
  perform pg_advisory_xact_lock(hashtext(${literal(`${schema}.append`)}));
  insert into ${s}.fences (name, epoch) values (p_name, p_epoch)
  on conflict (name) do update set epoch = greatest(${s}.fences.epoch, excluded.epoch)
  returning epoch into v_epoch;
  return v_epoch;
end
$fn$;
`;
}

export const channelName = (schema: string): string => `${schema}_appended`;

export function quoteIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(name)) throw new Error(`bad schema name ${name}`);
  return `"${name}"`;
}

const literal = (v: string): string => `'${v.replace(/'/g, "''")}'`;
