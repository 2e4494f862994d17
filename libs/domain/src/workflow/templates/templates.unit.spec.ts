import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateDefinition, type ToolCatalog } from '../definition/validate.js';
import { workflowDefinitionSchema, type WorkflowDefinitionInput } from '../definition/schema.js';
import { decideWorkflow, evolveWorkflow, initialWorkflowState } from '../execution/decider.js';
import { nextActions, type DispatchAction } from '../execution/saga.js';
import { at, meta } from '../execution/spec-helpers.js';
import type { WorkflowCommand, WorkflowEvent, WorkflowExecutionState } from '../execution/types.js';
import { AGENT_TASK_TYPES, builtInTemplates, customerOnboardingTemplate, customerSupportTemplate, revenueAnalysisTemplate } from './index.js';

/** The real tool names of the project's MCP servers and agents. */
const realCatalog: ToolCatalog = {
  servers: [
    { name: 'database', tools: ['query', 'list_schemas', 'list_tables', 'describe_table', 'explain'] },
    { name: 'fetch', tools: ['http_request', 'fetch_text'] },
    {
      name: 'automation',
      tools: ['register_webhook', 'list_webhooks', 'delete_webhook', 'send_webhook', 'create_schedule', 'list_schedules', 'delete_schedule', 'trigger_workflow'],
    },
    { name: 'analytics', tools: ['record_metric', 'query_metric', 'list_metrics', 'report'] },
    { name: 'filesystem', tools: ['read_file', 'write_file', 'list_directory', 'create_directory'] },
  ],
  taskTypes: [...AGENT_TASK_TYPES],
  definitions: builtInTemplates.map((t) => t.id),
};

type Responder = (d: DispatchAction) => unknown;

/**
 * Drive an execution to its end the way the orchestrator would: take nextActions, dispatch
 * every unit (record dispatched, then the responder's output), repeat. Returns the final state,
 * every event, and the most units of one step seen in flight at once.
 */
function simulate(def: WorkflowDefinitionInput, input: unknown, respond: Responder) {
  let state: WorkflowExecutionState = initialWorkflowState;
  const events: WorkflowEvent[] = [];
  let clock = 0;
  const send = (c: WorkflowCommand) => {
    const out = decideWorkflow(c, state);
    events.push(...out);
    state = out.reduce(evolveWorkflow, state);
  };
  send({ type: 'StartWorkflow', data: { executionId: 'sim', definition: def, input, seed: 7 }, metadata: meta(at(0)) });
  const maxInFlight: Record<string, number> = {};
  for (let round = 0; round < 100; round++) {
    const actions = nextActions(state, at(clock));
    if (actions.terminal || actions.dispatch.length === 0) break;
    for (const d of actions.dispatch) {
      const inFlight = actions.dispatch.filter((x) => x.stepId === d.stepId).length;
      maxInFlight[d.stepId] = Math.max(maxInFlight[d.stepId] ?? 0, inFlight);
    }
    for (const d of actions.dispatch) {
      clock += 10;
      const unit = d.itemIndex === undefined ? { stepId: d.stepId } : { stepId: d.stepId, itemIndex: d.itemIndex };
      if (d.kind === 'compensation') {
        send({ type: 'RecordCompensationSucceeded', data: { stepId: d.stepId, output: respond(d) }, metadata: meta(at(clock)) });
        continue;
      }
      send({ type: 'RecordStepDispatched', data: { ...unit, attempt: d.attempt }, metadata: meta(at(clock)) });
      send({ type: 'RecordStepSucceeded', data: { ...unit, attempt: d.attempt, output: respond(d) }, metadata: meta(at(clock + 5)) });
    }
  }
  return { state, events, maxInFlight };
}

const dispatchedInputs = (events: WorkflowEvent[], stepId: string) =>
  events.filter((e) => e.type === 'StepScheduled' && e.data.stepId === stepId).map((e) => (e.data as { input: unknown }).input);
const statusOf = (state: WorkflowExecutionState, stepId: string) => (state.status === 'not_started' ? undefined : state.steps[stepId]?.status);

describe('built-in templates: definitions', () => {
  for (const t of builtInTemplates) {
    it(`${t.id} parses and validates against the real tool and task catalog`, () => {
      assert.ok(workflowDefinitionSchema.safeParse(t).success);
      const r = validateDefinition(t, realCatalog);
      assert.deepEqual(r.problems, []);
    });
  }

  it('a catalog without the filesystem server rejects revenue_analysis, naming the step', () => {
    const r = validateDefinition(revenueAnalysisTemplate, { ...realCatalog, servers: realCatalog.servers.filter((s) => s.name !== 'filesystem') });
    assert.equal(r.ok, false);
    assert.deepEqual(r.problems.map((p) => [p.path, p.code]), [['steps[3].uses', 'unknown_server']]);
  });
});

describe('built-in templates: simulated runs reach completed', () => {
  it('customer_onboarding: records created, welcome generated and sent, follow-ups scheduled (for_each, concurrency 2)', () => {
    const { state, events, maxInFlight } = simulate(
      customerOnboardingTemplate,
      { customer: { name: 'Ann Lee', email: 'ann@example.com', plan: 'pro' } },
      (d) => {
        if (d.uses === 'mcp:database/query') {
          const sql = String((d.input as { sql: string }).sql);
          return sql.startsWith('SELECT') ? { rows: [{ existing: 0 }], rowCount: 1 } : { rows: [{ id: 101 }], rowCount: 1 };
        }
        if (d.uses === 'agent:marketing_content') return { subject: 'Welcome, Ann', body: 'Glad to have you.' };
        if (d.uses === 'mcp:automation/send_webhook') return { delivered: true, status: 202 };
        if (d.uses === 'mcp:automation/create_schedule') return { scheduleId: `s-${d.itemIndex}` };
        throw new Error(`unexpected dispatch ${d.uses}`);
      },
    );
    assert.equal(state.status, 'completed');
    assert.ok(state.status === 'completed');
    assert.deepEqual(state.outputs, { status: 'onboarded', customer_id: 101, welcome_sent: true, follow_ups: 3 });
    assert.deepEqual(dispatchedInputs(events, 'create_records'), [
      {
        sql: 'INSERT INTO customers (name, email, company, plan) VALUES ($1, $2, $3, $4) RETURNING id',
        params: ['Ann Lee', 'ann@example.com', '', 'pro'],
      },
    ]);
    assert.deepEqual(dispatchedInputs(events, 'send_welcome'), [
      { name: 'welcome-email', payload: { to: 'ann@example.com', subject: 'Welcome, Ann', body: 'Glad to have you.' } },
    ]);
    assert.deepEqual(
      dispatchedInputs(events, 'schedule_follow_ups').map((i) => (i as { name: string; delay_days: number }).name),
      ['onboarding-101-day-1', 'onboarding-101-day-7', 'onboarding-101-day-30'],
    );
    assert.equal(maxInFlight['schedule_follow_ups'], 2);
    assert.equal(statusOf(state, 'remove_customer'), 'pending'); // compensation only
  });

  it('customer_onboarding: an existing customer skips creation and everything after it, and still completes', () => {
    const { state } = simulate(customerOnboardingTemplate, { customer: { name: 'Bo', email: 'bo@example.com' } }, (d) =>
      d.uses === 'mcp:database/query' ? { rows: [{ existing: 1 }] } : assert.fail(`nothing but the check should run, got ${d.uses}`),
    );
    assert.equal(state.status, 'completed');
    assert.ok(state.status === 'completed');
    assert.deepEqual(state.outputs, { status: 'already_customer', customer_id: null, welcome_sent: false, follow_ups: 0 });
  });

  const revenueResponder: Responder = (d) => {
    if (d.uses === 'mcp:database/query') {
      const sql = String((d.input as { sql: string }).sql);
      return sql.startsWith('SELECT') ? { rows: [{ month: '2026-01', revenue: 1200.5, invoices: 12 }] } : { rows: [{ id: 9 }] };
    }
    if (d.uses === 'agent:revenue_analysis') return { summary: 'Revenue grew 4% month over month.', trend: 'up' };
    if (d.uses === 'agent:revenue_forecast') return { summary: 'Expect 1300 next month.', months: [1300, 1350, 1400] };
    if (d.uses === 'mcp:filesystem/write_file') return { written: true };
    throw new Error(`unexpected dispatch ${d.uses}`);
  };

  it('revenue_analysis without forecasts: forecast skipped by its condition, report written and stored', () => {
    const { state, events } = simulate(revenueAnalysisTemplate, { period_start: '2026-01-01', period_end: '2026-04-01' }, revenueResponder);
    assert.equal(state.status, 'completed');
    assert.equal(statusOf(state, 'forecast'), 'skipped');
    const report = dispatchedInputs(events, 'write_report')[0] as { path: string; content: string };
    assert.equal(report.path, 'reports/revenue-analysis.md');
    assert.match(report.content, /^# Revenue analysis 2026-01-01 to 2026-04-01\n/);
    assert.match(report.content, /Revenue grew 4%/);
    assert.match(report.content, /## Forecast\n\nNot requested\./);
    const stored = dispatchedInputs(events, 'store_results')[0] as { params: unknown[] };
    assert.deepEqual(stored.params[2], { summary: 'Revenue grew 4% month over month.', trend: 'up' });
    assert.equal(stored.params[3], null);
    assert.ok(state.status === 'completed');
    assert.deepEqual(state.outputs, {
      report_path: 'reports/revenue-analysis.md',
      summary: 'Revenue grew 4% month over month.',
      forecast_included: false,
      report_id: 9,
    });
  });

  it('revenue_analysis with forecasts: the forecast runs and lands in the report', () => {
    const { state, events } = simulate(
      revenueAnalysisTemplate,
      { period_start: '2026-01-01', period_end: '2026-04-01', include_forecasts: true, forecast_months: 6 },
      revenueResponder,
    );
    assert.equal(state.status, 'completed');
    assert.deepEqual(dispatchedInputs(events, 'forecast'), [{ history: [{ month: '2026-01', revenue: 1200.5, invoices: 12 }], months: 6 }]);
    assert.match((dispatchedInputs(events, 'write_report')[0] as { content: string }).content, /Expect 1300 next month\./);
    assert.ok(state.status === 'completed' && state.outputs['forecast_included'] === true);
  });

  const supportResponder =
    (escalate: boolean): Responder =>
    (d) => {
      if (d.uses === 'mcp:database/query') {
        const sql = String((d.input as { sql: string }).sql);
        return sql.startsWith('SELECT') ? { rows: [{ id: 5, name: 'Cy', plan: 'pro', past_interactions: 2 }] } : { rows: [{ id: 77 }] };
      }
      if (d.uses === 'agent:support_response') {
        return (d.input as { mode: string }).mode === 'analyze'
          ? { category: 'billing', sentiment: 'negative', escalate }
          : { text: 'We refunded the duplicate charge.' };
      }
      if (d.uses === 'mcp:automation/send_webhook') return { delivered: true };
      throw new Error(`unexpected dispatch ${d.uses}`);
    };

  it('customer_support without escalation: escalate skipped, interaction logged', () => {
    const { state, events } = simulate(customerSupportTemplate, { customer_email: 'cy@example.com', query: 'Charged twice?' }, supportResponder(false));
    assert.equal(state.status, 'completed');
    assert.equal(statusOf(state, 'escalate'), 'skipped');
    assert.equal((dispatchedInputs(events, 'log_interaction')[0] as { params: unknown[] }).params[4], false);
    assert.ok(state.status === 'completed');
    assert.deepEqual(state.outputs, { response: { text: 'We refunded the duplicate charge.' }, escalated: false, interaction_id: 77 });
  });

  it('customer_support when the analysis says escalate: the escalation webhook is sent', () => {
    const { state, events } = simulate(customerSupportTemplate, { customer_email: 'cy@example.com', query: 'Cancel everything!' }, supportResponder(true));
    assert.equal(state.status, 'completed');
    assert.deepEqual(dispatchedInputs(events, 'escalate'), [
      {
        name: 'support-escalation',
        payload: { customer_email: 'cy@example.com', query: 'Cancel everything!', analysis: { category: 'billing', sentiment: 'negative', escalate: true } },
      },
    ]);
    assert.ok(state.status === 'completed' && state.outputs['escalated'] === true);
  });
});
