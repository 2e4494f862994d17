import type pg from 'pg';
import {
  createPgPool,
  isSchemaManaged,
  markSchemaManaged,
  trySessionLock,
  type Logger,
  type SessionLock,
} from '@switchyard/platform';

/** Where a relay keeps the position of the last event it knows JetStream has stored. */
export interface RelayCheckpointStore {
  /** The saved position, or undefined when the relay never ran. */
  load(name: string): Promise<number | undefined>;
  /** Save a position. Never moves a checkpoint backwards (a late writer cannot undo progress). */
  save(name: string, position: number): Promise<void>;
  /** Set the position back (save only moves it forward): the store no longer holds what it counted. */
  rewind?(name: string, position: number): Promise<void>;
}

/**
 * Relay checkpoints in PostgreSQL (`relay.checkpoint`), plus an advisory lock so only
 * one relay per name publishes at a time (others wait as standby). The lock lives on
 * its own connection: when the process dies, PostgreSQL drops the connection and the
 * lock with it, so a standby takes over without any lease timeout.
 */
export class PgRelayCheckpointStore implements RelayCheckpointStore {
  private readonly pool: pg.Pool;
  private lock: SessionLock | undefined;

  /** `schemaManaged`: the login may not run DDL (the owner role made the table before), init() only checks nothing. */
  constructor(private readonly options: { connectionString: string; logger?: Logger; schemaManaged?: boolean }) {
    // A connection losing its session must not crash the process; the next query reconnects.
    this.pool = createPgPool(
      { connectionString: options.connectionString, max: 2 },
      { name: 'relay-checkpoint', ...(options.logger ? { logger: options.logger } : {}) },
    );
    if (options.schemaManaged) markSchemaManaged(this.pool);
  }

  /** Create the schema and table; idempotent. */
  async init(): Promise<void> {
    if (isSchemaManaged(this.pool)) return;
    await this.pool.query(`
      create schema if not exists relay;
      create table if not exists relay.checkpoint (
        name text primary key,
        position bigint not null,
        updated_at timestamptz not null default now()
      );`);
  }

  async load(name: string): Promise<number | undefined> {
    const r = await this.pool.query<{ position: string }>('select position from relay.checkpoint where name = $1', [
      name,
    ]);
    return r.rows[0] ? Number(r.rows[0].position) : undefined;
  }

  async save(name: string, position: number): Promise<void> {
    await this.pool.query(
      `insert into relay.checkpoint (name, position) values ($1, $2)
       on conflict (name) do update set position = excluded.position, updated_at = now()
       where relay.checkpoint.position < excluded.position`,
      [name, position],
    );
  }

  async rewind(name: string, position: number): Promise<void> {
    await this.pool.query(`update relay.checkpoint set position = $2, updated_at = now() where name = $1`, [
      name,
      position,
    ]);
  }

  /**
   * Try to become the one active relay for `name`. True when this store now holds the
   * lock (until close()). False when another process holds it.
   */
  async tryLock(name: string, onLost: () => void = () => undefined): Promise<boolean> {
    if (this.lock) return true;
    const lock = await trySessionLock(
      { connectionString: this.options.connectionString },
      { namespace: 'switchyard.relay', name },
      { connectionName: 'relay-lock', logger: this.options.logger },
    );
    if (!lock) return false;
    this.lock = lock;
    void lock.lost.then((err) => {
      if (this.lock !== lock) return; // released on purpose
      this.lock = undefined;
      this.options.logger?.error({ err, name }, 'relay lock connection lost');
      onLost();
    });
    return true;
  }

  /** Release the lock (by closing its connection) and the pool. */
  async close(): Promise<void> {
    const lock = this.lock;
    this.lock = undefined;
    await lock?.release();
    await this.pool.end();
  }
}
