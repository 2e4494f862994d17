import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createLogger, createPgPool, newId } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { AUTOMATION_TRIGGER_ACTOR, triggerExecutionId } from '@switchyard/contracts';
import { AutomationService, EgressGuard, migrateAutomation } from '@switchyard/mcp-servers';
import { executionEvents, loadExecution, startExecution, waitForExecution } from '@switchyard/workflow-executions';
import { startWorkflowEngine, TriggerStarter, type WorkflowEngine } from '@switchyard/workflows';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';

const logger = createLogger('triggers-int', process.env.LOG_LEVEL ?? 'silent');

/**
 * Automation triggers start workflows: rows recorded by the real automation service are started by
 * the trigger starter through the workflow engine's command path, once, and run to completion.
 */
describe('automation triggers start workflows (real PostgreSQL, NATS, workflow engine)', () => {
  let pool: pg.Pool;
  let automationPool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let engine: WorkflowEngine;
  let automation: AutomationService;
  const starters: TriggerStarter[] = [];
  const definitionId = `trigger_echo_${newId().slice(0, 6)}`;
  const echoDefinition = {
    id: definitionId,
    version: 1,
    name: 'echo a word',
    input: { type: 'object', properties: { word: { type: 'string' } }, required: ['word'] },
    steps: [{ id: 'say', uses: 'mcp:echo/say', with: { text: '${{ input.word }}' } }],
    outputs: { said: '${{ steps.say.output.echoed.text }}' },
  };

  const row = async (id: string) =>
    (
      await pool.query<{ status: string; execution_id: string | null; error: string | null; started_at: Date | null }>(
        `select status, execution_id, error, started_at from automation.triggers where id = $1`,
        [id],
      )
    ).rows[0]!;
  const startedEvents = async (executionId: string) =>
    (await executionEvents(store, executionId)).filter((e) => e.type === 'WorkflowStarted');
  const starter = (): TriggerStarter => {
    const s = new TriggerStarter({ store, pool, logger, pollMs: 100, batch: 3 });
    starters.push(s);
    return s;
  };

  before(async () => {
    const url = await freshDatabase('triggers');
    pool = createPgPool({ connectionString: url, max: 10 }, { name: 'engine', logger });
    automationPool = createPgPool({ connectionString: url, max: 4 }, { name: 'automation', logger });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    await migrateAutomation(automationPool);
    nc = await connect({ servers: await testNatsUrl() });
    // Steps answer in-process (no connector needed): the output echoes the step's input.
    engine = await startWorkflowEngine({
      store,
      pool,
      nats: nc,
      logger,
      databaseUrl: url,
      partitions: 2,
      leaseTickMs: 200,
      timerPollMs: 50,
      execute: async (a) => ({ ok: true, output: { echoed: a.input } }),
    });
    await engine.definitions.register(echoDefinition, {
      servers: [{ name: 'echo', tools: ['say'] }],
      taskTypes: [],
      definitions: [],
    });
    automation = new AutomationService({ pool: automationPool, logger, guard: new EgressGuard({}) });
  });

  after(async () => {
    for (const s of starters) await s.stop();
    await engine?.stop();
    await automation?.close();
    await nc?.close();
    await store?.close();
    await automationPool?.end();
    await pool?.end();
  });

  it('a recorded trigger is started once, as the execution id it answered, and completes', async () => {
    const t = await automation.triggerWorkflow({
      templateId: definitionId,
      input: { word: 'hello' },
      correlationId: `corr-${newId()}`,
    });
    assert.equal(t.status, 'pending');
    assert.equal(t.execution_id, triggerExecutionId(t.id));
    const s = starter();
    s.start();
    const marked = await until(
      'the trigger marked started',
      async () => ((await row(t.id)).status === 'started' ? row(t.id) : undefined),
      30_000,
    );
    assert.equal(marked.execution_id, t.execution_id);
    assert.ok(marked.started_at);
    const state = await waitForExecution(store, t.execution_id, 30_000);
    assert.equal(state.status, 'completed');
    assert.ok(state.status === 'completed' && state.outputs['said'] === 'hello', JSON.stringify(state));
    const started = await startedEvents(t.execution_id);
    assert.equal(started.length, 1);
    assert.equal(started[0]!.metadata['actor'], AUTOMATION_TRIGGER_ACTOR);
    assert.equal(started[0]!.metadata['correlationId'], t.correlation_id);
    assert.equal(started[0]!.metadata['causationId'], t.id);
    // The service's own view of the row.
    const listed = (await automation.listTriggers()).find((x) => x.id === t.id);
    assert.equal(listed?.status, 'started');
    assert.equal(listed?.execution_id, t.execution_id);
    await s.stop();
  });

  it("a trigger made for a person, and a fire of a person's schedule, start the workflow for them (its startedBy)", async () => {
    const asked = await automation.triggerWorkflow({
      templateId: definitionId,
      input: { word: 'asked' },
      onBehalfOf: 'apikey:k-asked',
    });
    assert.equal(asked.on_behalf_of, 'apikey:k-asked');
    const schedule = await automation.createSchedule(
      {
        name: `owned_${newId().slice(0, 6)}`,
        after: '0s',
        timezone: 'UTC',
        target: { kind: 'workflow', template_id: definitionId, input: { word: 'scheduled' } },
      },
      undefined,
      'apikey:k-owner',
    );
    assert.equal(schedule.owner, 'apikey:k-owner');
    await automation.fireDue();
    const fired = (await automation.listTriggers(1_000)).find((t) => t.schedule_id === schedule.id);
    assert.equal(fired?.on_behalf_of, 'apikey:k-owner');
    const nobody = await automation.triggerWorkflow({ templateId: definitionId, input: { word: 'nobody' } });
    assert.equal(nobody.on_behalf_of, null);
    await starter().runPending();
    for (const [t, who] of [
      [asked, 'apikey:k-asked'],
      [fired, 'apikey:k-owner'],
      [nobody, undefined],
    ] as const) {
      const [started] = await startedEvents(t.execution_id);
      assert.equal((started!.data as { onBehalfOf?: string }).onBehalfOf, who, t.id);
      assert.equal(started!.metadata['actor'], AUTOMATION_TRIGGER_ACTOR, 'the part of the system that started it');
      const state = await loadExecution(store, t.execution_id);
      assert.equal(
        state.state.status !== 'not_started' ? state.state.startedBy : 'not started',
        who ?? AUTOMATION_TRIGGER_ACTOR,
      );
    }
  });

  it('two starters running at once start each of many triggers exactly once', async () => {
    const triggers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        automation.triggerWorkflow({ templateId: definitionId, input: { word: `w${i}` } }),
      ),
    );
    const [a, b] = [starter(), starter()];
    const passes = await Promise.all([a.runPending(), b.runPending(), a.runPending(), b.runPending()]);
    // Anything a pass skipped (locked by the other) is taken by a last pass; nothing is left.
    const last = await a.runPending();
    const started = passes.reduce((n, p) => n + p.started, last.started);
    assert.equal(started, 10, JSON.stringify({ passes, last }));
    for (const t of triggers) {
      const r = await row(t.id);
      assert.equal(r.status, 'started');
      assert.equal((await startedEvents(t.execution_id)).length, 1, t.id);
    }
    for (const t of triggers) {
      const state = await waitForExecution(store, t.execution_id, 30_000);
      assert.equal(state.status, 'completed', t.id);
    }
  });

  it('a start appended before a crash (row still pending) is not started again', async () => {
    const t = await automation.triggerWorkflow({ templateId: definitionId, input: { word: 'once' } });
    // What a starter that died after its append and before its commit left behind.
    const { definition } = await engine.definitions.get(definitionId);
    await startExecution(store, {
      definition,
      input: { word: 'once' },
      correlationId: t.correlation_id,
      actor: AUTOMATION_TRIGGER_ACTOR,
      executionId: t.execution_id,
    });
    assert.equal((await row(t.id)).status, 'pending');
    const pass = await starter().runPending();
    assert.equal(pass.started, 1);
    assert.equal((await row(t.id)).status, 'started');
    assert.equal((await startedEvents(t.execution_id)).length, 1);
    assert.equal((await waitForExecution(store, t.execution_id, 30_000)).status, 'completed');
  });

  it("a person at their bound of open executions: their trigger ends failed naming it, another's starts in the same pass", async () => {
    // Two executions of k-full not yet ended, as the engine records them.
    await pool.query(
      `insert into workflows.active_executions (execution_id, partition, started_by)
       values ($1, 0, 'apikey:k-full'), ($2, 0, 'apikey:k-full')`,
      [`held-${newId()}`, `held-${newId()}`],
    );
    const full = await automation.triggerWorkflow({
      templateId: definitionId,
      input: { word: 'x' },
      onBehalfOf: 'apikey:k-full',
    });
    const room = await automation.triggerWorkflow({
      templateId: definitionId,
      input: { word: 'y' },
      onBehalfOf: 'apikey:k-room',
    });
    const s = new TriggerStarter({ store, pool, logger, batch: 10, maxOpenPerStarter: 2 });
    starters.push(s);
    const pass = await s.runPending();
    assert.equal(pass.failed, 1, JSON.stringify(pass));
    const f = await row(full.id);
    assert.equal(f.status, 'failed', 'not left pending: it would come first in every pass');
    assert.match(
      f.error ?? '',
      /apikey:k-full holds 2 workflow executions not yet ended.*WORKFLOW_MAX_OPEN_PER_STARTER=2/,
    );
    await assert.rejects(executionEvents(store, full.execution_id), /not found/);
    assert.equal((await row(room.id)).status, 'started');
    assert.equal((await startedEvents(room.execution_id)).length, 1);
  });

  it('a schedule whose template was deleted is paused after its next fire fails, saying why; resumed once the template is back, it fires again', async () => {
    const gone = `gone_${newId().slice(0, 6)}`;
    await engine.definitions.register(
      { ...echoDefinition, id: gone },
      { servers: [{ name: 'echo', tools: ['say'] }], taskTypes: [], definitions: [] },
    );
    let now = new Date('2030-01-01T00:00:30Z');
    const timed = new AutomationService({
      pool: automationPool,
      logger,
      guard: new EgressGuard({}),
      clock: { now: () => now },
    });
    try {
      const name = `hourly_${gone}`;
      await timed.createSchedule(
        {
          name,
          cron: '0 * * * *',
          timezone: 'UTC',
          target: { kind: 'workflow', template_id: gone, input: { word: 'x' } },
        },
        undefined,
        'apikey:k-gone',
      );
      const s = starter();
      const schedule = async () => (await timed.listSchedules()).schedules.find((x) => x.name === name)!;
      // A fire while the template exists starts it.
      now = new Date('2030-01-01T01:00:00Z');
      assert.equal(await timed.fireDue(), 1);
      assert.equal((await s.runPending()).started, 1);
      await engine.definitions.delete(gone, { actor: 'apikey:admin', reason: 'retired' });
      // The next fire fails (the template is gone) and pauses nothing yet: the failure is not known at the claim.
      now = new Date('2030-01-01T02:00:00Z');
      assert.equal(await timed.fireDue(), 1);
      assert.equal((await s.runPending()).failed, 1);
      const failed = await pool.query<{ error_code: string }>(
        `select error_code from automation.triggers where schedule_id = $1 order by fire_at desc limit 1`,
        [(await schedule()).id],
      );
      assert.equal(failed.rows[0]!.error_code, 'not_found');
      // The next tick pauses it, with the reason, by the system, and fires nothing more.
      now = new Date('2030-01-01T02:00:01Z');
      await timed.fireDue();
      const paused = await schedule();
      assert.equal(paused.enabled, false);
      assert.equal(paused.paused_reason, 'target_missing');
      assert.equal(paused.last_start?.status, 'failed');
      const events = await store.readStream(`automation_schedule-apikey:k-gone/${name}`);
      const pause = events.find((e) => e.type === 'SchedulePaused')!;
      assert.equal((pause.data as { reason?: string }).reason, 'target_missing');
      assert.equal(pause.metadata['actor'], 'mcp:automation:target-missing');
      now = new Date('2030-01-01T05:00:00Z');
      assert.equal(await timed.fireDue(), 0, 'a paused schedule does not fire');
      // The template back, the owner resumes it: the failure of the old plan pauses nothing, the next fire starts.
      await engine.definitions.register(
        { ...echoDefinition, id: gone, version: 2 },
        { servers: [{ name: 'echo', tools: ['say'] }], taskTypes: [], definitions: [] },
      );
      await timed.resumeSchedule(name, undefined, 'apikey:k-gone');
      await timed.fireDue();
      assert.equal((await schedule()).enabled, true, 'not paused again for the failure before the resume');
      now = new Date('2030-01-01T06:00:00Z');
      assert.equal(await timed.fireDue(), 1);
      assert.equal((await s.runPending()).started, 1);
      await timed.fireDue();
      assert.equal((await schedule()).enabled, true);
      assert.equal((await schedule()).last_start?.status, 'started');
    } finally {
      await timed.close();
    }
  });

  it('an unknown template or an input the template refuses ends failed with the reason, and is not retried', async () => {
    const unknown = await automation.triggerWorkflow({ templateId: 'no_such_template', input: {} });
    const badInput = await automation.triggerWorkflow({ templateId: definitionId, input: { word: 42 } });
    const s = starter();
    const pass = await s.runPending();
    assert.equal(pass.failed, 2, JSON.stringify(pass));
    const u = await row(unknown.id);
    assert.equal(u.status, 'failed');
    assert.match(u.error ?? '', /no_such_template.*not found/);
    assert.equal(u.execution_id, null);
    const b = await row(badInput.id);
    assert.equal(b.status, 'failed');
    assert.match(b.error ?? '', /invalid workflow input.*word/);
    await assert.rejects(executionEvents(store, unknown.execution_id), /not found/);
    await assert.rejects(executionEvents(store, badInput.execution_id), /not found/);
    // Failed rows are not claimed again.
    assert.deepEqual(await s.runPending(), { started: 0, failed: 0, deferred: 0 });
  });
});
