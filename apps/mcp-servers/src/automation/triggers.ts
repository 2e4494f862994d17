/**
 * Workflow triggers (automation.triggers): requests to start a workflow, from trigger_workflow
 * or a schedule occurrence. Operational hand-over rows that the workflow engine's trigger
 * starter claims and marks; the workflow's own events live in its execution stream.
 */
import type pg from 'pg';
import { triggerExecutionId } from '@switchyard/contracts';
import { AppError, newId, type Logger } from '@switchyard/platform';
import type { Clock } from './clock.js';
import { iso } from './webhooks.js';

/** A recorded request to start a workflow; the workflow engine consumes `pending` ones. */
export interface TriggerRecord {
  readonly id: string;
  readonly template_id: string;
  readonly input: Record<string, unknown>;
  readonly source: 'tool' | 'schedule';
  readonly schedule_id: string | null;
  readonly fire_at: string | null;
  readonly correlation_id: string;
  /** The person the workflow is started for (who called trigger_workflow, the schedule's owner): its `startedBy`; null when not known. */
  readonly on_behalf_of: string | null;
  /** `pending` until the engine's starter claims it, then `started` or `failed`. */
  readonly status: string;
  /** The execution this trigger starts (derived from `id`, known before it starts): GET /api/v1/workflows/executions/{id}. */
  readonly execution_id: string;
  /** Why the starter could not start it (status `failed`). */
  readonly error: string | null;
  readonly started_at: string | null;
  readonly created_at: string;
}

function toTrigger(r: Record<string, unknown>): TriggerRecord {
  return {
    id: r['id'] as string,
    template_id: r['template_id'] as string,
    input: r['input'] as Record<string, unknown>,
    source: r['source'] as 'tool' | 'schedule',
    schedule_id: (r['schedule_id'] as string | null) ?? null,
    fire_at: iso(r['fire_at'] as Date | null),
    correlation_id: r['correlation_id'] as string,
    on_behalf_of: (r['on_behalf_of'] as string | null) ?? null,
    status: r['status'] as string,
    execution_id: (r['execution_id'] as string | null) ?? triggerExecutionId(r['id'] as string),
    error: (r['error'] as string | null) ?? null,
    started_at: iso((r['started_at'] as Date | null) ?? null),
    created_at: iso(r['created_at'] as Date)!,
  };
}

/** Record the trigger of a schedule occurrence in the claim's transaction (once per occurrence); undefined when already recorded. */
export async function insertScheduleTrigger(
  c: pg.PoolClient,
  t: {
    templateId: string;
    input: Record<string, unknown>;
    scheduleId: string;
    /** The schedule's plan it fires under (see Schedules.pauseMissingTargets). */
    planRevision: number | string;
    fireAt: Date;
    now: Date;
    onBehalfOf: string | null;
  },
): Promise<TriggerRecord | undefined> {
  const r = await c.query(
    `INSERT INTO automation.triggers (id, template_id, input, source, schedule_id, fire_at, correlation_id, created_at, on_behalf_of, plan_revision)
     VALUES ($1,$2,$3,'schedule',$4,$5,$6,$7,$8,$9) ON CONFLICT (schedule_id, fire_at) DO NOTHING RETURNING *`,
    [
      newId(),
      t.templateId,
      JSON.stringify(t.input),
      t.scheduleId,
      t.fireAt,
      newId(),
      t.now,
      t.onBehalfOf,
      t.planRevision,
    ],
  );
  return r.rows[0] ? toTrigger(r.rows[0]) : undefined;
}

export interface TriggersDeps {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Called after a trigger is durably recorded (errors are logged, the record stays). */
  readonly onTrigger?: ((trigger: TriggerRecord) => void | Promise<void>) | undefined;
}

export class Triggers {
  constructor(private readonly deps: TriggersDeps) {}

  async notify(trigger: TriggerRecord): Promise<void> {
    if (!this.deps.onTrigger) return;
    try {
      await this.deps.onTrigger(trigger);
    } catch (e) {
      this.deps.logger.error(
        { correlationId: trigger.correlation_id, triggerId: trigger.id, err: e },
        'onTrigger callback failed; the trigger stays recorded',
      );
    }
  }

  /**
   * Record a request to start a workflow (status `pending`) and tell `onTrigger`. The workflow
   * engine's trigger starter starts it (execution `execution_id`) and marks the row.
   */
  async triggerWorkflow(input: {
    templateId: string;
    input: Record<string, unknown>;
    correlationId?: string;
    onBehalfOf?: string | undefined;
  }): Promise<TriggerRecord> {
    const r = await this.deps.pool.query(
      `INSERT INTO automation.triggers (id, template_id, input, source, correlation_id, created_at, on_behalf_of)
       VALUES ($1,$2,$3,'tool',$4,$5,$6) RETURNING *`,
      [
        newId(),
        input.templateId,
        JSON.stringify(input.input),
        input.correlationId ?? newId(),
        this.deps.clock.now(),
        input.onBehalfOf ?? null,
      ],
    );
    const trigger = toTrigger(r.rows[0]);
    await this.notify(trigger);
    return trigger;
  }

  /** One trigger by its id: how it stands (`pending`, `started` with its execution, `failed` with why). */
  async getTrigger(id: string): Promise<TriggerRecord> {
    const r = await this.deps.pool.query(`SELECT * FROM automation.triggers WHERE id = $1`, [id]);
    if (!r.rows[0]) throw new AppError('not_found', `no trigger with id "${id}"`, { trigger_id: id });
    return toTrigger(r.rows[0]);
  }

  async listTriggers(limit = 100): Promise<TriggerRecord[]> {
    const r = await this.deps.pool.query(`SELECT * FROM automation.triggers ORDER BY created_at, id LIMIT $1`, [limit]);
    return r.rows.map(toTrigger);
  }
}
