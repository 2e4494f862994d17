import type pg from 'pg';
import type { Pool } from 'pg';
import { AppError, createPgClient, isSchemaManaged, type Logger } from '@switchyard/platform';
import { handleCommand, toDomainEvent, type EventMetadata, type EventStore } from '@switchyard/event-store';
import {
  API_KEY_EVENT_TYPES,
  API_KEY_STREAM_PREFIX,
  apiKeyDecider,
  apiKeyStream,
  type ApiKeyEvent,
} from './api-key.decider.js';
import { describeKey, generateKey, parseKey, secretMatches, type GeneratedKey } from './keys.js';
import type { Role } from './roles.js';

/** A key as the admin API shows it: never the secret, never the hash. */
export interface ApiKeyRecord {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly prefix: string;
  readonly createdAt: string;
  readonly createdBy: string;
  readonly revokedAt: string | null;
  readonly revokedBy: string | null;
}

/** The caller behind a request once its key checked out. */
export interface ResolvedKey {
  readonly id: string;
  readonly role: Role;
  readonly name: string;
}

/** Who issues a command and on behalf of which request. */
export interface CommandContext {
  readonly actor: string;
  readonly correlationId: string;
}

/** The NOTIFY channel a revocation is announced on (the payload: the key's id). */
const REVOKED_CHANNEL = 'switchyard_api_key_revoked';

export const SECURITY_SCHEMA_SQL = `
create schema if not exists security;
create table if not exists security.api_keys (
  id          text primary key,
  name        text not null,
  role        text not null check (role in ('viewer', 'operator', 'admin')),
  hash        text not null,
  prefix      text not null,
  created_at  timestamptz not null,
  created_by  text not null,
  revoked_at  timestamptz,
  revoked_by  text
);
create index if not exists api_keys_active_role on security.api_keys (role) where revoked_at is null;
`;

interface Row {
  id: string;
  name: string;
  role: Role;
  hash: string;
  prefix: string;
  created_at: Date;
  created_by: string;
  revoked_at: Date | null;
  revoked_by: string | null;
}

const toRecord = (r: Row): ApiKeyRecord => ({
  id: r.id,
  name: r.name,
  role: r.role,
  prefix: r.prefix,
  createdAt: r.created_at.toISOString(),
  createdBy: r.created_by,
  revokedAt: r.revoked_at ? r.revoked_at.toISOString() : null,
  revokedBy: r.revoked_by,
});

export interface ApiKeyServiceOptions {
  /**
   * How long a checked key is remembered by this process. A revocation made through
   * another gateway instance takes effect here within this time (this instance's own
   * revocations apply at once). Default 5 000 ms.
   */
  readonly cacheTtlMs?: number;
  /** The clock, for command timestamps. */
  readonly now?: () => Date;
}

/** `verified`: the last presented key whose secret matched `hash` (so a repeat skips the hash). */
type CacheEntry = {
  readonly at: number;
  readonly key: ResolvedKey | null;
  readonly hash: string | null;
  verified?: string;
};

/**
 * API keys: commands go through the event store (ApiKeyCreated / ApiKeyRevoked with the
 * actor in metadata); security.api_keys is the projection the hot path reads. The
 * projection is written right after each append and caught up from the log at start
 * (idempotent), so a crash between the two heals on the next start.
 */
export class ApiKeyService {
  private readonly cache = new Map<string, CacheEntry>();
  /** What each key holds open (event streams, MCP sessions, A2A streams): ended when it is revoked. */
  private readonly held = new Map<string, Set<() => void>>();
  private heldCheck: NodeJS.Timeout | undefined;
  private checking = false;
  private readonly ttl: number;
  private readonly now: () => Date;
  private initialised: Promise<void> | undefined;
  /** The LISTEN connection of watchRevocations. */
  private revocations: pg.Client | undefined;
  private relisten: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly store: EventStore,
    private readonly pool: Pool,
    private readonly logger: Logger,
    options: ApiKeyServiceOptions = {},
  ) {
    this.ttl = options.cacheTtlMs ?? 5_000;
    this.now = options.now ?? (() => new Date());
  }

  /** Create the table and catch it up with the log. Idempotent. */
  init(): Promise<void> {
    this.initialised ??= (async () => {
      // The gateway's role may not run DDL: the owner migrated before it started.
      if (!isSchemaManaged(this.pool)) await this.migrate();
      await this.catchUp();
    })().catch((err) => {
      this.initialised = undefined;
      throw err;
    });
    return this.initialised;
  }

  /** The schema, under a lock (idempotent). */
  private async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query(`select pg_advisory_lock(hashtext('switchyard.security.schema'))`);
      try {
        await client.query(SECURITY_SCHEMA_SQL);
      } finally {
        await client.query(`select pg_advisory_unlock(hashtext('switchyard.security.schema'))`);
      }
    } finally {
      client.release();
    }
  }

  /** Re-apply every API key event of the log to the table (rows are upserted, so repeats are harmless). */
  async catchUp(): Promise<number> {
    let after = -1;
    let applied = 0;
    for (;;) {
      const batch = await this.store.readAll({
        after,
        maxCount: 1000,
        types: [...API_KEY_EVENT_TYPES],
        streamPrefixes: [API_KEY_STREAM_PREFIX],
      });
      for (const e of batch) await this.apply(toDomainEvent<ApiKeyEvent>(e));
      applied += batch.length;
      if (batch.length < 1000) return applied;
      after = batch[batch.length - 1]!.position;
    }
  }

  private async apply(e: ApiKeyEvent): Promise<void> {
    const by = e.metadata.actor ?? 'unknown';
    if (e.type === 'ApiKeyCreated') {
      const d = e.data;
      await this.pool.query(
        `insert into security.api_keys (id, name, role, hash, prefix, created_at, created_by)
         values ($1, $2, $3, $4, $5, $6, $7) on conflict (id) do nothing`,
        [d.id, d.name, d.role, d.hash, d.prefix, e.metadata.timestamp, by],
      );
    } else {
      await this.pool.query(
        `update security.api_keys set revoked_at = $2, revoked_by = $3 where id = $1 and revoked_at is null`,
        [e.data.id, e.metadata.timestamp, by],
      );
      // Every gateway listening (watchRevocations) drops the key at once, not after its cache's TTL.
      await this.pool.query(`select pg_notify($1, $2)`, [REVOKED_CHANNEL, e.data.id]);
      this.endHeld(e.data.id);
    }
    this.cache.delete(e.data.id);
  }

  /**
   * Hear of revocations made anywhere (another gateway, the CLI) as they commit: the key leaves
   * this gateway's cache and what it holds open ends, instead of serving on until the cache's TTL
   * runs out. One connection of its own (LISTEN holds it); when it drops, the whole cache is
   * dropped (a revocation may have been missed) and it listens again a second later.
   */
  async watchRevocations(): Promise<void> {
    if (this.revocations || this.closed) return;
    const client = createPgClient(
      { ...this.pool.options, application_name: 'switchyard-gateway-key-revocations' },
      { name: 'key-revocations', logger: this.logger, onError: () => again() },
    );
    this.revocations = client;
    const again = () => {
      if (this.revocations !== client) return;
      this.revocations = undefined;
      this.cache.clear();
      void client.end().catch(() => undefined);
      if (this.closed) return;
      this.relisten = setTimeout(() => {
        void this.watchRevocations()
          .then(() => this.checkHeld())
          .catch((err: unknown) => {
            this.logger.warn({ err }, 'listening for key revocations failed; the cache TTL bounds how long one takes');
            again();
          });
      }, 1_000);
      this.relisten.unref();
    };
    client.on('end', again);
    client.on('notification', (n) => {
      if (n.channel !== REVOKED_CHANNEL || !n.payload) return;
      this.cache.delete(n.payload);
      this.endHeld(n.payload);
    });
    try {
      await client.connect();
      await client.query(`listen ${REVOKED_CHANNEL}`);
    } catch (err) {
      if (this.revocations === client) this.revocations = undefined;
      void client.end().catch(() => undefined);
      throw err;
    }
  }

  /** Stop listening for revocations. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.relisten);
    clearInterval(this.heldCheck);
    this.heldCheck = undefined;
    const client = this.revocations;
    this.revocations = undefined;
    await client?.end().catch(() => undefined);
  }

  /**
   * Call `onRevoked` once key `id` is revoked, until the returned release: a connection that
   * outlives the request that opened it (an event stream, an MCP session, an A2A stream) checked
   * the key once, at its start, and must not go on serving a revoked key. A revocation through
   * this gateway ends them at once; one through another gateway (or the CLI) within the key cache's
   * TTL, the same delay as its next request's refusal (one query per TTL while anything is held).
   */
  whileActive(id: string, onRevoked: () => void): () => void {
    let set = this.held.get(id);
    if (!set) this.held.set(id, (set = new Set()));
    set.add(onRevoked);
    if (!this.heldCheck) {
      // At least a second apart: a TTL of 0 (no cache) would otherwise query without a pause.
      this.heldCheck = setInterval(() => void this.checkHeld(), Math.max(1_000, this.ttl));
      this.heldCheck.unref();
    }
    return () => {
      const mine = this.held.get(id);
      if (!mine?.delete(onRevoked) || mine.size > 0) return;
      this.held.delete(id);
      this.stopCheckWhenNothingHeld();
    };
  }

  private stopCheckWhenNothingHeld(): void {
    if (this.held.size > 0 || !this.heldCheck) return;
    clearInterval(this.heldCheck);
    this.heldCheck = undefined;
  }

  private endHeld(id: string): void {
    const ends = this.held.get(id);
    if (!ends) return;
    this.held.delete(id);
    this.logger.info({ keyId: id, connections: ends.size }, 'API key revoked: ending what it holds open');
    for (const end of ends) {
      try {
        end();
      } catch (err) {
        this.logger.warn({ err, keyId: id }, 'ending a connection of a revoked key failed');
      }
    }
    this.stopCheckWhenNothingHeld();
  }

  /** The held keys another gateway (or the CLI) revoked: ended here too. */
  private async checkHeld(): Promise<void> {
    if (this.checking || this.held.size === 0) return;
    this.checking = true;
    try {
      const { rows } = await this.pool.query<{ id: string }>(
        `select id from security.api_keys where id = any($1::text[]) and revoked_at is not null`,
        [[...this.held.keys()]],
      );
      for (const r of rows) {
        this.cache.delete(r.id);
        this.endHeld(r.id);
      }
    } catch (err) {
      this.logger.warn({ err }, 'could not check the keys that hold connections open; trying again');
    } finally {
      this.checking = false;
    }
  }

  private metadata(ctx: CommandContext): EventMetadata {
    return { correlationId: ctx.correlationId, actor: ctx.actor, timestamp: this.now().toISOString() };
  }

  private async createFrom(k: GeneratedKey, name: string, role: Role, ctx: CommandContext): Promise<ApiKeyRecord> {
    const result = await handleCommand(this.store, apiKeyStream(k.id), apiKeyDecider, {
      type: 'CreateApiKey',
      data: { id: k.id, name, role, hash: k.hash, prefix: k.prefix },
      metadata: this.metadata(ctx),
    });
    for (const e of result.events) await this.apply(e);
    this.logger.info(
      { correlationId: ctx.correlationId, keyId: k.id, role, name, actor: ctx.actor },
      'API key created',
    );
    return (await this.get(k.id))!;
  }

  /** Make a new key. The answer's `key` is the only time the secret exists outside the caller. */
  async create(input: { name: string; role: Role }, ctx: CommandContext): Promise<ApiKeyRecord & { key: string }> {
    const k = generateKey();
    const record = await this.createFrom(k, input.name, input.role, ctx);
    return { ...record, key: k.key };
  }

  /**
   * Revoke a key. Refuses (409) to revoke the last active admin key, which would lock
   * everyone out of the admin API (the CLI can still make a new one).
   */
  async revoke(id: string, ctx: CommandContext): Promise<ApiKeyRecord> {
    const current = await this.get(id);
    if (current && current.role === 'admin' && current.revokedAt === null && (await this.activeAdminCount()) <= 1) {
      throw new AppError(
        'illegal_state',
        `API key ${id} is the last active admin key; create another admin key first`,
        { id },
      );
    }
    const result = await handleCommand(this.store, apiKeyStream(id), apiKeyDecider, {
      type: 'RevokeApiKey',
      data: { id },
      metadata: this.metadata(ctx),
    });
    for (const e of result.events) await this.apply(e);
    this.logger.info({ correlationId: ctx.correlationId, keyId: id, actor: ctx.actor }, 'API key revoked');
    return (await this.get(id))!;
  }

  async get(id: string): Promise<ApiKeyRecord | undefined> {
    const { rows } = await this.pool.query<Row>('select * from security.api_keys where id = $1', [id]);
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /**
   * At most `limit` keys after the key `cursor` (oldest first, by creation then id), and whether
   * more follow. A cursor that names no key is refused (`validation`): keys are never deleted, so
   * it was never a page's end.
   */
  async listPage(o: {
    includeRevoked: boolean;
    limit: number;
    cursor?: string | undefined;
  }): Promise<{ keys: ApiKeyRecord[]; more: boolean }> {
    if (o.cursor !== undefined) {
      const { rowCount } = await this.pool.query('select 1 from security.api_keys where id = $1', [o.cursor]);
      if (!rowCount)
        throw new AppError('validation', 'cursor names no key: give the next_cursor of the page before', {
          cursor: o.cursor,
        });
    }
    const { rows } = await this.pool.query<Row>(
      `select * from security.api_keys
        where ($1 or revoked_at is null)
          and ($2::text is null or (created_at, id) > (select created_at, id from security.api_keys where id = $2))
        order by created_at, id limit $3`,
      [o.includeRevoked, o.cursor ?? null, o.limit + 1],
    );
    return { keys: rows.slice(0, o.limit).map(toRecord), more: rows.length > o.limit };
  }

  async list(options: { includeRevoked?: boolean } = {}): Promise<ApiKeyRecord[]> {
    const { rows } = await this.pool.query<Row>(
      `select * from security.api_keys ${options.includeRevoked ? '' : 'where revoked_at is null'} order by created_at, id`,
    );
    return rows.map(toRecord);
  }

  async activeAdminCount(): Promise<number> {
    const { rows } = await this.pool.query<{ n: number }>(
      `select count(*)::int as n from security.api_keys where role = 'admin' and revoked_at is null`,
    );
    return rows[0]?.n ?? 0;
  }

  /**
   * The key behind a presented credential, or undefined when it is malformed, unknown,
   * revoked or wrong. Results (also negative ones) are cached for the TTL.
   */
  async authenticate(presented: string): Promise<ResolvedKey | undefined> {
    const parsed = parseKey(presented);
    if (!parsed) return undefined;
    const t = Date.now();
    let entry = this.cache.get(parsed.id);
    if (!entry || t - entry.at > this.ttl) {
      const { rows } = await this.pool.query<Row>('select * from security.api_keys where id = $1', [parsed.id]);
      const row = rows[0];
      entry = {
        at: t,
        hash: row && !row.revoked_at ? row.hash : null,
        key: row && !row.revoked_at ? { id: row.id, role: row.role, name: row.name } : null,
      };
      if (this.cache.size > 10_000) this.cache.clear(); // unknown ids must not grow memory without bound
      this.cache.set(parsed.id, entry);
    }
    if (!entry.key || !entry.hash) return undefined;
    if (entry.verified === presented) return entry.key;
    if (!secretMatches(parsed.secret, entry.hash)) return undefined;
    entry.verified = presented;
    return entry.key;
  }

  /**
   * The key of a presented value already verified within the cache TTL, without waiting
   * (the hot path of every request); undefined when only authenticate() can tell.
   */
  authenticateCached(presented: string): ResolvedKey | undefined {
    const parsed = parseKey(presented);
    if (!parsed) return undefined;
    const entry = this.cache.get(parsed.id);
    if (!entry || entry.verified !== presented || !entry.key || Date.now() - entry.at > this.ttl) return undefined;
    return entry.key;
  }

  /**
   * The first admin key, at start:
   * 1. SWITCHYARD_ADMIN_KEY given: make sure it exists (created once, by `system:bootstrap`);
   *    a revoked env key stays revoked (the revocation was deliberate), with a warning.
   * 2. Otherwise, when no active admin key exists: generate one and hand it to `print`
   *    (stdout, once). It never reaches the log.
   * Serialised with an advisory lock so two gateways starting together make one key
   * (the lock holds one pool connection while the work uses another: the pool needs >= 2).
   */
  async bootstrapAdmin(options: {
    envKey?: string | undefined;
    correlationId: string;
    print: (key: string) => void;
  }): Promise<{ created: 'env' | 'generated' | null; id?: string }> {
    await this.init();
    const client = await this.pool.connect();
    try {
      await client.query(`select pg_advisory_lock(hashtext('switchyard.security.bootstrap'))`);
      const ctx = { actor: 'system:bootstrap', correlationId: options.correlationId };
      if (options.envKey) {
        const parsed = parseKey(options.envKey);
        if (!parsed) {
          throw new AppError(
            'validation',
            'SWITCHYARD_ADMIN_KEY must look like sy_<16 hex>_<32+ chars of [A-Za-z0-9_-]>; make one with `cli.js generate`',
          );
        }
        const k = describeKey(parsed);
        const existing = await this.get(k.id);
        if (!existing) {
          await this.createFrom(k, 'SWITCHYARD_ADMIN_KEY', 'admin', ctx);
          return { created: 'env', id: k.id };
        }
        if (existing.revokedAt)
          this.logger.warn(
            { correlationId: options.correlationId, keyId: k.id },
            'SWITCHYARD_ADMIN_KEY is revoked; it stays revoked',
          );
        return { created: null, id: k.id };
      }
      if ((await this.activeAdminCount()) > 0) return { created: null };
      const k = generateKey();
      await this.createFrom(k, 'first admin (generated at start)', 'admin', ctx);
      options.print(k.key);
      return { created: 'generated', id: k.id };
    } finally {
      await client.query(`select pg_advisory_unlock(hashtext('switchyard.security.bootstrap'))`).catch(() => undefined);
      client.release();
    }
  }
}

/** The banner around a generated first admin key. */
export function adminKeyBanner(key: string): string {
  const line = '='.repeat(78);
  return [
    '',
    line,
    '  SWITCHYARD: first admin API key (shown once, not logged; store it now)',
    '',
    `  ${key}`,
    '',
    '  Use it as: Authorization: Bearer <key>. Make more keys with POST /api/v1/admin/api-keys',
    '  or `node apps/gateway/dist/security/cli.js create --role admin --name ops`.',
    line,
    '',
  ].join('\n');
}
