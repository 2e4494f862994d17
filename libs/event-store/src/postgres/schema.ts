/**
 * The PostgreSQL schema of the event store. Everything lives in one schema (default
 * `eventstore`) so it can share a database with read models without name clashes.
 *
 * Global order without gaps: `append` is one statement calling `append_events`, which
 * takes a transaction-scoped advisory lock first. Appends therefore assign positions in
 * commit order: the next append can only take the lock after the previous one has
 * committed and become visible (Postgres releases locks after the commit is visible).
 * A reader that sees position p can never later see a lower position appear, so readers
 * and subscribers need no xmin/in-flight bookkeeping, and read-your-writes holds.
 * The cost is that commits are serialised; one statement per append (one round trip, one
 * WAL flush) keeps that cheap (a few thousand appends/s on a laptop disk, batches amortise).
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

create or replace function ${s}.append_events(p_stream text, p_mode text, p_expected bigint, p_events jsonb)
returns table (ok boolean, revision bigint, last_position bigint)
language plpgsql volatile as $fn$
declare
  v_current bigint;
  v_head bigint;
  v_count bigint := jsonb_array_length(p_events);
begin
  -- 0. A stale expectation fails fast, before queueing for the lock (conflicts stay cheap
  --    under contention); the check that counts is repeated under the lock below.
  if p_mode <> 'any' then
    select max(e.revision) into v_current from ${s}.events e where e.stream_id = p_stream;
    if (p_mode = 'no_stream' and v_current is not null)
       or (p_mode = 'exact' and (v_current is null or v_current > p_expected)) then
      return query select false, v_current, null::bigint;
      return;
    end if;
  end if;
  -- 1. Serialise appends until commit: positions follow commit order (see schema.ts).
  perform pg_advisory_xact_lock(hashtext(${literal(`${schema}.append`)}));
  -- 2. The optimistic concurrency check, exact because no other append runs now.
  select max(e.revision) into v_current from ${s}.events e where e.stream_id = p_stream;
  if (p_mode = 'no_stream' and v_current is not null)
     or (p_mode = 'stream_exists' and v_current is null)
     or (p_mode = 'exact' and v_current is distinct from p_expected) then
    return query select false, v_current, null::bigint;
    return;
  end if;
  select coalesce(max(e.position), -1) into v_head from ${s}.events e;
  -- 3. Insert in the order given; revisions and positions are dense.
  insert into ${s}.events (position, stream_id, revision, event_id, type, data, metadata)
  select v_head + t.ord, p_stream, coalesce(v_current, -1) + t.ord, (t.e->>'id')::uuid, t.e->>'type', t.e->'data', t.e->'metadata'
  from jsonb_array_elements(p_events) with ordinality as t(e, ord);
  -- 4. Wake live subscribers; NOTIFY is delivered only after commit.
  perform pg_notify(${literal(channelName(schema))}, (v_head + v_count)::text);
  return query select true, coalesce(v_current, -1) + v_count, v_head + v_count;
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
