import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import pg from 'pg';
import {
  createLogger,
  createPgPool,
  freePort,
  newId,
  startNatsServer,
  type NatsServerHandle,
} from '@switchyard/platform';
import { PostgresEventStore, type RecordedEvent } from '@switchyard/event-store';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { freshDatabase } from '@switchyard/testing';
import type { WorkflowDefinitionInput } from '@switchyard/domain';
import { parseServerConfig, resolvePackageBin, startConnectors, type RunningConnectors } from '@switchyard/connectors';
import { startAgents, type AgentsHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from '@switchyard/dispatcher';
import { startExecution, waitForExecution } from '@switchyard/workflow-executions';
import { startWorkflowEngine, type WorkflowEngine } from './engine.js';
import { TEST_ENGINE_TIMINGS } from './test-responders.js';

const logger = createLogger('workflow-queue-wait-int', process.env.LOG_LEVEL ?? 'silent');

/** One call of the slow tool, and each step's timeout: longer than one call, shorter than the queue of ten. */
const CALL_S = 0.8;
const STEP_TIMEOUT_MS = 4_000;
const STEPS = 10;

/**
 * A step's timeout measures its call's own work, not its wait for a slot: a real MCP server
 * (server-everything over stdio) behind a connector that runs one call at a time, ten executions
 * whose one step calls its slow tool. The last calls wait about 7 s in the queue, longer than the
 * steps' 4 s timeout; the connector says when each waits and when it starts, and the engine's
 * deadline follows. Its own nats-server: the connectors use the production subjects.
 */
describe('workflow steps queued on a full MCP server or behind a busy agent', () => {
  let tmp: string;
  let natsServer: NatsServerHandle;
  let nc: NatsConnection;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let connectors: RunningConnectors;
  let agents: AgentsHandle;
  let dispatcher: DispatcherHandle;
  let engine: WorkflowEngine;

  before(async () => {
    tmp = mkdtempSync(path.resolve('.tmp', 'wf-queue-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: path.join(tmp, 'nats') });
    nc = await connectNats({ url: natsServer.url, name: 'wf-queue', logger });
    const url = await freshDatabase('wf_queue_wait');
    pool = createPgPool({ connectionString: url, max: 12 }, { name: 'wf-queue-wait', logger });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    connectors = await startConnectors({
      nats: nc,
      logger,
      registry: [
        parseServerConfig({
          name: 'everything',
          role: 'other',
          transport: {
            kind: 'stdio',
            command: process.execPath,
            args: [resolvePackageBin('@modelcontextprotocol/server-everything'), 'stdio'],
          },
          timeouts: { connect_ms: 20_000, call_ms: 20_000 },
          bulkhead: { max_concurrent: 1, max_queue: 64 },
        }),
      ],
    });
    // One agent that runs two tasks at a time (operations_manager), serving the test-only `noop` task.
    agents = await startAgents({ nats: nc, pool, logger, noop: true, http: false, agents: ['operations_manager'] });
    dispatcher = await startDispatcher({ store, nats: nc, pool, logger });
    engine = await startWorkflowEngine({
      store,
      pool,
      nats: nc,
      logger,
      databaseUrl: url,
      ...TEST_ENGINE_TIMINGS,
    });
  });

  after(async () => {
    await engine?.stop();
    await dispatcher?.stop();
    await agents?.stop();
    await connectors?.stop();
    if (nc) await closeNats(nc, { logger });
    await store?.close();
    await pool?.end();
    await natsServer?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it(
    `${STEPS} steps with a ${STEP_TIMEOUT_MS} ms timeout, one call at a time of ${CALL_S} s each: all succeed`,
    { timeout: 120_000 },
    async () => {
      const definition: WorkflowDefinitionInput = {
        id: 'slow_call',
        version: 1,
        name: 'one slow call',
        steps: [
          {
            id: 'slow',
            uses: 'mcp:everything/trigger-long-running-operation',
            with: { duration: CALL_S, steps: 1 },
            timeout_ms: STEP_TIMEOUT_MS,
          },
        ],
        outputs: { done: '${{ steps.slow.output }}' },
      };
      const ids = await Promise.all(
        Array.from(
          { length: STEPS },
          async () => (await startExecution(store, { definition, input: {}, correlationId: newId() })).executionId,
        ),
      );
      const states = await Promise.all(ids.map((id) => waitForExecution(store, id, 100_000)));
      const events = (await store.readAll({ streamPrefixes: ['workflow_execution-'] })).filter((e) =>
        ids.some((id) => e.streamId.endsWith(id)),
      );
      const of = (type: string) => events.filter((e) => e.type === type);
      const failures = states.flatMap((s, i) =>
        s.status === 'completed' ? [] : [`${ids[i]}: ${s.status}${s.status === 'failed' ? ` (${s.reason})` : ''}`],
      );
      assert.deepEqual(failures, [], 'every execution completes');
      assert.equal(of('StepTimedOut').length, 0, 'no attempt timed out');
      assert.equal(of('StepFailed').length, 0, 'no attempt failed (not even a refused call)');
      assert.equal(of('StepSucceeded').length, STEPS);

      // The queue was real: calls waited, and the longest wait was longer than the step timeout,
      // which, counted from the dispatch, would have timed those steps out.
      const queued = of('StepQueued');
      const started = of('StepStarted');
      assert.ok(queued.length >= STEPS - 2, `most calls waited for the slot (${queued.length} StepQueued)`);
      assert.equal(started.length, queued.length, 'each call that waited said when it started');
      const dispatchedAt = new Map(
        of('StepDispatched').map((e) => [e.streamId, Date.parse((e.data as { dispatchedAt: string }).dispatchedAt)]),
      );
      const waits = started.map(
        (e: RecordedEvent) => Date.parse((e.data as { startedAt: string }).startedAt) - dispatchedAt.get(e.streamId)!,
      );
      assert.ok(
        Math.max(...waits) > STEP_TIMEOUT_MS,
        `the longest wait (${Math.max(...waits)} ms) exceeds the step timeout`,
      );
      // Each started call's deadline is its start plus the step timeout.
      for (const e of started) {
        const d = e.data as { startedAt: string; timeoutAt: string };
        assert.equal(Date.parse(d.timeoutAt) - Date.parse(d.startedAt), STEP_TIMEOUT_MS);
      }
    },
  );

  it(
    'agent steps: 8 tasks of 1 s on an agent that runs 2 at a time, each step with a 2.5 s timeout: all succeed',
    { timeout: 120_000 },
    async () => {
      const definition: WorkflowDefinitionInput = {
        id: 'slow_task',
        version: 1,
        name: 'one slow agent task',
        steps: [{ id: 'task', uses: 'agent:noop', with: { sleep_ms: 1_000 }, timeout_ms: 2_500 }],
        outputs: { done: '${{ steps.task.output }}' },
      };
      const ids = await Promise.all(
        Array.from(
          { length: 8 },
          async () => (await startExecution(store, { definition, input: {}, correlationId: newId() })).executionId,
        ),
      );
      const states = await Promise.all(ids.map((id) => waitForExecution(store, id, 100_000)));
      const events = (await store.readAll({ streamPrefixes: ['workflow_execution-'] })).filter((e) =>
        ids.some((id) => e.streamId.endsWith(id)),
      );
      const of = (type: string) => events.filter((e) => e.type === type);
      const failures = states.flatMap((st, i) =>
        st.status === 'completed' ? [] : [`${ids[i]}: ${st.status}${st.status === 'failed' ? ` (${st.reason})` : ''}`],
      );
      assert.deepEqual(failures, [], 'every execution completes');
      assert.equal(of('StepTimedOut').length, 0, 'no attempt timed out');
      assert.equal(of('StepFailed').length, 0, 'no attempt failed');
      // Tasks waited for the agent longer than the step timeout: the dispatcher said when each was assigned.
      const dispatchedAt = new Map(
        of('StepDispatched').map((e) => [e.streamId, Date.parse((e.data as { dispatchedAt: string }).dispatchedAt)]),
      );
      const waits = of('StepStarted').map(
        (e) => Date.parse((e.data as { startedAt: string }).startedAt) - dispatchedAt.get(e.streamId)!,
      );
      assert.ok(of('StepQueued').length >= 4, `tasks waited for the agent (${of('StepQueued').length} StepQueued)`);
      // A task placed at once is told `started` only, and its step records nothing for it (its
      // clock counts from the send): a StepStarted comes only after a StepQueued.
      assert.equal(of('StepStarted').length, of('StepQueued').length, 'no start recorded for a step that did not wait');
      assert.ok(
        Math.max(...waits) > 2_500,
        `the longest wait for the agent (${Math.max(...waits)} ms) exceeds the step timeout`,
      );
    },
  );
});
