import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Pool } from 'pg';
import { isSchemaManaged, type Logger } from '@switchyard/platform';
import type { EventStore } from '@switchyard/event-store';
import {
  applyWorkflowLimits,
  buildCatalog,
  DefinitionStore,
  ensureWorkflowSchema,
  executionResult,
  executionHistoryPage,
  executionStateAt,
  executionWithEvents,
  executionStoredPayloadBytes,
  getExecutionView,
  setupWorkflowReadModel,
  definitionOrThrow,
  type StoredDefinition,
} from './deps.js';
import { workflowExecutionStream, type WorkflowDefinition } from '@switchyard/domain';
import { EVENT_STORE, LOGGER, NATS_CONNECTION, PG_POOL } from '../../tokens.js';
// Not the commands/ barrel: its handlers import this service (a cycle that breaks ESM load order).
import { StartWorkflowExecution } from './commands/start-workflow-execution.js';
import { detailFromReadModel, detailFromState, type ExecutionDetail } from './execution-detail.js';
import { WaitForExecution } from './queries/wait-for-execution.js';
import { executionIdForKey } from '../../idempotency/keys.js';
import { ReadRouting, type CheckpointRef } from '../../http/read-routing.js';
import { ExecutionFolds, WHOLE_READ_BYTES } from './execution-folds.js';
import { PayloadReads } from '../../http/payload-reads.js';
import { waitLeft } from '../../http/wait.js';
import { DefinitionChecks } from './definition-checks.js';

/** The workflow executions read model's checkpoint (ProjectionRunner's default schema). */
export const EXECUTIONS_CHECKPOINT: CheckpointRef = { schema: 'read_models', name: 'workflow_executions' };

export const WORKFLOWS_BASE = '/api/v1/workflows';
/** How long a detail read waits for the read model to reach the execution's last event before folding the stream. */
const READ_YOUR_WRITES_WAIT_MS = 250;

const links = (id: string) => ({
  self: `${WORKFLOWS_BASE}/executions/${encodeURIComponent(id)}`,
  events: `${WORKFLOWS_BASE}/executions/${encodeURIComponent(id)}/events`,
  cancel: `${WORKFLOWS_BASE}/executions/${encodeURIComponent(id)}/cancel`,
});

/** What the workflow routes share: the definition store, the catalog, start-and-maybe-wait. */
@Injectable()
export class WorkflowsService implements OnModuleInit, OnModuleDestroy {
  readonly definitions: DefinitionStore;
  private readonly log: Logger;
  /** The last full list of latest definitions read, and the stamp it was read at (see latestDefinitions). */
  private latestRead?: { stamp: string; rows: Promise<StoredDefinition[]> };

  constructor(
    @Inject(EVENT_STORE) readonly store: EventStore,
    @Inject(PG_POOL) readonly pool: Pool,
    @Inject(NATS_CONNECTION) private readonly nats: NatsConnection,
    @Inject(LOGGER) logger: Logger,
    private readonly commands: CommandBus,
    readonly reads: ReadRouting,
    private readonly queries: QueryBus,
    private readonly folds: ExecutionFolds,
    @Inject(PayloadReads) private readonly payloadReads: PayloadReads,
    @Inject(DefinitionChecks) private readonly checks: DefinitionChecks,
  ) {
    // Definition size/steps/for_each/expression limits of this process (WORKFLOW_MAX_*, see limits.ts of @switchyard/workflow-executions).
    applyWorkflowLimits();
    this.log = logger.child({ component: 'workflows-feature' });
    this.definitions = new DefinitionStore(pool, { store, logger: this.log });
  }

  /** Tables and seeds exist before the first request, whether or not an engine ran yet (idempotent). */
  async onModuleInit(): Promise<void> {
    await ensureWorkflowSchema(this.pool);
    // The definitions read model runs in the gateway too, so what it registers is readable with no engine running.
    await this.definitions.start();
    // The gateway's own role may not run DDL: the owner migrated the read model before it started.
    if (!isSchemaManaged(this.pool)) await setupWorkflowReadModel(this.pool);
  }

  async onModuleDestroy(): Promise<void> {
    await this.definitions.stop();
  }

  /** Validate a definition against the live catalog (MCP registry, task types, stored ids): 400 with every problem. */
  async validate(input: unknown): Promise<WorkflowDefinition> {
    return definitionOrThrow(await this.checks.check(input, await this.catalog(input), 'run'));
  }

  /** MCP servers/tools from the connectors' registry (lenient for `input`'s MCP steps when it does not answer), task types, definition ids. */
  catalog(input: unknown) {
    return buildCatalog({ nats: this.nats, definitions: this.definitions, logger: this.log }, { lenientFor: input });
  }

  /** Start and (with `wait`) wait for the end: 200 with the result when it ended in time, else 202. */
  async start(
    definition: WorkflowDefinition,
    input: unknown,
    correlationId: string,
    wait: { wait?: boolean; waitMs: number; idempotencyKey?: string | undefined },
  ) {
    const since = performance.now();
    const id = wait.idempotencyKey !== undefined ? executionIdForKey(wait.idempotencyKey) : undefined;
    const { executionId, position } = await this.commands.execute(
      new StartWorkflowExecution(definition, input, correlationId, undefined, id),
    );
    const base = {
      execution_id: executionId,
      definition_id: definition.id,
      definition_version: definition.version,
      links: links(executionId),
      ...(position !== undefined ? { position } : {}),
    };
    if (!wait.wait) return { status: 202, body: { ...base, status: 'running' } };
    // The start took some of the wait already.
    const state = await this.queries.execute(new WaitForExecution(executionId, waitLeft(wait.waitMs, since)));
    const result = executionResult(executionId, state);
    const ended = state.status === 'completed' || state.status === 'failed' || state.status === 'canceled';
    return { status: ended ? 200 : 202, body: { ...base, ...result } };
  }

  /**
   * `read` at once for a small execution; through `whole` (PayloadReads) for one whose payloads
   * take more than WHOLE_READ_BYTES as stored (compressed) in the read model or whose events are
   * large (ExecutionFolds.eventsLarge: before compression), so many small reads never queue. A
   * fold (`from: 'stream'`) is sized by its events alone (ExecutionFolds.isLarge): a read model
   * behind the stream understated a fold's size: every read of a 98 MB
   * execution in the seconds its read model took to apply it folded the stream without a turn.
   * Where the event store cannot tell a stream's size (EventStoreDB), the read model's is used.
   */
  async readSized<T>(
    pool: Pool,
    executionId: string,
    whole: DetailReads['whole'],
    read: () => Promise<T>,
    from: 'read_model' | 'stream' = 'read_model',
  ): Promise<T> {
    if (from === 'stream') return (await this.folds.isLarge(executionId)) ? whole(read) : read();
    // The read model's sizes are compressed: payloads that compress very well (rows of one shape)
    // pass as small there, and their events' JSON says otherwise. Nothing there (not applied yet):
    // no turn, as the fold that then answers takes its own by the stream's size.
    const stored = await executionStoredPayloadBytes(pool, executionId);
    const large = stored > WHOLE_READ_BYTES || (stored > 0 && (await this.folds.eventsLarge(executionId)) === true);
    return large ? whole(read) : read();
  }

  /**
   * Every definition's latest version (the MCP catalog and the A2A card list them every few
   * seconds while clients are connected): read again only when the definitions' stamp changed,
   * else the copy read last. 200 definitions near their size bound are 100 MB, which a catalog
   * refresh every 3 s for one idle MCP session read whole, holding the gateway 2.5-4 s each time.
   */
  async latestDefinitions(): Promise<StoredDefinition[]> {
    const stamp = await this.definitions.stamp();
    if (this.latestRead?.stamp !== stamp) {
      const rows = this.definitions.list();
      this.latestRead = { stamp, rows };
      // Only this read's failure drops it (not a newer read's).
      rows.catch(() => {
        if (this.latestRead?.rows === rows) this.latestRead = undefined;
      });
    }
    return this.latestRead.rows;
  }

  /**
   * A page of an execution's events (executionHistoryPage). One of a large execution takes its
   * turn (PayloadReads, held until its answer went out), whoever asks: it may hold one of its
   * largest events whole (a for-each step's 33 MB output), which a viewer's page parses before
   * redacting it (one such page held the gateway 0.9 s, eight 4.2 s, before). `hold: 'read'`
   * gives the turn back once the page is read, for an answer that is not one HTTP response of its
   * own (an MCP request may carry several, each waiting for a turn the first would hold).
   */
  historyPage(executionId: string, page: { after: number; limit: number }, hold: 'answer' | 'read' = 'answer') {
    return this.readSized(
      this.pool,
      executionId,
      (read) => (hold === 'answer' ? this.payloadReads.run(read) : this.payloadReads.whileRunning(read)),
      () => executionHistoryPage(this.store, executionId, page),
      'stream',
    );
  }

  /**
   * The read model's view once it has applied the stream's last event (waiting up to
   * READ_YOUR_WRITES_WAIT_MS for it); a read model that lags further behind would show a new
   * execution as missing or an ended one as running, so then the view is folded from the stream.
   * With a read replica: the view comes from the replica once its read model has applied the
   * stream's last event and `minPosition` (bounded wait, see ReadRouting), else from the primary as above.
   */
  async detail(
    executionId: string,
    minPosition?: number,
    readFrom?: (source: 'replica' | 'primary') => void,
    reads: DetailReads = WHOLE_PAYLOADS_UNGATED,
  ): Promise<ExecutionDetail> {
    const view = (pool: Pool) =>
      reads.payloads
        ? this.readSized(pool, executionId, reads.whole, () =>
            getExecutionView(pool, executionId, { payloads: reads.payloads }),
          )
        : getExecutionView(pool, executionId, { payloads: false });
    const [last] = await this.store.readStream(workflowExecutionStream(executionId), {
      direction: 'backwards',
      maxCount: 1,
    });
    // A position past the log's head waits for nothing: the stream's last event is what must be seen.
    if (minPosition !== undefined && !(await this.reads.issued(minPosition))) minPosition = undefined;
    if (last && this.reads.replica) {
      const must = Math.max(last.position, minPosition ?? -1);
      const replica = await this.reads.replicaFor(EXECUTIONS_CHECKPOINT, must);
      if (replica) {
        const v = await view(replica).catch(() => undefined);
        if (v) {
          readFrom?.('replica');
          return detailFromReadModel(v, links(executionId));
        }
      }
    }
    // The read model's checkpoint and its rows move in one transaction: once the checkpoint is at
    // the stream's last event, the execution's row has it (one shared reader of the checkpoint
    // for every request waiting, not a read per request every few milliseconds).
    if (
      last &&
      (await this.reads.primaryCheckpoints.reaches(EXECUTIONS_CHECKPOINT, last.position, READ_YOUR_WRITES_WAIT_MS))
    ) {
      const v = await view(this.pool);
      if (v) {
        readFrom?.('primary');
        return detailFromReadModel(v, links(executionId));
      }
    }
    readFrom?.('primary');
    // The stream folded: every payload is read, whoever asks.
    const { state, events } = await this.readSized(
      this.pool,
      executionId,
      reads.whole,
      () => executionWithEvents(this.store, executionId),
      'stream',
    );
    return detailFromState(
      executionId,
      state,
      links(executionId),
      events.map((e) => e.event),
    );
  }
}

/**
 * How a detail is read: with the payloads (an operator's), the read model's as their JSON text
 * (`text`: JsonText, for an answer that writes them as they are), or without (a viewer's, redacted
 * anyway); and through which gate a read of whole payloads goes (PayloadReads).
 */
export interface DetailReads {
  readonly payloads: boolean | 'text';
  readonly whole: <T>(read: () => Promise<T>) => Promise<T>;
}

const WHOLE_PAYLOADS_UNGATED: DetailReads = { payloads: true, whole: (read) => read() };

/** The state after revision `at`, in the detail's shape (time travel): 404 unknown, 400 past the last revision. */
export async function detailAt(store: EventStore, executionId: string, at: number): Promise<ExecutionDetail> {
  const { state, lastRevision, events } = await executionStateAt(store, executionId, at);
  return {
    ...detailFromState(executionId, state, links(executionId), events),
    at_revision: at,
    last_revision: lastRevision,
  };
}

export { links as executionLinks };
