import type pg from 'pg';
import { ACTOR_PATTERN, AUTOMATION_TRIGGER_ACTOR, triggerExecutionId } from '@switchyard/contracts';
import type { EventStore } from '@switchyard/event-store';
import { isAppError, logAtMostEvery, processMemoryBudget, withTransaction, type Logger } from '@switchyard/platform';
import { startExecution, DefinitionStore, OpenExecutionsBound } from '@switchyard/workflow-executions';

/** The automation server's table of workflow triggers (created by its migration). */
const TRIGGERS = 'automation.triggers';

export interface TriggerStarterOptions {
  readonly store: EventStore;
  /** Needs SELECT, UPDATE on automation.triggers and SELECT on workflows.definitions. */
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** How often pending triggers are looked for (default 300 ms). */
  readonly pollMs?: number;
  /** Rows claimed per transaction (default 20). */
  readonly batch?: number;
  /** Executions not yet ended one person may hold (default: WORKFLOW_MAX_OPEN_PER_STARTER; see OpenExecutionsBound). */
  readonly maxOpenPerStarter?: number;
}

export interface TriggerPass {
  readonly started: number;
  readonly failed: number;
  /** Rows left pending after a transient error (event store or database unavailable): tried again next pass. */
  readonly deferred: number;
}

interface TriggerRow {
  id: string;
  template_id: string;
  input: unknown;
  correlation_id: string;
  /** Who called trigger_workflow, or the schedule's owner: the execution's startedBy. */
  on_behalf_of: string | null;
}

/**
 * Errors a later attempt cannot cure: the trigger is marked failed instead of being tried forever.
 * A person at their bound of open executions too: their rows, left pending, would come first in
 * every pass and hold everyone else's triggers back.
 */
const isFinal = (e: unknown): boolean =>
  isAppError(e) &&
  (e.code === 'validation' ||
    e.code === 'not_found' ||
    e.code === 'illegal_state' ||
    (e.code === 'rate_limited' && e.details.limit === 'WORKFLOW_MAX_OPEN_PER_STARTER'));

/**
 * Starts the workflows that the automation server's `trigger_workflow` tool and workflow
 * schedules record as `pending` rows of automation.triggers. Runs in the workflow engine's
 * process; any number may run against one database.
 *
 * Exactly once, per claimed row, in one transaction holding the row lock (FOR UPDATE SKIP LOCKED,
 * so concurrent starters take different rows):
 *  1. resolve the template (latest version of a built-in or registered definition);
 *  2. StartWorkflow through the decider, appended with `no_stream` expected to the execution id
 *     derived from the trigger id; a stream that exists already (a starter crashed after the
 *     append, before its commit) counts as started, the decider answering a repeated start with nothing;
 *  3. mark the row `started` with the execution id, or `failed` with the reason when the
 *     template is unknown or the input fails its schema.
 * A transient error leaves the row pending for the next pass.
 */
export class TriggerStarter {
  private readonly log: Logger;
  private readonly definitions: DefinitionStore;
  private readonly open: OpenExecutionsBound;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = true;
  private readonly failureLog = logAtMostEvery(60_000);

  constructor(private readonly o: TriggerStarterOptions) {
    this.log = o.logger.child({ component: 'trigger-starter' });
    this.definitions = new DefinitionStore(o.pool);
    this.open = new OpenExecutionsBound(o.pool, o.maxOpenPerStarter);
  }

  /** Start polling; the first pass runs at once and takes any rows left over from before. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = (): void => {
      if (this.stopped) return;
      this.running = this.runPending()
        .catch((e: unknown) =>
          // A pass runs every 300 ms: a database down or out of disk would log three traces a second.
          this.failureLog((held) => this.log.error({ err: e, heldBack: held }, 'trigger pass failed; retrying')),
        )
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(loop, this.o.pollMs ?? 300);
        });
    };
    loop();
  }

  /** Stop polling and wait for a pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** Claim and handle batches until no pending row is left (or one is deferred). */
  async runPending(): Promise<TriggerPass> {
    const total = { started: 0, failed: 0, deferred: 0 };
    // While this process's memory is high, triggers stay pending (as the API's starts are refused).
    if (processMemoryBudget().isHigh()) return total;
    for (;;) {
      const r = await this.runBatch();
      total.started += r.started;
      total.failed += r.failed;
      total.deferred += r.deferred;
      if (r.claimed < (this.o.batch ?? 20) || r.deferred > 0 || this.stopped) return total;
    }
  }

  private runBatch(): Promise<TriggerPass & { claimed: number }> {
    return withTransaction(this.o.pool, async (c) => {
      const rows = await c.query<TriggerRow>(
        `SELECT id, template_id, input, correlation_id, on_behalf_of FROM ${TRIGGERS} WHERE status = 'pending' ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [this.o.batch ?? 20],
      );
      let started = 0;
      let failed = 0;
      let deferred = 0;
      for (const row of rows.rows) {
        const executionId = triggerExecutionId(row.id);
        const log = this.log.child({
          correlationId: row.correlation_id,
          triggerId: row.id,
          executionId,
          templateId: row.template_id,
        });
        try {
          const { definition } = await this.definitions.get(row.template_id);
          const onBehalfOf = row.on_behalf_of && ACTOR_PATTERN.test(row.on_behalf_of) ? row.on_behalf_of : undefined;
          await this.open.admit(onBehalfOf, { store: this.o.store, executionId });
          const r = await startExecution(this.o.store, {
            definition,
            input: row.input ?? {},
            correlationId: row.correlation_id,
            actor: AUTOMATION_TRIGGER_ACTOR,
            causationId: row.id,
            ...(onBehalfOf !== undefined ? { onBehalfOf } : {}),
            executionId,
          });
          await c.query(
            `UPDATE ${TRIGGERS} SET status = 'started', execution_id = $2, error = NULL, started_at = now() WHERE id = $1`,
            [row.id, executionId],
          );
          started++;
          log.info(
            { created: r.created },
            r.created ? 'workflow started from a trigger' : 'trigger had started its workflow already; marked started',
          );
        } catch (e) {
          if (!isFinal(e)) {
            deferred++;
            log.warn({ err: e }, 'trigger not started (transient); left pending');
            continue;
          }
          const message = (e as Error).message.slice(0, 2000);
          // The code too: the automation server pauses a schedule whose template is gone (not_found).
          await c.query(
            `UPDATE ${TRIGGERS} SET status = 'failed', execution_id = NULL, error = $2, error_code = $3 WHERE id = $1`,
            [row.id, message, isAppError(e) ? e.code : null],
          );
          failed++;
          log.warn({ err: message }, 'trigger failed: not started');
        }
      }
      return { claimed: rows.rowCount ?? 0, started, failed, deferred };
    });
  }
}

/** Build and start a trigger starter (the launcher's `workflows` role). Stop it with `stop()`. */
export function startTriggerStarter(o: TriggerStarterOptions): TriggerStarter {
  const s = new TriggerStarter(o);
  s.start();
  return s;
}
