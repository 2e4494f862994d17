/**
 * Revoking an API key ends the workflow executions it left running: the ones it started, and those
 * a schedule or trigger started for it (their `startedBy`; a sub-workflow's is its root's). The
 * gateway refuses the key's next request at once, but an execution it started would otherwise go
 * on writing files, sending mail and making schedules in its name for as long as it runs.
 *
 * `workflows.revoked_starters` is a projection of the gateway's `ApiKeyRevoked` events (streams
 * `apikey-<id>`), so every engine knows them, after a restart too, and an upgrade that brings it
 * ends what older revocations left running. Each engine's sweep cancels the executions of its own
 * partitions whose starter is listed, through the ordinary cancel (RequestCancel: running steps
 * are told to stop, compensations run, the execution ends `canceled` with the reason).
 */
import type pg from 'pg';
import { API_KEY_STREAM_PREFIX, apiKeyActor, apiKeyRevokedData } from '@switchyard/contracts';
import type { EventStore, RecordedEvent } from '@switchyard/event-store';
import type { Projection } from '@switchyard/read-models';
import { cancelExecution, WORKFLOW_SCHEMA } from '@switchyard/workflow-executions';
import { AppError, newId, type Logger } from '@switchyard/platform';

export const REVOKED_STARTERS_PROJECTION = 'workflows-revoked-starters';
/** The actor of the cancels (the audit names the revocation, not a key). */
export const REVOCATION_ACTOR = 'system:revocation';

export const revokedStartersProjection: Projection = {
  name: REVOKED_STARTERS_PROJECTION,
  handles: ['ApiKeyRevoked'],
  streamPrefixes: [API_KEY_STREAM_PREFIX],
  // The table is created by ensureWorkflowSchema.
  async setup() {},
  async apply(c: pg.PoolClient, e: RecordedEvent): Promise<void> {
    // Another component's event: one this engine cannot read names no key it knows, and must not
    // stall the projection (a failing batch is retried, not skipped).
    const d = apiKeyRevokedData.safeParse(e.data);
    if (!d.success) return;
    const correlationId = typeof e.metadata.correlationId === 'string' ? e.metadata.correlationId : null;
    await c.query(
      `insert into ${WORKFLOW_SCHEMA}.revoked_starters (actor, revoked_at, position, correlation_id)
       values ($1, $2, $3, $4) on conflict (actor) do nothing`,
      [apiKeyActor(d.data.id), e.recordedAt, e.position, correlationId],
    );
  },
  async reset(c: pg.PoolClient): Promise<void> {
    await c.query(`delete from ${WORKFLOW_SCHEMA}.revoked_starters`);
  },
};

/** Executions one sweep looks at; the rest wait for the next sweep. */
const SWEEP_BATCH = 200;
/** A cancel asked for is not asked again this long (the execution may be running compensations). */
const ASK_AGAIN_MS = 60_000;

export interface RevokedStarterSweepOptions {
  readonly store: EventStore;
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** The partitions this engine owns now. */
  readonly owned: () => readonly number[];
}

/** Cancels the executions of the engine's partitions whose starter's key was revoked. */
export class RevokedStarterSweep {
  private readonly asked = new Map<string, number>();

  constructor(private readonly o: RevokedStarterSweepOptions) {}

  /** One sweep at `now`: the cancels it asked for. */
  async sweep(now = Date.now()): Promise<number> {
    const partitions = this.o.owned();
    if (partitions.length === 0) return 0;
    for (const [id, at] of this.asked) if (now - at >= ASK_AGAIN_MS) this.asked.delete(id);
    const r = await this.o.pool.query<{ execution_id: string; started_by: string; correlation_id: string | null }>(
      `select a.execution_id, a.started_by, s.correlation_id
         from ${WORKFLOW_SCHEMA}.revoked_starters s
         join ${WORKFLOW_SCHEMA}.active_executions a on a.started_by = s.actor
        where a.partition = any($1::int[])
        limit $2`,
      [partitions, SWEEP_BATCH],
    );
    let asked = 0;
    for (const row of r.rows) {
      if (this.asked.has(row.execution_id)) continue;
      this.asked.set(row.execution_id, now);
      try {
        await cancelExecution(this.o.store, row.execution_id, {
          reason: `its starter's API key was revoked (${row.started_by})`,
          correlationId: row.correlation_id ?? newId(),
          actor: REVOCATION_ACTOR,
        });
        asked++;
        this.o.logger.info(
          { executionId: row.execution_id, startedBy: row.started_by, correlationId: row.correlation_id },
          "canceling an execution: its starter's API key was revoked",
        );
      } catch (err) {
        // Ended meanwhile (409, the decider's illegal_state) or gone: nothing left to stop.
        if (err instanceof AppError && (err.code === 'illegal_state' || err.code === 'not_found')) continue;
        this.asked.delete(row.execution_id);
        throw err;
      }
    }
    return asked;
  }
}
