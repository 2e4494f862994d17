import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import pg from 'pg';
import { createLogger, freePort, newId, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { freshDatabase } from '@switchyard/testing';
import type { WorkflowDefinitionInput } from '@switchyard/domain';
import { startAgents, type AgentsHandle } from '@switchyard/agents';
import { parseServerConfig, resolvePackageBin, startConnectors, type RunningConnectors } from '@switchyard/connectors';
import { startDispatcher, type DispatcherHandle } from '@switchyard/dispatcher';
import { startExecution, waitForExecution, buildCatalog } from '@switchyard/workflow-executions';
import { startWorkflowEngine, type WorkflowEngine } from './engine.js';
import { TEST_ENGINE_TIMINGS } from './test-responders.js';

const logger = createLogger('workflow-system-int', process.env.LOG_LEVEL ?? 'silent');

/**
 * The engine against the real thing: the MCP connectors (official server-everything over stdio),
 * the task dispatcher and the built-in agents (their test-only `noop` task). They use the
 * production subjects, so this suite runs its own nats-server: nothing it sends can reach
 * another suite's services on the shared one.
 */
describe('workflow engine with the real connectors, task dispatcher and agents', () => {
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
    tmp = mkdtempSync(path.resolve('.tmp', 'wf-system-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: path.join(tmp, 'nats') });
    nc = await connectNats({ url: natsServer.url, name: 'wf-system', logger });
    const url = await freshDatabase('wf_system');
    pool = new pg.Pool({ connectionString: url, max: 12 });
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
          timeouts: { connect_ms: 20_000, call_ms: 10_000 },
        }),
      ],
    });
    agents = await startAgents({ nats: nc, pool, logger, noop: true, http: false });
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
    'validates against the live MCP registry and runs mcp -> agent -> mcp to completion',
    { timeout: 60_000 },
    async () => {
      const definition: WorkflowDefinitionInput = {
        id: 'system_demo',
        version: 1,
        name: 'echo, agent, sum',
        input: { type: 'object', properties: { word: { type: 'string' } }, required: ['word'] },
        steps: [
          { id: 'echo', uses: 'mcp:everything/echo', with: { message: '${{ input.word }}' } },
          {
            id: 'agent',
            uses: 'agent:noop',
            needs: ['echo'],
            with: { echo: '${{ steps.echo.output }}', sleep_ms: 10 },
          },
          { id: 'sum', uses: 'mcp:everything/get-sum', needs: ['agent'], with: { a: 20, b: 22 } },
        ],
        outputs: { echoed: '${{ steps.agent.output.echo }}', sum: '${{ steps.sum.output }}' },
      };
      // The catalog comes from the connectors' registry.list: a wrong tool is refused by name.
      const catalog = await buildCatalog({ nats: nc, definitions: engine.definitions }, { extraTaskTypes: ['noop'] });
      assert.equal(catalog.mcpChecked, true);
      await assert.rejects(
        engine.definitions.register(
          { ...definition, steps: [{ id: 'x', uses: 'mcp:everything/no_such_tool' }], outputs: {} },
          catalog,
        ),
        /MCP server "everything" has no tool "no_such_tool"/,
      );
      await engine.definitions.register(definition, catalog);

      const { executionId } = await startExecution(store, {
        definition,
        input: { word: 'hello' },
        correlationId: newId(),
      });
      const state = await waitForExecution(store, executionId, 45_000);
      assert.equal(state.status, 'completed', state.status === 'failed' ? state.reason : state.status);
      assert.ok(state.status === 'completed');
      assert.deepEqual(state.outputs.echoed, { text: 'Echo: hello' });
      assert.match(JSON.stringify(state.outputs.sum), /42/);
      // The agent step went through the dispatcher: its task is keyed by the step's idempotency key.
      const tasks = await store.readAll({ streamPrefixes: ['task-'] });
      assert.ok(
        tasks.some((e) => JSON.stringify(e.data).includes(`${executionId}:agent:1`)),
        `no task event carries the idempotency key (streams: ${[...new Set(tasks.map((e) => e.streamId))].slice(0, 5).join(', ')})`,
      );
    },
  );
});
