/**
 * Bulk operations on executions as batch jobs (aggregate Batch, stream `workflow_batch-<id>`):
 * the commands the gateway runs (start, cancel, view) and the worker that works the items.
 *
 * The worker runs in the engine process (the `workflows` role). It follows every batch stream
 * from a catch-up subscription to $all (so after a restart it finds the batches still running),
 * and works one batch at a time under a PostgreSQL session advisory lock per batch: two
 * processes never work one batch at once, and a dead process's lock goes with its session. Items
 * go one after another at `WORKFLOW_BATCH_ITEMS_PER_SEC` at most (live work is not starved), each
 * through `runExecutionAction` (idempotent per execution) and then recorded through the decider,
 * which settles each item once.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { z } from 'zod';
import { AppError, parseConfig, type Logger } from '@switchyard/platform';
import {
  aggregateStream,
  handleCommand,
  type AllSubscription,
  type CommandResult,
  type EventStore,
} from '@switchyard/event-store';
import {
  batchDecider,
  builtInTemplates,
  isDomainError,
  nextBatchItem,
  workflowBatchStream,
  type BatchAction,
  type BatchCommand,
  type BatchEvent,
  type BatchFilter,
  type BatchState,
} from '@switchyard/domain';
import { ExecutionActionError, runExecutionAction } from './actions.js';
import { DefinitionStore } from './definitions.js';
import { READ_SCHEMA } from '@switchyard/read-models';

export const BATCH_STREAM_PREFIX = workflowBatchStream('');
const ACTOR = 'system:batch-worker';

/** The batch settings' environment variables. */
export const batchEnvSchema = z.object({
  /** Items a worker works per second, at most (a modest default: bulk work must not starve live work). */
  WORKFLOW_BATCH_ITEMS_PER_SEC: z.coerce.number().positive().max(10_000).default(10),
  /** Most executions one batch may match (a filter matching more is refused: narrow it). */
  WORKFLOW_BATCH_MAX_ITEMS: z.coerce.number().int().min(1).max(100_000).default(5_000),
});
export type BatchConfig = z.output<typeof batchEnvSchema>;
export const batchConfigFromEnv = (env: Record<string, string | undefined> = process.env): BatchConfig =>
  parseConfig(env, batchEnvSchema);

/** Run one batch command: read, decide, append with the expected revision. Domain errors keep their code. */
export async function runBatchCommand(
  store: EventStore,
  batchId: string,
  command: BatchCommand,
): Promise<{ events: readonly BatchEvent[]; state: BatchState }> {
  try {
    return await handleCommand(store, workflowBatchStream(batchId), batchDecider, command);
  } catch (err) {
    if (isDomainError(err)) throw new AppError(err.code, err.message, err.details, false);
    throw err;
  }
}

export function loadBatch(store: EventStore, batchId: string): Promise<{ state: BatchState; revision: number }> {
  return aggregateStream(store, workflowBatchStream(batchId), batchDecider);
}

/**
 * The executions a filter matches now, oldest first, from the executions read model (what the
 * list endpoint shows). More than `max`: 400 (narrow the filter). `errorHidden` names the
 * executions whose error the caller may not read whole (they call an admin-only tool): none of
 * them matches `error_contains`, so its answers (and the over-`max` refusal) cannot tell their
 * text one probe at a time.
 */
export async function matchExecutions(
  pool: pg.Pool,
  filter: BatchFilter,
  max: number,
  errorHidden?: (executionId: string) => Promise<boolean>,
): Promise<string[]> {
  if (filter.template_id !== undefined && !builtInTemplates.some((t) => t.id === filter.template_id)) {
    throw new AppError(
      'not_found',
      `unknown template "${filter.template_id}" (known: ${builtInTemplates.map((t) => t.id).join(', ')})`,
    );
  }
  if (
    filter.template_id !== undefined &&
    filter.definition_id !== undefined &&
    filter.template_id !== filter.definition_id
  ) {
    throw new AppError('validation', 'template_id and definition_id name different definitions; give one');
  }
  const hidden = filter.error_contains !== undefined ? errorHidden : undefined;
  const matched: string[] = [];
  // Keyset pages of max + 1: without hidden executions the first page decides; with them, pages
  // until max + 1 visible ones or the end.
  let after: { startedAt: string; id: string } | undefined;
  for (;;) {
    const r = await pool.query<{ execution_id: string; started_at: string }>(
      `select execution_id, started_at::text from ${READ_SCHEMA}.workflow_executions
        where ($1::text is null or definition_id = $1) and ($2::text is null or status = $2)
          and ($3::timestamptz is null or started_at >= $3) and ($4::timestamptz is null or started_at < $4)
          and ($5::text is null or strpos(lower(coalesce(error::text, '')), lower($5)) > 0)
          and ($7::timestamptz is null or (started_at, execution_id) > ($7::timestamptz, $8::text))
        order by started_at, execution_id limit $6`,
      [
        filter.template_id ?? filter.definition_id ?? null,
        filter.status ?? null,
        filter.started_after ?? null,
        filter.started_before ?? null,
        filter.error_contains ?? null,
        max + 1,
        after?.startedAt ?? null,
        after?.id ?? null,
      ],
    );
    for (const row of r.rows) if (!hidden || !(await hidden(row.execution_id))) matched.push(row.execution_id);
    const last = r.rows[r.rows.length - 1];
    if (!hidden || matched.length > max || r.rows.length <= max || !last) break;
    after = { startedAt: last.started_at, id: last.execution_id };
  }
  if (matched.length > max) {
    throw new AppError(
      'validation',
      `the filter matches more than ${max} executions (WORKFLOW_BATCH_MAX_ITEMS); narrow it`,
      { max },
    );
  }
  return matched.slice(0, max + 1);
}

/** Match, then record the batch (BatchStarted with the matched set). A repeated batch id records nothing new. */
export async function startBatch(
  store: EventStore,
  pool: pg.Pool,
  req: {
    filter: BatchFilter;
    action: BatchAction;
    batchId?: string;
    correlationId: string;
    actor?: string;
    maxItems?: number;
    /** Executions whose error the caller may not search (see matchExecutions). */
    errorHidden?: (executionId: string) => Promise<boolean>;
  },
): Promise<{ batchId: string; state: BatchState; created: boolean }> {
  const batchId = req.batchId ?? randomUUID();
  const existing = await loadBatch(store, batchId);
  if (existing.state.status !== 'not_started') return { batchId, state: existing.state, created: false };
  const items = await matchExecutions(
    pool,
    req.filter,
    req.maxItems ?? batchConfigFromEnv().WORKFLOW_BATCH_MAX_ITEMS,
    req.errorHidden,
  );
  const r = await runBatchCommand(store, batchId, {
    type: 'StartBatch',
    data: { batchId, filter: req.filter, action: req.action, items },
    metadata: { timestamp: new Date().toISOString(), actor: req.actor ?? 'api', correlationId: req.correlationId },
  });
  return { batchId, state: r.state, created: r.events.length > 0 };
}

/** CancelBatch: 404 unknown, 409 completed; the worker stops before its next item. */
export async function cancelBatch(
  store: EventStore,
  batchId: string,
  req: { reason: string; correlationId: string; actor?: string },
): Promise<BatchState> {
  const r = await runBatchCommand(store, batchId, {
    type: 'CancelBatch',
    data: { reason: req.reason },
    metadata: { timestamp: new Date().toISOString(), actor: req.actor ?? 'api', correlationId: req.correlationId },
  });
  return r.state;
}

/** The progress view of a batch (GET /api/v1/workflows/batches/{id}); 404 when there is none. */
export async function batchView(store: EventStore, batchId: string) {
  const { state } = await loadBatch(store, batchId);
  if (state.status === 'not_started') throw new AppError('not_found', `batch ${batchId} not found`, { batchId });
  return batchViewOf(state);
}

export function batchViewOf(state: Exclude<BatchState, { status: 'not_started' }>) {
  const a = state.action;
  return {
    batch_id: state.batchId,
    state: state.status,
    action: a.kind === 'fork' ? { fork: { definition_version: a.definitionVersion, from_step: a.fromStep } } : a.kind,
    filter: state.filter,
    matched: state.items.length,
    done: state.done,
    failed: state.failed,
    pending: state.items.length - state.done - state.failed,
    started_at: state.startedAt,
    ended_at: state.status === 'running' ? null : state.endedAt,
    reason: state.status === 'cancelled' ? state.reason : null,
    // The first failures (each with its execution and why); `failed` counts them all.
    failures: state.failures
      .slice(0, 100)
      .map((f) => ({ execution_id: f.executionId, code: f.error.code, message: f.error.message })),
  };
}

export interface BatchWorkerOptions {
  readonly store: EventStore;
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** Default WORKFLOW_BATCH_ITEMS_PER_SEC. */
  readonly itemsPerSec?: number;
  /** How often batches not worked here are tried again (lock taken elsewhere; default 1000 ms). */
  readonly pollMs?: number;
  /** Recorded on each item this worker does (the engine's member id). */
  readonly workerId?: string;
}

/** Works running batches, one at a time per process, each under its advisory lock. */
export class BatchWorker {
  private readonly log: Logger;
  private readonly running = new Set<string>();
  private readonly itemsPerSec: number;
  private sub: AllSubscription | undefined;
  private loop: Promise<void> | undefined;
  private poller: NodeJS.Timeout | undefined;
  private working: Promise<void> | undefined;
  private stopped = false;
  private counts = { items: 0, batches: 0 };
  private readonly worker: { worker?: string };
  private readonly definitions: DefinitionStore;

  constructor(private readonly o: BatchWorkerOptions) {
    this.definitions = new DefinitionStore(o.pool);
    this.log = o.logger.child({ component: 'batch-worker' });
    this.itemsPerSec = o.itemsPerSec ?? batchConfigFromEnv().WORKFLOW_BATCH_ITEMS_PER_SEC;
    this.worker = o.workerId !== undefined ? { worker: o.workerId } : {};
  }

  start(): void {
    this.loop = this.follow();
    this.poller = setInterval(() => this.kick(), this.o.pollMs ?? 1_000);
    this.log.info({ itemsPerSec: this.itemsPerSec }, 'batch worker started');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.poller) clearInterval(this.poller);
    await this.sub?.close().catch(() => undefined);
    await this.loop?.catch(() => undefined);
    await this.working?.catch(() => undefined);
    this.log.info(this.counts, 'batch worker stopped');
  }

  /** Which batches are running: every batch stream from the start (catch-up), then live. */
  private async follow(): Promise<void> {
    while (!this.stopped) {
      const sub = this.o.store.subscribeToAll({
        from: -1,
        streamPrefixes: [BATCH_STREAM_PREFIX],
        types: ['BatchStarted', 'BatchCompleted', 'BatchCancelled'],
      });
      this.sub = sub;
      try {
        for await (const e of sub) {
          if (this.stopped) break;
          const id = e.streamId.slice(BATCH_STREAM_PREFIX.length);
          if (e.type === 'BatchStarted') this.running.add(id);
          else this.running.delete(id);
          this.kick();
        }
      } catch (err) {
        if (!this.stopped) this.log.warn({ err }, 'batch subscription failed; resubscribing');
        await new Promise((r) => setTimeout(r, 500));
      } finally {
        await sub.close().catch(() => undefined);
      }
    }
  }

  /** Start working the next running batch, unless one is being worked here. */
  private kick(): void {
    if (this.stopped || this.working || this.running.size === 0) return;
    this.working = this.workAny().finally(() => {
      this.working = undefined;
    });
  }

  private async workAny(): Promise<void> {
    for (const id of [...this.running]) {
      if (this.stopped) return;
      try {
        await this.workUnderLock(id);
      } catch (err) {
        this.log.warn({ err, batchId: id }, 'working a batch failed; tried again later');
      }
    }
  }

  /** 1. take the batch's lock (or leave it to its holder); 2. work its items; 3. let go. */
  private async workUnderLock(batchId: string): Promise<void> {
    const client = await this.o.pool.connect();
    const lockKey = `workflow-batch:${batchId}`;
    let locked = false;
    try {
      const r = await client.query<{ ok: boolean }>(`select pg_try_advisory_lock(hashtextextended($1, 0)) as ok`, [
        lockKey,
      ]);
      locked = r.rows[0]?.ok === true;
      if (!locked) return;
      this.counts.batches++;
      // The lock lives as long as this session: a dead connection must stop the work at the next item.
      await this.work(batchId, () => client.query('select 1').then(() => undefined));
    } finally {
      if (locked)
        await client.query(`select pg_advisory_unlock(hashtextextended($1, 0))`, [lockKey]).catch(() => undefined);
      client.release();
    }
  }

  private async work(batchId: string, stillLeased: () => Promise<void>): Promise<void> {
    let { state, revision } = await loadBatch(this.o.store, batchId);
    if (state.status !== 'running') {
      this.running.delete(batchId);
      return;
    }
    const correlationId = `batch:${batchId}`;
    // Where the batch started in the log: a retry item counts the retries made before it (see runExecutionAction).
    const startedAtPosition = (await this.o.store.readStream(workflowBatchStream(batchId), { maxCount: 1 }))[0]
      ?.position;
    const gapMs = 1000 / this.itemsPerSec;
    let next = Date.now();
    this.log.info(
      { batchId, pending: state.items.length - state.done - state.failed, correlationId },
      'working a batch',
    );
    for (let id = nextBatchItem(state); id !== undefined && !this.stopped; id = nextBatchItem(state)) {
      // Pace: at most itemsPerSec items, whatever each costs.
      const wait = next - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      next = Math.max(next + gapMs, Date.now());
      if (this.stopped) break;
      await stillLeased();
      // A cancel may have come in since: never work an item after it.
      ({ state, revision } = await aggregateStream(this.o.store, workflowBatchStream(batchId), batchDecider, {
        state,
        revision,
      }));
      const s = state;
      if (s.status !== 'running' || s.itemStatus[id] !== 'pending') continue;
      let command: BatchCommand;
      const meta = { timestamp: '', actor: ACTOR, correlationId };
      try {
        const outcome = await runExecutionAction(this.o.store, id, s.action, {
          batchId,
          correlationId,
          actor: s.actor ?? ACTOR,
          definitions: this.definitions,
          ...(startedAtPosition === undefined ? {} : { startedAtPosition }),
        });
        command = {
          type: 'RecordBatchItemDone',
          data: { executionId: id, outcome, ...this.worker },
          metadata: { ...meta, timestamp: new Date().toISOString() },
        };
      } catch (err) {
        if (!(err instanceof ExecutionActionError)) throw err; // infrastructure: the item is worked again later
        command = {
          type: 'RecordBatchItemFailed',
          data: { executionId: id, error: { code: err.code, message: err.message }, ...this.worker },
          metadata: { ...meta, timestamp: new Date().toISOString() },
        };
      }
      // Decide against what this worker holds; a conflict (a cancel came in) reloads and decides
      // again, as often as it takes. What the held state decides (nothing, or a refusal) stands.
      const r: CommandResult<BatchEvent, BatchState> = await handleCommand(
        this.o.store,
        workflowBatchStream(batchId),
        batchDecider,
        command,
        {
          known: { state, revision },
          trust: { refusal: true, empty: true },
          maxAttempts: Number.POSITIVE_INFINITY,
        },
      );
      ({ state, revision } = r);
      if (r.events.length > 0) this.counts.items++;
    }
    if (state.status !== 'running') {
      this.running.delete(batchId);
      this.log.info(
        {
          batchId,
          state: state.status,
          done: 'done' in state ? state.done : 0,
          failed: 'failed' in state ? state.failed : 0,
          correlationId,
        },
        'batch ended',
      );
    }
  }
}
