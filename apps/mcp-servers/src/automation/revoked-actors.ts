/**
 * The persons whose access was revoked, as the automation server needs to know them: a
 * projection of the gateway's `ApiKeyRevoked` events into automation.revoked_actors. A schedule
 * whose owner is listed there does not fire, and the scheduler pauses it (SchedulePaused, reason
 * `owner_revoked`): revoking a key also ends what it left running here.
 *
 * The events belong to the gateway's API key aggregate (streams `apikey-<id>`); the automation
 * role may read every event and writes only its own schema, so this is a read model like the
 * others, rebuilt from the log the same way.
 */
import type pg from 'pg';
import { API_KEY_STREAM_PREFIX, apiKeyActor, apiKeyRevokedData } from '@switchyard/contracts';
import type { RecordedEvent } from '@switchyard/event-store';
import type { Projection } from '@switchyard/read-models';

export const REVOKED_ACTORS_PROJECTION = 'automation-revoked-actors';

export const revokedActorsProjection: Projection = {
  name: REVOKED_ACTORS_PROJECTION,
  handles: ['ApiKeyRevoked'],
  streamPrefixes: [API_KEY_STREAM_PREFIX],
  // The table is created by migrateAutomation.
  async setup() {},
  async apply(c: pg.PoolClient, e: RecordedEvent): Promise<void> {
    // Another component's event: one this server cannot read names no key it knows, and must not
    // stall the projection (a failing batch is retried, not skipped).
    const d = apiKeyRevokedData.safeParse(e.data);
    if (!d.success) return;
    await c.query(
      `INSERT INTO automation.revoked_actors (actor, revoked_at, position) VALUES ($1,$2,$3) ON CONFLICT (actor) DO NOTHING`,
      [apiKeyActor(d.data.id), e.recordedAt, e.position],
    );
  },
  async reset(c: pg.PoolClient): Promise<void> {
    await c.query(`DELETE FROM automation.revoked_actors`);
  },
};
