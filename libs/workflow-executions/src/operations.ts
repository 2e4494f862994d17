/**
 * Operations on recorded executions (what the HTTP edge calls): time travel over an execution's
 * events, fork from a step, retry what failed, and the replay check of a definition version.
 * Each state change is a decider command (ForkWorkflow, RetryExecution); the engine drives the
 * resulting events like any others.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { AppError } from '@switchyard/platform';
import { toDomainEvent, type EventStore, type RecordedEvent } from '@switchyard/event-store';
import {
  checkReplay,
  isDomainError,
  planFork,
  stateAt,
  validateInput,
  workflowExecutionStream,
  type ReplayReport,
  type RevisionedEvent,
  type StartedExecution,
  type WorkflowDefinition,
  type WorkflowEvent,
  type WorkflowExecutionState,
} from '@switchyard/domain';
import { loadExecution, runWorkflowCommand, runWorkflowCommandOnNewStream } from './command.js';
import type { DefinitionStore } from './definitions.js';
import { rerunRefusal, type ToolCaller } from './tool-policy.js';
import { READ_SCHEMA } from '@switchyard/read-models';

const notFound = (executionId: string) =>
  new AppError('not_found', `workflow execution ${executionId} not found`, { executionId });

/**
 * Most characters of JSON (payloads and metadata) one page of an execution's events carries: past
 * it the page ends early (at least one event), and the caller's next page starts after it. Each
 * event may hold a step's input or output of up to a megabyte, so a page of 1,000 was 160 MB,
 * built in memory in one pass (a 12 s stall of the process that served it).
 */
export const EXECUTION_PAGE_MAX_CHARS = 4 * 1024 * 1024;
/** Events read per round trip: few at first, then up to twice the last batch, as the page's room at the sizes seen allows. */
const FIRST_PAGE_BATCH = 25;

/** About the characters of an event's JSON in a page (its payload and metadata; the fixed fields are small). */
const eventChars = (e: RecordedEvent): number =>
  200 + e.type.length + (JSON.stringify(e.data)?.length ?? 0) + (JSON.stringify(e.metadata)?.length ?? 0);

/**
 * One page of an execution's events after revision `after` (exclusive; -1 = from the start), and
 * the last revision: at most `limit` events and about EXECUTION_PAGE_MAX_CHARS characters.
 */
export async function executionHistoryPage(
  store: EventStore,
  executionId: string,
  page: { after: number; limit: number },
): Promise<{ events: RecordedEvent[]; lastRevision: number }> {
  const stream = workflowExecutionStream(executionId);
  const [last] = await store.readStream(stream, { direction: 'backwards', maxCount: 1 });
  if (!last) throw notFound(executionId);
  const events: RecordedEvent[] = [];
  let chars = 0;
  let next = page.after + 1;
  let batchSize = Math.min(page.limit, FIRST_PAGE_BATCH);
  while (events.length < page.limit && next <= last.revision && chars < EXECUTION_PAGE_MAX_CHARS) {
    const batch = await store.readStream(stream, { fromRevision: next, maxCount: batchSize });
    if (batch.length === 0) break;
    let batchChars = 0;
    for (const e of batch) {
      const size = eventChars(e);
      // Always one event, however large; then only what fits.
      if (events.length > 0 && chars + size > EXECUTION_PAGE_MAX_CHARS) {
        chars = EXECUTION_PAGE_MAX_CHARS;
        break;
      }
      events.push(e);
      chars += size;
      batchChars += size;
      next = e.revision + 1;
      if (events.length === page.limit) break;
    }
    if (batch.length < batchSize) break;
    const room = Math.ceil((EXECUTION_PAGE_MAX_CHARS - chars) / Math.max(1, batchChars / batch.length));
    batchSize = Math.max(1, Math.min(2 * batchSize, room, page.limit - events.length));
  }
  return { events, lastRevision: last.revision };
}

/**
 * The state after the event at `revision`, folded by the decider's evolve: 404 unknown execution,
 * 400 (`out_of_range`) past the last revision.
 */
export async function executionStateAt(
  store: EventStore,
  executionId: string,
  revision: number,
): Promise<{ state: StartedExecution; lastRevision: number; events: readonly WorkflowEvent[] }> {
  const stream = workflowExecutionStream(executionId);
  const [last] = await store.readStream(stream, { direction: 'backwards', maxCount: 1 });
  if (!last) throw notFound(executionId);
  const lastRevision = last.revision;
  if (revision > lastRevision) {
    throw new AppError('validation', `revision ${revision} is past the execution's last revision ${lastRevision}`, {
      lastRevision,
      errors: [{ path: 'at', message: `at most ${lastRevision}`, code: 'out_of_range', in: 'query' }],
    });
  }
  // Only the events up to `revision` are read and folded.
  const recorded = await store.readStream(stream, { maxCount: revision + 1 });
  const events = revisioned(recorded);
  const state = stateAt(events, revision);
  if (state.status === 'not_started') throw notFound(executionId);
  return { state, lastRevision, events: events.filter((e) => e.revision <= revision).map((e) => e.event) };
}

const revisioned = (recorded: readonly RecordedEvent[]): RevisionedEvent[] =>
  recorded.map((e) => ({ revision: e.revision, event: toDomainEvent<WorkflowEvent>(e) }));

/** An execution's state and every event of its stream (404 when it has none). */
export async function executionWithEvents(
  store: EventStore,
  executionId: string,
): Promise<{ state: StartedExecution; events: RevisionedEvent[] }> {
  const recorded = await store.readStream(workflowExecutionStream(executionId));
  const events = revisioned(recorded);
  const state = stateAt(events, Number.MAX_SAFE_INTEGER);
  if (state.status === 'not_started') throw notFound(executionId);
  return { state, events };
}

/**
 * Running an execution's recorded definition again (a retry, a fork without a version) is starting
 * it: checked against what the caller may start (rerunRefusal), on the state the operation folds
 * anyway, so a large execution is read once.
 */
async function assertMayRerun(
  definitions: Pick<DefinitionStore, 'get'>,
  definition: WorkflowDefinition,
  caller: ToolCaller,
): Promise<void> {
  const refused = await rerunRefusal(definitions, definition, caller);
  if (refused) throw new AppError('forbidden', refused.message, refused.details);
}

export interface ForkRequest {
  readonly fromStep: string;
  /** Registered version of the source's definition to run; absent = the source's own definition, as recorded. */
  readonly definitionVersion?: number;
  /** Input of the fork; absent = the source's input. */
  readonly input?: Record<string, unknown>;
  readonly correlationId: string;
  readonly actor: string;
  /** Client-chosen id (Idempotency-Key); a new UUID when absent. */
  readonly executionId?: string;
  /** Who forks, checked as if starting the source's recorded definition when no version is given (403). */
  readonly rerunAs?: ToolCaller;
}

/** Fork `sourceId` from a step: plan the copies (domain), then ForkWorkflow on a new stream. */
export async function forkExecution(
  store: EventStore,
  definitions: DefinitionStore,
  sourceId: string,
  req: ForkRequest,
): Promise<{
  executionId: string;
  definition: WorkflowDefinition;
  copied: string[];
  rerun: string[];
  created: boolean;
}> {
  const { state: source, events } = await executionWithEvents(store, sourceId);
  if (req.rerunAs && req.definitionVersion === undefined)
    await assertMayRerun(definitions, source.definition, req.rerunAs);
  const target =
    req.definitionVersion === undefined
      ? source.definition
      : (await definitions.get(source.definition.id, req.definitionVersion)).definition;
  // Planned on the input as the fork will run it (defaults filled in, as the decider does), so
  // the same input given again compares equal to the source's.
  const given = req.input ?? source.input;
  const checked = validateInput(target.input, given);
  const runInput = checked.ok ? checked.value : given;
  const plan = withAppErrors(() => planFork(source, events, req.fromStep, target, runInput));
  const executionId = req.executionId ?? randomUUID();
  const r = await runWorkflowCommandOnNewStream(store, executionId, {
    type: 'ForkWorkflow',
    data: {
      executionId,
      definition: target,
      input: req.input ?? source.input,
      fromExecutionId: sourceId,
      fromStep: req.fromStep,
      copies: plan.copies,
    },
    metadata: {
      timestamp: new Date().toISOString(),
      actor: req.actor,
      correlationId: req.correlationId,
      causationId: sourceId,
    },
  });
  return {
    executionId,
    definition: target,
    copied: plan.copies.map((c) => c.stepId),
    rerun: [...plan.rerun],
    created: r.events.length > 0,
  };
}

/**
 * RetryExecution in the same stream: 404 unknown, 409 unless failed. Returns the steps that run
 * again. With `rerunAs`, first checked as a start of the recorded definition by that caller (403),
 * on the one read of the stream the command is then decided on.
 */
export async function retryExecution(
  store: EventStore,
  executionId: string,
  req: {
    reason?: string;
    correlationId: string;
    actor: string;
    rerunAs?: { readonly caller: ToolCaller; readonly definitions: Pick<DefinitionStore, 'get'> };
    /** Retry only if it has been retried exactly this many times (else `illegal_state`): see RetryExecution. */
    ifRetries?: number;
  },
): Promise<{ status: WorkflowExecutionState['status']; steps: string[] }> {
  const command = {
    type: 'RetryExecution' as const,
    data: {
      ...(req.reason === undefined ? {} : { reason: req.reason }),
      ...(req.ifRetries === undefined ? {} : { ifRetries: req.ifRetries }),
    },
    metadata: { timestamp: new Date().toISOString(), actor: req.actor, correlationId: req.correlationId },
  };
  const known = req.rerunAs ? await loadExecution(store, executionId) : undefined;
  if (req.rerunAs && known && known.state.status !== 'not_started')
    await assertMayRerun(req.rerunAs.definitions, known.state.definition, req.rerunAs.caller);
  // Read after the request came: a refusal on it (404, 409) is as current as one on a read of its own.
  const r = await runWorkflowCommand(
    store,
    executionId,
    command,
    known ? { known, trust: { refusal: true, empty: true } } : {},
  );
  const retried = r.events.find((e) => e.type === 'ExecutionRetried');
  return { status: r.state.status, steps: retried?.type === 'ExecutionRetried' ? [...retried.data.steps] : [] };
}

/**
 * Replay the last `limit` finished executions of definition `id` (any version; newest end first,
 * from the read model) against version `version`: one report each (see checkReplay).
 */
export async function checkDefinitionVersion(
  store: EventStore,
  pool: pg.Pool,
  definitions: DefinitionStore,
  id: string,
  version: number,
  limit: number,
): Promise<{ definition_id: string; version: number; checked: number; differing: number; executions: ReplayReport[] }> {
  const target = (await definitions.get(id, version)).definition;
  const rows = await pool.query<{ execution_id: string }>(
    `select execution_id from ${READ_SCHEMA}.workflow_executions
     where definition_id = $1 and status in ('completed', 'failed', 'canceled')
     order by ended_at desc nulls last, execution_id desc limit $2`,
    [id, limit],
  );
  const executions: ReplayReport[] = [];
  for (const row of rows.rows) {
    const { state, events } = await executionWithEvents(store, row.execution_id);
    executions.push(
      checkReplay(
        state,
        target,
        events.map((e) => e.event),
      ),
    );
  }
  return {
    definition_id: id,
    version,
    checked: executions.length,
    differing: executions.filter((e) => !e.same).length,
    executions,
  };
}

/** Domain refusals keep their code on the way to HTTP (as runWorkflowCommand does for the decider's). */
function withAppErrors<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (isDomainError(err)) throw new AppError(err.code, err.message, err.details, false);
    throw err;
  }
}
