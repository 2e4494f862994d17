import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { z } from 'zod';
import { migrateUnderLock, type Logger } from '@switchyard/platform';

/** `createGateway(deps, { idempotency })`. */
export interface IdempotencyOptions {
  /** How long a key and its first answer are kept. Default IDEMPOTENCY_TTL_SEC, else 24 h. */
  readonly ttlMs?: number;
  /**
   * A key in flight is leased for this long and the lease renewed while its request runs; a
   * lease that ran out (its gateway died) lets a retry take the key over. Default 15 s (renewed every 5 s): a retry after a killed gateway waits at most that long.
   */
  readonly leaseMs?: number;
  /** Expired keys are deleted this often (and at start). Default 10 min. */
  readonly purgeIntervalMs?: number;
  /** The largest answer kept for a replay. Default IDEMPOTENCY_MAX_ANSWER_BYTES, else 64 KiB. */
  readonly maxAnswerBytes?: number;
  /**
   * Bytes of answers one API key may have kept per hour (per gateway). Default
   * IDEMPOTENCY_KEY_BYTES_PER_HOUR, else 64 MiB. Past either bound the key keeps only the answer's
   * status (see NOT_KEPT_CONTENT_TYPE): every answer kept for a day, at the rate limit, would let
   * one key fill the database's disk (a viewer's validate answers stored 112 MB in 12 s).
   */
  readonly keyBytesPerHour?: number;
}

export interface ResolvedIdempotencyOptions {
  readonly ttlMs: number;
  readonly leaseMs: number;
  readonly purgeIntervalMs: number;
  readonly maxAnswerBytes: number;
  readonly keyBytesPerHour: number;
}

/** The content type of a kept answer whose body was not kept (its size is the body). */
export const NOT_KEPT_CONTENT_TYPE = 'application/x-switchyard-answer-not-kept';

const envSchema = z.object({
  IDEMPOTENCY_TTL_SEC: z.coerce
    .number()
    .int()
    .min(1)
    .max(30 * 24 * 3600)
    .default(24 * 3600),
  IDEMPOTENCY_MAX_ANSWER_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .max(16 * 1024 * 1024)
    .default(64 * 1024),
  IDEMPOTENCY_KEY_BYTES_PER_HOUR: z.coerce
    .number()
    .int()
    .min(0)
    .default(64 * 1024 * 1024),
});

/** Defaults, with IDEMPOTENCY_TTL_SEC from the environment (a bad value stops the start, naming it). */
export function resolveIdempotencyOptions(
  o: IdempotencyOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedIdempotencyOptions {
  const parsed = envSchema.safeParse({
    IDEMPOTENCY_TTL_SEC: env.IDEMPOTENCY_TTL_SEC || undefined,
    IDEMPOTENCY_MAX_ANSWER_BYTES: env.IDEMPOTENCY_MAX_ANSWER_BYTES || undefined,
    IDEMPOTENCY_KEY_BYTES_PER_HOUR: env.IDEMPOTENCY_KEY_BYTES_PER_HOUR || undefined,
  });
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  return {
    ttlMs: o.ttlMs ?? parsed.data.IDEMPOTENCY_TTL_SEC * 1000,
    leaseMs: o.leaseMs ?? 15_000,
    purgeIntervalMs: o.purgeIntervalMs ?? 10 * 60_000,
    maxAnswerBytes: o.maxAnswerBytes ?? parsed.data.IDEMPOTENCY_MAX_ANSWER_BYTES,
    keyBytesPerHour: o.keyBytesPerHour ?? parsed.data.IDEMPOTENCY_KEY_BYTES_PER_HOUR,
  };
}

/**
 * The key table. A key is one API key's own (primary key `(key, owner)`): what one API key sent
 * under a key neither answers nor blocks another's request with the same key. A table made before
 * keys were scoped had `primary key (key)`; the block at the end swaps it for the scoped one, once
 * (its rows, one per key, each with its owner, stay valid as they are), and is a no-op after. It
 * runs under the migration's advisory lock, so gateways starting together swap it once.
 */
export const IDEMPOTENCY_SCHEMA_SQL = `
create schema if not exists gateway;
create table if not exists gateway.idempotency_keys (
  key           text not null,
  owner         text not null,
  fingerprint   text not null,
  method        text not null,
  path          text not null,
  state         text not null check (state in ('in_flight', 'done')),
  token         text not null,
  status        int,
  content_type  text,
  body          text,
  created_at    timestamptz not null,
  leased_until  timestamptz not null,
  completed_at  timestamptz,
  expires_at    timestamptz not null,
  constraint idempotency_keys_pkey primary key (key, owner)
);
create index if not exists idempotency_keys_expires on gateway.idempotency_keys (expires_at);
do $migrate$
declare
  single text;
begin
  select c.conname into single
    from pg_constraint c
   where c.conrelid = 'gateway.idempotency_keys'::regclass and c.contype = 'p' and cardinality(c.conkey) = 1;
  if single is not null then
    execute format('alter table gateway.idempotency_keys drop constraint %I', single);
    alter table gateway.idempotency_keys add constraint idempotency_keys_pkey primary key (key, owner);
  end if;
end
$migrate$;
`;

/** What a request is, for its key. */
export interface KeyedRequest {
  readonly key: string;
  /** The API key id (or `anonymous` without auth: every caller is the same one): a key is its owner's alone. */
  readonly owner: string;
  readonly fingerprint: string;
  readonly method: string;
  readonly path: string;
}

/** A first answer as it was sent. */
export interface StoredAnswer {
  readonly status: number;
  readonly contentType: string | null;
  readonly body: string | null;
}

export type Claim =
  | { readonly kind: 'claimed'; readonly token: string }
  | { readonly kind: 'replay'; readonly answer: StoredAnswer }
  | { readonly kind: 'in_flight' }
  | {
      readonly kind: 'mismatch';
      readonly what: 'route' | 'body';
      readonly first: { readonly method: string; readonly path: string };
    };

/**
 * Part of a WHERE clause that is always true and turns off the wait for the WAL flush of the
 * statement's own transaction (`synchronous_commit = off`, local to it). A key row is written
 * twice per command, each its own commit; waiting for two disk flushes more per command halved
 * the delegation throughput under load. What this risks is a PostgreSQL crash (not a gateway
 * crash) losing the last fraction of a second of key rows: a retry then runs again, and the back
 * ends that create things find their first run by the id derived from the key.
 */
const ASYNC_COMMIT = `set_config('synchronous_commit', 'off', true) is not null`;

interface Row {
  fingerprint: string;
  method: string;
  path: string;
  state: 'in_flight' | 'done';
  token: string;
  status: number | null;
  content_type: string | null;
  body: string | null;
}

/** Which row: a key as one API key (its owner) sent it, and the claim that holds it. */
export interface KeyClaim {
  readonly key: string;
  readonly owner: string;
  readonly token: string;
}

/**
 * Idempotency keys in PostgreSQL (`gateway.idempotency_keys`): one row per API key and key with
 * the request it is bound to (method and path, body hash) and, once handled, the first answer.
 * Each API key has its keys to itself: another API key's request with the same key is a request of
 * its own, so a key cannot be probed nor taken ahead by another caller. A key is claimed by one
 * insert (the primary key decides between racing requests, across gateway processes), leased while
 * its request runs, and kept `ttlMs`.
 */
export class IdempotencyStore {
  private timer: NodeJS.Timeout | undefined;
  private ready: Promise<void> | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly logger: Logger,
    readonly options: ResolvedIdempotencyOptions,
  ) {}

  /** Create the table (idempotent, under a lock), purge what expired, then purge on a timer. */
  init(): Promise<void> {
    this.ready ??= (async () => {
      await migrateUnderLock(this.pool, 'switchyard.gateway.idempotency.schema', IDEMPOTENCY_SCHEMA_SQL);
      await this.purge();
      this.timer = setInterval(
        () => void this.purge().catch((err) => this.logger.warn({ err }, 'purging expired idempotency keys failed')),
        this.options.purgeIntervalMs,
      );
      this.timer.unref();
    })().catch((err) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Claim the key for this request (its owner's key), or say what it holds: the first answer (same
   * request), `in_flight` (same request, still running, lease alive), or a mismatch (another route
   * or body). An expired key, or an in-flight one whose lease ran out for the same request, is
   * taken over. Another owner's row with the same key is not this one's.
   */
  async claim(r: KeyedRequest): Promise<Claim> {
    await this.init();
    for (let attempt = 0; attempt < 3; attempt++) {
      const token = randomUUID();
      const won = await this.pool.query(
        `insert into gateway.idempotency_keys as k (key, owner, fingerprint, method, path, state, token, created_at, leased_until, expires_at)
         select $1, $2, $3, $4, $5, 'in_flight', $6, now(), now() + make_interval(secs => $7::float8 / 1000), now() + make_interval(secs => $8::float8 / 1000)
         where ${ASYNC_COMMIT}
         on conflict (key, owner) do update set fingerprint = excluded.fingerprint, method = excluded.method, path = excluded.path,
           state = 'in_flight', token = excluded.token, status = null, content_type = null, body = null, created_at = excluded.created_at,
           leased_until = excluded.leased_until, completed_at = null, expires_at = excluded.expires_at
         where k.expires_at < now()
            or (k.state = 'in_flight' and k.leased_until < now() and k.fingerprint = excluded.fingerprint)
         returning token`,
        [r.key, r.owner, r.fingerprint, r.method, r.path, token, this.options.leaseMs, this.options.ttlMs],
      );
      if (won.rows[0]?.token === token) return { kind: 'claimed', token };
      const found = await this.pool.query<Row>(
        `select fingerprint, method, path, state, token, status, content_type, body from gateway.idempotency_keys where key = $1 and owner = $2 and expires_at >= now()`,
        [r.key, r.owner],
      );
      const row = found.rows[0];
      if (!row) continue; // purged or expired in between: claim again
      const first = { method: row.method, path: row.path };
      if (row.method !== r.method || row.path !== r.path) return { kind: 'mismatch', what: 'route', first };
      if (row.fingerprint !== r.fingerprint) return { kind: 'mismatch', what: 'body', first };
      if (row.state === 'in_flight') return { kind: 'in_flight' };
      return { kind: 'replay', answer: { status: row.status ?? 200, contentType: row.content_type, body: row.body } };
    }
    return { kind: 'in_flight' };
  }

  /** Keep the lease of a request that is still running. */
  async renew({ key, owner, token }: KeyClaim): Promise<void> {
    await this.pool.query(
      `update gateway.idempotency_keys set leased_until = now() + make_interval(secs => $4::float8 / 1000) where key = $1 and owner = $2 and token = $3 and state = 'in_flight'`,
      [key, owner, token, this.options.leaseMs],
    );
  }

  /** Record the first answer; later requests with the key get it. */
  async complete({ key, owner, token }: KeyClaim, answer: StoredAnswer): Promise<void> {
    await this.pool.query(
      `update gateway.idempotency_keys set state = 'done', status = $4, content_type = $5, body = $6, completed_at = now() where key = $1 and owner = $2 and token = $3 and ${ASYNC_COMMIT}`,
      [key, owner, token, answer.status, answer.contentType, answer.body],
    );
  }

  /** Give the key up (the request failed in a way a retry may not: 5xx); a retry runs again. */
  async release({ key, owner, token }: KeyClaim): Promise<void> {
    await this.pool.query(
      `delete from gateway.idempotency_keys where key = $1 and owner = $2 and token = $3 and state = 'in_flight'`,
      [key, owner, token],
    );
  }

  /** Delete expired keys; returns how many. */
  async purge(): Promise<number> {
    const r = await this.pool.query(`delete from gateway.idempotency_keys where expires_at < now()`);
    if ((r.rowCount ?? 0) > 0) this.logger.info({ purged: r.rowCount }, 'expired idempotency keys purged');
    return r.rowCount ?? 0;
  }
}
