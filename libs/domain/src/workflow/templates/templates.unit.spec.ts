import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateDefinition, type ToolCatalog } from '../definition/validate.js';
import { workflowDefinitionSchema, type WorkflowDefinitionInput } from '../definition/schema.js';
import { decideWorkflow, evolveWorkflow, initialWorkflowState } from '../execution/decider.js';
import { nextActions, type DispatchAction } from '../execution/saga.js';
import { at, meta } from '../execution/spec-helpers.js';
import type { WorkflowCommand, WorkflowEvent, WorkflowExecutionState } from '../execution/types.js';
import {
  AGENT_TASK_TYPES,
  builtInTemplates,
  customerOnboardingTemplate,
  customerSupportTemplate,
  revenueAnalysisTemplate,
} from './index.js';

/** The real tool names of the project's MCP servers and agents. */
const realCatalog: ToolCatalog = {
  servers: [
    { name: 'database', tools: ['query', 'list_schemas', 'list_tables', 'describe_table', 'explain'] },
    // The same server run with writes allowed, as a Postgres role that may only touch the onboarding tables.
    { name: 'database_writer', tools: ['query', 'list_schemas', 'list_tables', 'describe_table', 'explain'] },
    { name: 'fetch', tools: ['http_request', 'fetch_text'] },
    {
      name: 'automation',
      tools: [
        'register_webhook',
        'list_webhooks',
        'delete_webhook',
        'send_webhook',
        'send_email',
        'list_mailbox',
        'create_schedule',
        'list_schedules',
        'delete_schedule',
        'trigger_workflow',
      ],
    },
    { name: 'analytics', tools: ['record_metric', 'query_metric', 'list_metrics', 'report'] },
    {
      name: 'filesystem',
      tools: ['read_file', 'write_file', 'list_directory', 'create_directory', 'list_allowed_directories'],
    },
  ],
  taskTypes: [...AGENT_TASK_TYPES],
  definitions: builtInTemplates.map((t) => t.id),
};

type Responder = (d: DispatchAction) => unknown;
/** What a responder returns for a tool that answered with an error (recorded as RecordStepFailed, not retryable). */
class ToolFailure {
  constructor(readonly message: string) {}
}

/**
 * Drive an execution to its end the way the orchestrator would: take nextActions, dispatch
 * every unit (record dispatched, then the responder's output), repeat. Returns the final state,
 * every event, and the most units of one step seen in flight at once.
 */
function simulate(
  def: WorkflowDefinitionInput,
  input: unknown,
  respond: Responder,
  signal?: { name: string; payload: Record<string, unknown> },
  start: { executionId: string; at: string } = { executionId: 'sim', at: at(0) },
) {
  let state: WorkflowExecutionState = initialWorkflowState;
  const events: WorkflowEvent[] = [];
  let clock = 0;
  const send = (c: WorkflowCommand) => {
    const out = decideWorkflow(c, state);
    events.push(...out);
    state = out.reduce(evolveWorkflow, state);
  };
  send({
    type: 'StartWorkflow',
    data: { executionId: start.executionId, definition: def, input, seed: 7 },
    metadata: meta(start.at),
  });
  const maxInFlight: Record<string, number> = {};
  for (let round = 0; round < 100; round++) {
    const actions = nextActions(state, at(clock));
    // A wait step waits: send the signal if there is one, else let its timer fire.
    const wait = actions.timers.find((t) => t.kind === 'wait_timeout');
    if (!actions.terminal && actions.dispatch.length === 0 && wait) {
      clock += 10;
      if (signal)
        send({ type: 'SendSignal', data: { signalId: `sig-${round}`, ...signal }, metadata: meta(at(clock)) });
      else {
        clock = Math.max(clock, Date.parse(wait.dueAt) - Date.parse(at(0)));
        send({ ...wait.command, metadata: meta(at(clock)) });
      }
      continue;
    }
    if (actions.terminal || actions.dispatch.length === 0) break;
    for (const d of actions.dispatch) {
      const inFlight = actions.dispatch.filter((x) => x.stepId === d.stepId).length;
      maxInFlight[d.stepId] = Math.max(maxInFlight[d.stepId] ?? 0, inFlight);
    }
    for (const d of actions.dispatch) {
      clock += 10;
      const unit = d.itemIndex === undefined ? { stepId: d.stepId } : { stepId: d.stepId, itemIndex: d.itemIndex };
      if (d.kind === 'compensation') {
        send({
          type: 'RecordCompensationSucceeded',
          data: { stepId: d.stepId, output: respond(d) },
          metadata: meta(at(clock)),
        });
        continue;
      }
      send({ type: 'RecordStepDispatched', data: { ...unit, attempt: d.attempt }, metadata: meta(at(clock)) });
      const output = respond(d);
      if (output instanceof ToolFailure) {
        send({
          type: 'RecordStepFailed',
          data: {
            ...unit,
            attempt: d.attempt,
            error: { code: 'tool_error', message: output.message, retryable: false },
          },
          metadata: meta(at(clock + 5)),
        });
      } else {
        send({
          type: 'RecordStepSucceeded',
          data: { ...unit, attempt: d.attempt, output },
          metadata: meta(at(clock + 5)),
        });
      }
    }
  }
  return { state, events, maxInFlight };
}

const dispatchedInputs = (events: WorkflowEvent[], stepId: string) =>
  events
    .filter((e) => e.type === 'StepScheduled' && e.data.stepId === stepId)
    .map((e) => (e.data as { input: unknown }).input);
const statusOf = (state: WorkflowExecutionState, stepId: string) =>
  state.status === 'not_started' ? undefined : state.steps[stepId]?.status;

describe('built-in templates: definitions', () => {
  for (const t of builtInTemplates) {
    it(`${t.id} parses and validates against the real tool and task catalog`, () => {
      assert.ok(workflowDefinitionSchema.safeParse(t).success);
      const r = validateDefinition(t, realCatalog);
      assert.deepEqual(r.problems, []);
    });
  }

  it('a catalog without the filesystem server rejects revenue_analysis, naming the step', () => {
    const r = validateDefinition(revenueAnalysisTemplate, {
      ...realCatalog,
      servers: realCatalog.servers.filter((s) => s.name !== 'filesystem'),
    });
    assert.equal(r.ok, false);
    assert.deepEqual(
      r.problems.map((p) => [p.path, p.code]),
      [
        ['steps[3].uses', 'unknown_server'],
        ['steps[4].uses', 'unknown_server'],
        ['steps[5].uses', 'unknown_server'],
      ],
    );
  });
});

describe('built-in templates: simulated runs reach completed', () => {
  const sqlOf = (d: DispatchAction) => String((d.input as { sql: string }).sql);

  const onboardingResponder =
    (existing: boolean): Responder =>
    (d) => {
      if (d.uses === 'mcp:database/query' || d.uses === 'mcp:database_writer/query') {
        if (sqlOf(d).startsWith('SELECT id FROM business.customers'))
          return { rows: existing ? [{ id: 12 }] : [], row_count: existing ? 1 : 0 };
        if (sqlOf(d).startsWith('WITH plan')) {
          return {
            rows: [
              {
                customer_id: 101,
                signup_date: '2026-01-31',
                subscription_id: 401,
                plan: 'growth',
                seats: 8,
                price_per_seat: 29,
                created: true,
              },
            ],
            row_count: 1,
          };
        }
      }
      if (d.uses === 'agent:marketing_content')
        return {
          channel: 'email',
          kind: 'welcome',
          subject: 'Welcome to Switchyard, Ann Lee',
          text: 'Hi Ann Lee,\n\nWelcome to Switchyard! Your growth plan with 8 seats is active.',
          facts: {},
        };
      if (d.uses === 'mcp:automation/send_email')
        return {
          email: {
            message_id: '<m@x>',
            accepted: ['ann@example.com'],
            rejected: [],
            response: '250 ok',
            deduplicated: false,
          },
        };
      if (d.uses === 'mcp:automation/create_schedule')
        return { schedule: { name: (d.input as { name: string }).name } };
      throw new Error(`unexpected dispatch ${d.uses}`);
    };

  it('customer_onboarding: records created, welcome generated and sent, follow-ups scheduled (for_each, concurrency 2)', () => {
    const { state, events, maxInFlight } = simulate(
      customerOnboardingTemplate,
      {
        customer: {
          name: 'Ann Lee',
          email: 'ann@example.com',
          plan: 'growth',
          seats: 8,
          segment: 'mid_market',
          region: 'emea',
        },
      },
      onboardingResponder(false),
    );
    assert.equal(state.status, 'completed');
    assert.ok(state.status === 'completed');
    assert.deepEqual(state.outputs, {
      status: 'onboarded',
      customer_id: 101,
      subscription_id: 401,
      welcome_sent: true,
      follow_ups: ['onboarding-101-after-1d', 'onboarding-101-after-7d', 'onboarding-101-after-30d'],
      welcome_error: null,
      follow_up_error: null,
    });
    const create = dispatchedInputs(events, 'create_records')[0] as { params: unknown[] };
    assert.deepEqual(create.params, ['Ann Lee', 'ann@example.com', 'mid_market', 'emea', 'growth', 8, 'sim']);
    // The agent's welcome for the customer just made, not its segment newsletter; mailed as it wrote it.
    assert.deepEqual(dispatchedInputs(events, 'welcome_content'), [
      { kind: 'welcome', channel: 'email', customerId: 101 },
    ]);
    assert.deepEqual(dispatchedInputs(events, 'send_welcome'), [
      {
        to: 'ann@example.com',
        subject: 'Welcome to Switchyard, Ann Lee',
        text: 'Hi Ann Lee,\n\nWelcome to Switchyard! Your growth plan with 8 seats is active.',
        idempotency_key: 'welcome-sim:send_welcome',
      },
    ]);
    // One one-shot e-mail schedule per delay.
    const follow = dispatchedInputs(events, 'schedule_follow_ups') as {
      name: string;
      after: string;
      target: Record<string, unknown>;
    }[];
    assert.deepEqual(
      follow.map((i) => [i.name, i.after, i.target['kind'], i.target['to'], i.target['subject']]),
      ['1d', '7d', '30d'].map((a) => [
        `onboarding-101-after-${a}`,
        a,
        'email',
        'ann@example.com',
        'How is it going, Ann Lee?',
      ]),
    );
    assert.equal(
      follow[1]!.target['text'],
      'Hi Ann Lee,\n\nyou have been on the growth plan for 7d now. Anything we can help with? Just reply to this e-mail.\n\nThe Switchyard team',
    );
    assert.equal(maxInFlight['schedule_follow_ups'], 2);
    assert.equal(statusOf(state, 'remove_customer'), 'pending'); // compensation only
  });

  it('customer_onboarding: an existing customer skips creation and everything after it, and still completes', () => {
    const { state } = simulate(
      customerOnboardingTemplate,
      { customer: { name: 'Bo', email: 'bo@example.com' } },
      onboardingResponder(true),
    );
    assert.equal(state.status, 'completed');
    assert.ok(state.status === 'completed');
    assert.deepEqual(state.outputs, {
      status: 'already_customer',
      customer_id: 12,
      subscription_id: null,
      welcome_sent: false,
      follow_ups: [],
      welcome_error: null,
      follow_up_error: null,
    });
  });

  it('customer_onboarding: a refused follow-up schedule and a failed send still complete the onboarding, with the errors in the outputs', () => {
    const base = onboardingResponder(false);
    const { state } = simulate(
      customerOnboardingTemplate,
      { customer: { name: 'Di', email: 'di@example.com' }, follow_up_after: ['3d'] },
      (d) =>
        d.uses === 'mcp:automation/create_schedule'
          ? new ToolFailure('an e-mail schedule needs a mail server: set SMTP_URL')
          : d.uses === 'mcp:automation/send_email'
            ? new ToolFailure('SMTP send failed: connect ECONNREFUSED')
            : base(d),
    );
    assert.equal(state.status, 'completed');
    assert.ok(state.status === 'completed');
    assert.equal(statusOf(state, 'remove_customer'), 'pending'); // the records stay
    assert.deepEqual(state.outputs, {
      status: 'onboarded',
      customer_id: 101,
      subscription_id: 401,
      welcome_sent: false,
      follow_ups: [],
      welcome_error: 'SMTP send failed: connect ECONNREFUSED',
      follow_up_error: 'an e-mail schedule needs a mail server: set SMTP_URL',
    });
  });

  it('customer_onboarding: a follow-up refused part way (the one-shot cap) lists the schedules made before it, which stay', () => {
    const base = onboardingResponder(false);
    const { state } = simulate(
      customerOnboardingTemplate,
      { customer: { name: 'Cy', email: 'cy@example.com' }, follow_up_after: ['1d', '7d', '30d'] },
      (d) =>
        d.uses === 'mcp:automation/create_schedule' && (d.input as { name: string }).name.endsWith('-after-7d')
          ? new ToolFailure('one-shot schedules not fired yet: 4 exist, at most 4 (AUTOMATION_MAX_ONE_SHOTS)')
          : base(d),
    );
    assert.equal(state.status, 'completed');
    assert.ok(state.status === 'completed');
    assert.equal(statusOf(state, 'schedule_follow_ups'), 'failed');
    assert.equal(statusOf(state, 'delete_follow_up'), 'pending', 'what was made is not undone (on_error: continue)');
    const made = state.outputs['follow_ups'] as string[];
    assert.ok(made.includes('onboarding-101-after-1d'), JSON.stringify(state.outputs));
    assert.ok(!made.includes('onboarding-101-after-7d'));
    assert.match(String(state.outputs['follow_up_error']), /AUTOMATION_MAX_ONE_SHOTS/);
  });

  const analysis = {
    window: { from: '2026-01-01', to: '2026-03-31', granularity: 'month' },
    total: 3600.5,
    orderCount: 30,
    customersWithOrders: 7,
    series: [
      { period: '2026-01', revenue: 1200.5, orders: 10 },
      { period: '2026-02', revenue: 1100, orders: 9 },
      { period: '2026-03', revenue: 1300, orders: 11 },
    ],
    byKind: [{ kind: 'subscription', revenue: 3600.5, share: 1 }],
    growth: { latestVsPrevious: 0.1818, windowVsPriorYear: null, firstToLast: 0.0829 },
    topCustomers: [{ customerId: 1, name: 'Acme', segment: 'smb', revenue: 900, orders: 3, share: 0.25 }],
    anomalies: [],
  };
  const revenueResponder: Responder = (d) => {
    if (d.uses === 'mcp:database/query')
      return { rows: [{ from_date: '2026-01-01', to_date: '2026-03-31', revenue: 3600.5, orders: 30, customers: 7 }] };
    if (d.uses === 'agent:revenue_analysis') return analysis;
    if (d.uses === 'agent:revenue_forecast') {
      return {
        model: { method: 'holt' },
        backtest: { mapePct: 7.3 },
        summary: { forecastTotal: 4000 },
        forecast: [{ month: '2026-04', forecast: 1333.3, lower: 1200, upper: 1466.6 }],
      };
    }
    if (d.uses === 'mcp:filesystem/list_allowed_directories') return { content: 'Allowed directories:\n/srv/files' };
    if (d.uses === 'mcp:filesystem/create_directory' || d.uses === 'mcp:filesystem/write_file')
      return { content: 'ok' };
    if (d.uses === 'mcp:analytics/record_metric') return { id: `m-${d.itemIndex}` };
    throw new Error(`unexpected dispatch ${d.uses}`);
  };

  it('revenue_analysis without forecasts: forecast skipped by its condition, report written, metrics stored', () => {
    const { state, events } = simulate(revenueAnalysisTemplate, { timeframe: '3m' }, revenueResponder);
    assert.equal(state.status, 'completed');
    assert.equal(statusOf(state, 'forecast'), 'skipped');
    assert.deepEqual(
      dispatchedInputs(events, 'fetch_revenue').map((i) => (i as { params: unknown[] }).params),
      [['3m']],
    );
    assert.deepEqual(dispatchedInputs(events, 'analyze'), [
      { timeframe: '3m', asOf: '2026-03-31', includeCohorts: false, topN: 5 },
    ]);
    assert.deepEqual(dispatchedInputs(events, 'report_dir'), [{ path: '/srv/files/reports' }]);
    const report = dispatchedInputs(events, 'write_report')[0] as { path: string; content: string };
    // A file of the execution's own: its start time (UTC), then its id.
    assert.equal(report.path, '/srv/files/reports/revenue-analysis-20260101T000000.000Z-sim.md');
    assert.match(report.content, /^# Revenue analysis: last 3m \(2026-01-01 to 2026-03-31\)\n/);
    assert.match(report.content, /\| Total revenue \| 3600\.5 \|/);
    assert.match(report.content, /\| 2026-02 \| 1100 \| 9 \|/);
    assert.match(report.content, /## Anomalies\n\nNone detected\./);
    assert.match(report.content, /## Forecast\n\nNot requested \(include_forecasts is false\)\./);
    assert.deepEqual(
      dispatchedInputs(events, 'store_results').map((i) => [
        (i as { name: string }).name,
        (i as { value: number }).value,
      ]),
      [
        ['revenue.total', 3600.5],
        ['revenue.orders', 30],
        ['revenue.customers', 7],
      ],
    );
    assert.deepEqual(
      dispatchedInputs(events, 'store_results').map((i) => (i as { labels: { report: string } }).labels.report),
      Array(3).fill('reports/revenue-analysis-20260101T000000.000Z-sim.md'),
    );
    assert.ok(state.status === 'completed');
    assert.deepEqual(state.outputs, {
      window: { from: '2026-01-01', to: '2026-03-31', timeframe: '3m' },
      total_revenue: 3600.5,
      orders: 30,
      customers_with_orders: 7,
      report_file: '/srv/files/reports/revenue-analysis-20260101T000000.000Z-sim.md',
      forecast_included: false,
      forecast_total: null,
      metrics_recorded: 3,
    });
  });

  it('revenue_analysis: two executions write two reports, each named in its own output; report_path overrides', () => {
    const reportOf = (executionId: string, startedAt: string, input: Record<string, unknown> = { timeframe: '3m' }) => {
      const { state, events } = simulate(revenueAnalysisTemplate, input, revenueResponder, undefined, {
        executionId,
        at: startedAt,
      });
      assert.ok(state.status === 'completed');
      const written = dispatchedInputs(events, 'write_report') as { path: string }[];
      assert.equal(written.length, 1);
      assert.equal(state.outputs['report_file'], written[0]!.path, 'the output names the file written');
      return { path: written[0]!.path, dir: (dispatchedInputs(events, 'report_dir')[0] as { path: string }).path };
    };
    const first = reportOf('0b6c51e2-7f7a-4f0e-9d36-1c2f6d1b6a01', '2026-12-04T09:05:07.123Z');
    const second = reportOf('5d2e0c8b-3a41-4c55-8e0f-7b9a2c4d1e02', '2026-12-04T10:11:12.000Z');
    assert.deepEqual(
      [first.path, second.path],
      [
        '/srv/files/reports/revenue-analysis-20261204T090507.123Z-0b6c51e2-7f7a-4f0e-9d36-1c2f6d1b6a01.md',
        '/srv/files/reports/revenue-analysis-20261204T101112.000Z-5d2e0c8b-3a41-4c55-8e0f-7b9a2c4d1e02.md',
      ],
    );
    // Names sort by start time.
    assert.ok(first.path < second.path);
    // A path given is used as given (and its own directory created); it stays relative to the sandbox root.
    assert.deepEqual(reportOf('x', at(0), { timeframe: '3m', report_path: 'finance/q4/revenue.md' }), {
      path: '/srv/files/finance/q4/revenue.md',
      dir: '/srv/files/finance/q4',
    });
  });

  it('revenue_analysis with forecasts: the forecast runs, lands in the report and in the metrics', () => {
    const { state, events } = simulate(
      revenueAnalysisTemplate,
      { timeframe: '3m', include_forecasts: true, forecast_months: 6 },
      revenueResponder,
    );
    assert.equal(state.status, 'completed');
    assert.deepEqual(dispatchedInputs(events, 'forecast'), [{ horizon: 6, asOf: '2026-03-31' }]);
    assert.match(
      (dispatchedInputs(events, 'write_report')[0] as { content: string }).content,
      /\| 2026-04 \| 1333\.3 \| 1200 \| 1466\.6 \|/,
    );
    assert.equal(dispatchedInputs(events, 'store_results').length, 4);
    assert.ok(
      state.status === 'completed' &&
        state.outputs['forecast_included'] === true &&
        state.outputs['forecast_total'] === 4000,
    );
  });

  const supportResponder =
    (known: boolean, escalate: boolean, hooks: string[] = ['support-escalation']): Responder =>
    (d) => {
      if (d.uses === 'mcp:automation/list_webhooks')
        return {
          webhooks: hooks.map((name, i) => ({
            id: `00000000-0000-4000-8000-00000000000${i}`,
            name,
            url: 'https://x.test',
            events: [],
          })),
        };
      if (d.uses === 'mcp:automation/send_email')
        return {
          email: {
            message_id: '<e@x>',
            accepted: ['support@localhost'],
            rejected: [],
            response: '250',
            deduplicated: false,
          },
        };
      if (d.uses === 'mcp:database/query')
        return {
          rows: known ? [{ id: 5, name: 'Cy', segment: 'smb', region: 'emea', plan: 'growth', open_tickets: 0 }] : [],
        };
      if (d.uses === 'agent:support_response') {
        return {
          intent: 'billing',
          sentiment: { label: escalate ? 'negative' : 'neutral', score: escalate ? -6 : 0 },
          escalation: {
            escalate,
            priority: escalate ? 'p1' : 'p3',
            reasons: escalate ? ['strongly negative tone'] : [],
          },
          draft: 'We refunded the duplicate charge.',
        };
      }
      if (d.uses === 'mcp:automation/send_webhook') return { delivery: { delivered: true } };
      if (d.uses === 'mcp:analytics/record_metric') return { id: '77' };
      throw new Error(`unexpected dispatch ${d.uses}`);
    };

  it('customer_support, known customer without escalation: escalate skipped, interaction logged', () => {
    const { state, events } = simulate(
      customerSupportTemplate,
      { customer_email: 'cy@example.com', query: 'Charged twice?' },
      supportResponder(true, false),
    );
    assert.equal(state.status, 'completed');
    assert.equal(statusOf(state, 'analyze_query_anonymous'), 'skipped');
    assert.equal(statusOf(state, 'escalate'), 'skipped');
    assert.equal(statusOf(state, 'escalate_email'), 'skipped');
    assert.deepEqual(dispatchedInputs(events, 'analyze_query'), [{ query: 'Charged twice?', customerId: 5 }]);
    assert.deepEqual((dispatchedInputs(events, 'log_interaction')[0] as { labels: unknown }).labels, {
      channel: 'email',
      intent: 'billing',
      priority: 'p3',
      escalation: 'not_needed',
      customer: '5',
      sentiment: 'neutral',
    });
    assert.ok(state.status === 'completed');
    assert.deepEqual(state.outputs, {
      customer_id: 5,
      response: 'We refunded the duplicate charge.',
      intent: 'billing',
      priority: 'p3',
      escalate_reasons: [],
      escalation: 'not_needed',
      escalated_via: 'none',
      approval: 'not_needed',
      approval_note: null,
      reply_sent: false,
      interaction_metric_id: '77',
    });
    assert.equal(statusOf(state, 'await_approval'), 'skipped');
  });

  it('customer_support, unknown e-mail, analysis says escalate: analysed without a customer, escalation sent', () => {
    const { state, events } = simulate(
      customerSupportTemplate,
      { customer_email: 'who@example.com', query: 'Cancel everything!' },
      supportResponder(false, true),
    );
    assert.equal(state.status, 'completed');
    assert.equal(statusOf(state, 'analyze_query'), 'skipped');
    assert.deepEqual(dispatchedInputs(events, 'analyze_query_anonymous'), [{ query: 'Cancel everything!' }]);
    const esc = dispatchedInputs(events, 'escalate')[0] as {
      webhook: string;
      event: string;
      payload: Record<string, unknown>;
    };
    assert.equal(esc.webhook, 'support-escalation');
    assert.equal(esc.event, 'support.escalation');
    assert.equal(esc.payload['customer'], null);
    assert.equal(esc.payload['priority'], 'p1');
    assert.ok(
      state.status === 'completed' && state.outputs['escalation'] === 'sent' && state.outputs['customer_id'] === null,
    );
    assert.equal(state.outputs['escalated_via'], 'webhook');
    assert.equal(statusOf(state, 'escalate_email'), 'skipped');
    // Nobody approved within approval_timeout_ms (default 4 h): the desk is mailed again, no reply goes out.
    assert.equal(state.outputs['approval'], 'timed_out');
    assert.equal(state.outputs['reply_sent'], false);
    assert.equal(statusOf(state, 'send_reply'), 'skipped');
    const further = dispatchedInputs(events, 'escalate_further') as { to: string; subject: string; text: string }[];
    assert.equal(further.length, 1);
    assert.equal(further[0]!.to, 'support@localhost');
    assert.equal(further[0]!.subject, '[unanswered] Support escalation waits for approval: who@example.com');
    assert.match(
      further[0]!.text,
      /within 14400000 ms\. Approve it with POST \/api\/v1\/workflows\/executions\/sim\/signals\/approve_reply/,
    );
    const waited = events.find((e) => e.type === 'WaitStarted')!;
    assert.equal(
      (waited.data as { timeoutAt: string }).timeoutAt,
      new Date(Date.parse((waited.data as { startedAt: string }).startedAt) + 14_400_000).toISOString(),
    );
  });

  it('customer_support, escalated and approved by the approve_reply signal: the drafted reply is mailed to the customer', () => {
    const { state, events } = simulate(
      customerSupportTemplate,
      { customer_email: 'cy@example.com', query: 'Cancel everything!', approval_timeout_ms: 1000 },
      supportResponder(true, true),
      { name: 'approve_reply', payload: { approved: true, note: 'checked' } },
    );
    assert.equal(state.status, 'completed');
    assert.deepEqual(dispatchedInputs(events, 'send_reply'), [
      {
        to: 'cy@example.com',
        subject: 'Re: your email query',
        text: 'We refunded the duplicate charge.',
        idempotency_key: 'reply-sim',
      },
    ]);
    assert.equal(statusOf(state, 'escalate_further'), 'skipped');
    assert.ok(state.status === 'completed');
    assert.deepEqual(
      [state.outputs['approval'], state.outputs['approval_note'], state.outputs['reply_sent']],
      ['approved', 'checked', true],
    );
    // Not approved: nothing is sent.
    const no = simulate(
      customerSupportTemplate,
      { customer_email: 'cy@example.com', query: 'Cancel everything!' },
      supportResponder(true, true),
      {
        name: 'approve_reply',
        payload: { approved: false },
      },
    );
    assert.ok(no.state.status === 'completed');
    assert.deepEqual([no.state.outputs['approval'], no.state.outputs['reply_sent']], ['rejected', false]);
    assert.deepEqual(dispatchedInputs(no.events, 'send_reply'), []);
  });

  it('customer_support, no escalation webhook registered: the escalation is mailed to support_email, once per execution', () => {
    const { state, events } = simulate(
      customerSupportTemplate,
      { customer_email: 'cy@example.com', query: 'Cancel everything!', channel: 'chat' },
      supportResponder(true, true, ['something-else']),
    );
    assert.equal(state.status, 'completed');
    assert.equal(statusOf(state, 'escalate'), 'skipped');
    const mail = dispatchedInputs(events, 'escalate_email') as {
      to: string;
      subject: string;
      text: string;
      idempotency_key: string;
    }[];
    assert.equal(mail.length, 1);
    assert.equal(mail[0]!.to, 'support@localhost');
    assert.equal(mail[0]!.subject, '[p1] Support escalation: cy@example.com');
    assert.equal(
      mail[0]!.text,
      'A chat query from cy@example.com (Cy, customer 5) needs a person.\n\nPriority: p1\nIntent: billing\nReasons: strongly negative tone\n\nQuery:\nCancel everything!\n\nDrafted reply:\nWe refunded the duplicate charge.',
    );
    assert.equal(mail[0]!.idempotency_key, 'escalation-sim:escalate_email');
    assert.ok(state.status === 'completed');
    assert.equal(state.outputs['escalation'], 'sent');
    assert.equal(state.outputs['escalated_via'], 'email');
    assert.equal(
      (dispatchedInputs(events, 'log_interaction')[0] as { labels: { escalation: string } }).labels.escalation,
      'sent',
    );
    // Another address by input.
    const other = simulate(
      customerSupportTemplate,
      { customer_email: 'cy@example.com', query: 'Cancel everything!', support_email: 'desk@corp.example' },
      supportResponder(true, true, []),
    );
    assert.equal((dispatchedInputs(other.events, 'escalate_email')[0] as { to: string }).to, 'desk@corp.example');
  });
});

describe('customer_onboarding: what its compensation removes', () => {
  const ann = { customer: { name: 'Ann Lee', email: 'Ann@Example.com', plan: 'growth', seats: 8 } };
  /** Start, the lookup finds nothing, then `created` answers create_records; the events so far. */
  const upTo = (created: WorkflowCommand['type'], inserted = true) => {
    let state: WorkflowExecutionState = initialWorkflowState;
    const send = (c: WorkflowCommand) => {
      const out = decideWorkflow(c, state);
      state = out.reduce(evolveWorkflow, state);
      return out;
    };
    send({
      type: 'StartWorkflow',
      data: { executionId: 'sim', definition: customerOnboardingTemplate, input: ann, seed: 7 },
      metadata: meta(at(0)),
    });
    send({ type: 'RecordStepDispatched', data: { stepId: 'check_existing', attempt: 1 }, metadata: meta(at(1)) });
    send({
      type: 'RecordStepSucceeded',
      data: { stepId: 'check_existing', attempt: 1, output: { rows: [] } },
      metadata: meta(at(2)),
    });
    send({ type: 'RecordStepDispatched', data: { stepId: 'create_records', attempt: 1 }, metadata: meta(at(3)) });
    const outcome =
      created === 'RecordStepSucceeded'
        ? send({
            type: 'RecordStepSucceeded',
            data: {
              stepId: 'create_records',
              attempt: 1,
              output: { rows: [{ customer_id: 101, subscription_id: 401, created: inserted }] },
            },
            metadata: meta(at(4)),
          })
        : send({
            type: 'RecordStepFailed',
            data: {
              stepId: 'create_records',
              attempt: 1,
              error: { code: 'timeout', message: 'no answer in 15000 ms', retryable: false },
            },
            metadata: meta(at(4)),
          });
    const cancel = () => send({ type: 'RequestCancel', data: { reason: 'changed my mind' }, metadata: meta(at(5)) });
    return { outcome, cancel };
  };
  const compensationParams = (events: readonly WorkflowEvent[]) => {
    const started = events.find((e) => e.type === 'CompensationStarted');
    assert.ok(started?.type === 'CompensationStarted', 'the compensation starts');
    assert.equal(started.data.stepId, 'remove_customer');
    return (started.data.input as { params: unknown[] }).params;
  };

  // The rows name the execution that made them (`onboarded_by`): the compensation goes by that,
  // not by what create_records answered (see onboarding-sql.int.spec.ts for the SQL on PostgreSQL).
  it('after create_records inserted: the rows this execution made', () => {
    assert.deepEqual(compensationParams(upTo('RecordStepSucceeded').cancel()), ['sim']);
  });
  it('after create_records answered the row another onboarding of the e-mail made: already a customer, nothing more runs, nothing to remove', () => {
    const { outcome } = upTo('RecordStepSucceeded', false);
    const done = outcome.find((e) => e.type === 'WorkflowCompleted');
    assert.ok(done?.type === 'WorkflowCompleted', 'it completes at once: no welcome, no follow-ups');
    assert.equal(done.data.outputs['status'], 'already_customer');
    assert.equal(done.data.outputs['customer_id'], 101);
    assert.equal(outcome.filter((e) => e.type === 'CompensationStarted').length, 0);
  });
  it('after create_records failed without an answer: what it made before its answer was lost', () => {
    assert.deepEqual(compensationParams(upTo('RecordStepFailed').outcome), ['sim']);
  });

  it('canceled after follow-ups were scheduled: each schedule made is deleted by its id (one already gone counts as deleted), the one in flight once it is made; then canceled', () => {
    let state: WorkflowExecutionState = initialWorkflowState;
    const send = (c: WorkflowCommand) => {
      const out = decideWorkflow(c, state);
      state = out.reduce(evolveWorkflow, state);
      return out;
    };
    const m = (ms: number) => meta(at(ms));
    const item = (i: number) => ({ stepId: 'schedule_follow_ups', itemIndex: i });
    const made = (i: number) => ({
      schedule: { id: `sched-${i}`, name: `onboarding-101-after-${['1d', '7d', '30d'][i]}` },
    });
    send({
      type: 'StartWorkflow',
      data: { executionId: 'sim', definition: customerOnboardingTemplate, input: ann, seed: 7 },
      metadata: m(0),
    });
    send({
      type: 'RecordStepSucceeded',
      data: { stepId: 'check_existing', attempt: 1, output: { rows: [] } },
      metadata: m(1),
    });
    send({
      type: 'RecordStepSucceeded',
      data: {
        stepId: 'create_records',
        attempt: 1,
        output: { rows: [{ customer_id: 101, subscription_id: 401, created: true }] },
      },
      metadata: m(2),
    });
    // The welcome is being written; follow-ups 0 and 1 are with the server, 0 is made (2 is then sent too).
    send({ type: 'RecordStepDispatched', data: { stepId: 'welcome_content', attempt: 1 }, metadata: m(3) });
    send({ type: 'RecordStepDispatched', data: { ...item(0), attempt: 1 }, metadata: m(3) });
    send({ type: 'RecordStepDispatched', data: { ...item(1), attempt: 1 }, metadata: m(3) });
    send({ type: 'RecordStepSucceeded', data: { ...item(0), attempt: 1, output: made(0) }, metadata: m(4) });
    send({ type: 'RecordStepDispatched', data: { ...item(2), attempt: 1 }, metadata: m(4) });
    send({ type: 'RecordStepSucceeded', data: { ...item(2), attempt: 1, output: made(2) }, metadata: m(5) });

    const canceled = send({ type: 'RequestCancel', data: { reason: 'changed my mind' }, metadata: m(6) });
    const undo = (events: readonly WorkflowEvent[]) =>
      events.flatMap((e) =>
        e.type === 'CompensationStarted'
          ? [[e.data.stepId, e.data.itemIndex ?? null, e.data.uses, e.data.input, e.data.idempotencyKey]]
          : [],
      );
    assert.deepEqual(undo(canceled), [
      [
        'remove_customer',
        null,
        'mcp:database_writer/query',
        { sql: customerOnboardingTemplate.steps.find((x) => x.id === 'remove_customer')!.with.sql, params: ['sim'] },
        'sim:compensate:remove_customer:1',
      ],
      [
        'delete_follow_up',
        0,
        'mcp:automation/delete_schedule',
        { schedule: 'sched-0', missing_ok: true },
        'sim:compensate:delete_follow_up[0]:1',
      ],
      [
        'delete_follow_up',
        2,
        'mcp:automation/delete_schedule',
        { schedule: 'sched-2', missing_ok: true },
        'sim:compensate:delete_follow_up[2]:1',
      ],
    ]);
    // Item 1 was with the server when the cancel came: let finish, its schedule is deleted too.
    assert.deepEqual(
      undo(send({ type: 'RecordStepSucceeded', data: { ...item(1), attempt: 1, output: made(1) }, metadata: m(7) })),
      [
        [
          'delete_follow_up',
          1,
          'mcp:automation/delete_schedule',
          { schedule: 'sched-1', missing_ok: true },
          'sim:compensate:delete_follow_up[1]:1',
        ],
      ],
    );
    send({
      type: 'RecordStepFailed',
      data: {
        stepId: 'welcome_content',
        attempt: 1,
        error: { code: 'canceled', message: 'canceled', retryable: false },
      },
      metadata: m(8),
    });
    send({
      type: 'RecordCompensationSucceeded',
      data: { stepId: 'remove_customer', output: { rows: [{ id: 101 }] } },
      metadata: m(9),
    });
    for (const i of [2, 0])
      send({
        type: 'RecordCompensationSucceeded',
        data: { stepId: 'delete_follow_up', itemIndex: i, output: { deleted: 'x' } },
        metadata: m(9),
      });
    assert.equal(state.status, 'canceling');
    const end = send({
      type: 'RecordCompensationSucceeded',
      // Deleted by hand meanwhile: the server answers that it was not there, and that is an undo done.
      data: {
        stepId: 'delete_follow_up',
        itemIndex: 1,
        output: { deleted: false, missing: true, schedule: 'sched-1' },
      },
      metadata: m(10),
    });
    assert.deepEqual(
      end.map((e) => e.type),
      ['CompensationSucceeded', 'StepStopped', 'WorkflowCanceled'], // the step its items ran under ends with the execution,
    );
  });
});
