/**
 * The persons whose API key is an admin's, as the automation server needs to know them: only a
 * webhook's or a schedule's owner may change it, and admins must still manage everything. The role
 * does not travel with an MCP call (the connectors pass the person, `_meta.actor`, not their role);
 * it is in the gateway's `ApiKeyCreated` events (a key's role never changes), which this server
 * already reads for the revocations (revoked-actors.ts). So: a projection of them into
 * automation.admin_actors, rebuilt from the log like the others. A revoked admin key is no admin.
 */
import type pg from 'pg';
import { z } from 'zod';
import type { RecordedEvent } from '@switchyard/event-store';
import type { Projection } from '@switchyard/read-models';
import { API_KEY_STREAM_PREFIX, apiKeyActor } from '@switchyard/contracts';

export const ADMIN_ACTORS_PROJECTION = 'automation-admin-actors';
const apiKeyCreatedSchema = z.object({ id: z.string().min(1).max(200), role: z.string() });

export const adminActorsProjection: Projection = {
  name: ADMIN_ACTORS_PROJECTION,
  handles: ['ApiKeyCreated'],
  streamPrefixes: [API_KEY_STREAM_PREFIX],
  // The table is created by migrateAutomation.
  async setup() {},
  async apply(c: pg.PoolClient, e: RecordedEvent): Promise<void> {
    // Another component's event: one this server cannot read names no key it knows (see revoked-actors.ts).
    const d = apiKeyCreatedSchema.safeParse(e.data);
    if (!d.success || d.data.role !== 'admin') return;
    await c.query(
      `INSERT INTO automation.admin_actors (actor, position) VALUES ($1,$2) ON CONFLICT (actor) DO NOTHING`,
      [apiKeyActor(d.data.id), e.position],
    );
  },
  async reset(c: pg.PoolClient): Promise<void> {
    await c.query(`DELETE FROM automation.admin_actors`);
  },
};

export interface AdminActorsDeps {
  readonly pool: pg.Pool;
  /** Wait until the projection has applied the log as it is now (bounded; a timeout is no answer). */
  readonly catchUp: () => Promise<void>;
}

/** Whether a person is an admin now. */
export class AdminActors {
  constructor(private readonly deps: AdminActorsDeps) {}

  /**
   * `catchUp`: look once more after the projection has caught up, for a key created a moment ago
   * (asked only before refusing, so an owner's own calls never wait for it).
   */
  async isAdmin(actor: string | undefined, catchUp = false): Promise<boolean> {
    if (actor === undefined) return false;
    if (catchUp) await this.deps.catchUp().catch(() => undefined);
    const r = await this.deps.pool.query(
      `SELECT 1 FROM automation.admin_actors a WHERE a.actor = $1
          AND NOT EXISTS (SELECT 1 FROM automation.revoked_actors r WHERE r.actor = a.actor)`,
      [actor],
    );
    return r.rowCount === 1;
  }
}
