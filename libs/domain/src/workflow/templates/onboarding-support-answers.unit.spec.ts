import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkflowDefinitionInput } from '../definition/schema.js';
import { decideWorkflow, evolveWorkflow, initialWorkflowState } from '../execution/decider.js';
import { nextActions, type DispatchAction } from '../execution/saga.js';
import { at, meta } from '../execution/spec-helpers.js';
import type { WorkflowCommand, WorkflowEvent, WorkflowExecutionState } from '../execution/types.js';
import { customerOnboardingTemplate, customerSupportTemplate } from './index.js';

/**
 * The built-in templates as the engine runs them (the pure
 * decider and saga): what an onboarding that lost the race for its e-mail sends, what repeated
 * follow-up delays schedule, and what a malformed approval signal does.
 */

type Responder = (d: DispatchAction) => unknown;

/**
 * Drive an execution to its end as the orchestrator would. Each wait takes the next of `signals`
 * (its timer fires once they are used up).
 */
function run(
  def: WorkflowDefinitionInput,
  input: unknown,
  respond: Responder,
  signals: Record<string, unknown>[] = [],
) {
  let state: WorkflowExecutionState = initialWorkflowState;
  const events: WorkflowEvent[] = [];
  const answers: { signal: string; disposition: unknown }[] = [];
  let clock = 0;
  const send = (c: WorkflowCommand) => {
    const out = decideWorkflow(c, state);
    events.push(...out);
    state = out.reduce(evolveWorkflow, state);
    return out;
  };
  send({ type: 'StartWorkflow', data: { executionId: 'sim', definition: def, input, seed: 7 }, metadata: meta(at(0)) });
  const pending = [...signals];
  for (let round = 0; round < 100; round++) {
    const actions = nextActions(state, at(clock));
    const wait = actions.timers.find((t) => t.kind === 'wait_timeout');
    if (!actions.terminal && actions.dispatch.length === 0 && wait) {
      clock += 10;
      const payload = pending.shift();
      if (payload) {
        const out = send({
          type: 'SendSignal',
          data: { signalId: `sig-${round}`, name: 'approve_reply', payload },
          metadata: meta(at(clock)),
        });
        const rec = out.find((e) => e.type === 'SignalReceived');
        answers.push({
          signal: JSON.stringify(payload),
          disposition: (rec?.data as { disposition?: unknown }).disposition,
        });
      } else {
        clock = Math.max(clock, Date.parse(wait.dueAt) - Date.parse(at(0)));
        send({ ...wait.command, metadata: meta(at(clock)) });
      }
      continue;
    }
    if (actions.terminal || actions.dispatch.length === 0) break;
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
      send({
        type: 'RecordStepSucceeded',
        data: { ...unit, attempt: d.attempt, output: respond(d) },
        metadata: meta(at(clock + 5)),
      });
    }
  }
  return { state, events, answers };
}

const dispatched = (events: WorkflowEvent[], stepId: string) =>
  events
    .filter((e) => e.type === 'StepScheduled' && e.data.stepId === stepId)
    .map((e) => (e.data as { input: unknown }).input);
const outputs = (state: WorkflowExecutionState): Record<string, unknown> => {
  assert.ok(state.status === 'completed', `completed, not ${state.status}`);
  return state.outputs;
};

describe('customer_onboarding: the customer it made, and one schedule per follow-up', () => {
  /** create_records answers a row: `created` says whether this execution made it (see the template's SQL). */
  const responder =
    (created: boolean): Responder =>
    (d) => {
      const sql = String((d.input as { sql?: string }).sql ?? '');
      if (sql.startsWith('SELECT id FROM business.customers')) return { rows: [] };
      if (sql.startsWith('WITH plan'))
        return { rows: [{ customer_id: 501, subscription_id: 901, signup_date: '2026-01-31', created }] };
      if (d.uses === 'agent:marketing_content') return { subject: 'Welcome to Switchyard', text: 'Hi' };
      if (d.uses === 'mcp:automation/send_email') return { email: { accepted: ['x@example.com'] } };
      if (d.uses === 'mcp:automation/create_schedule')
        return { schedule: { name: (d.input as { name: string }).name } };
      throw new Error(`unexpected dispatch ${d.uses}`);
    };

  it('two onboardings of one e-mail at once: the one whose create_records found the other’s row is already a customer and sends nothing', () => {
    const { state, events } = run(
      customerOnboardingTemplate,
      { customer: { name: 'Twice B', email: 'TWICE@example.com' } },
      responder(false),
    );
    assert.deepEqual(outputs(state), {
      status: 'already_customer',
      customer_id: 501,
      subscription_id: null,
      welcome_sent: false,
      follow_ups: [],
      welcome_error: null,
      follow_up_error: null,
    });
    for (const step of ['welcome_content', 'send_welcome', 'schedule_follow_ups'])
      assert.deepEqual(dispatched(events, step), [], `${step} does not run`);
    // The one that made the row onboards as before.
    const first = run(
      customerOnboardingTemplate,
      { customer: { name: 'Twice A', email: 'twice@example.com' } },
      responder(true),
    );
    assert.equal(outputs(first.state)['status'], 'onboarded');
    assert.equal(dispatched(first.events, 'send_welcome').length, 1);
  });

  it('a delay given twice is two schedules, and the output lists what was scheduled', () => {
    const { state, events } = run(
      customerOnboardingTemplate,
      { customer: { name: 'Dup', email: 'dup@example.com' }, follow_up_after: ['2s', '2s', '1s', '2s'] },
      responder(true),
    );
    const names = (dispatched(events, 'schedule_follow_ups') as { name: string; after: string }[]).map((i) => [
      i.name,
      i.after,
    ]);
    assert.deepEqual(names, [
      ['onboarding-501-after-2s', '2s'],
      ['onboarding-501-after-2s-2', '2s'],
      ['onboarding-501-after-1s', '1s'],
      ['onboarding-501-after-2s-4', '2s'],
    ]);
    assert.equal(new Set(names.map(([n]) => n)).size, 4, 'each entry its own schedule');
    assert.deepEqual(
      outputs(state)['follow_ups'],
      names.map(([n]) => n),
    );
  });
});

describe('customer_support: only { approved: boolean, note?: string } answers the approval', () => {
  const responder: Responder = (d) => {
    if (d.uses === 'mcp:automation/list_webhooks') return { webhooks: [] };
    if (d.uses === 'mcp:automation/send_email') return { email: { accepted: ['x@example.com'] } };
    if (d.uses === 'mcp:database/query') return { rows: [] };
    if (d.uses === 'agent:support_response')
      return {
        intent: 'billing',
        sentiment: { label: 'negative', score: -6 },
        escalation: { escalate: true, priority: 'p1', reasons: ['legal threat'] },
        draft: 'We refunded the duplicate charge.',
      };
    if (d.uses === 'mcp:analytics/record_metric') return { id: '7' };
    throw new Error(`unexpected dispatch ${d.uses}`);
  };
  const input = { customer_email: 'victim.customer@example.com', query: 'Unacceptable! Legal action.' };
  const result = (signals: Record<string, unknown>[]) => {
    const r = run(customerSupportTemplate, input, responder, signals);
    const o = outputs(r.state);
    return { ...r, approval: o['approval'], note: o['approval_note'], sent: dispatched(r.events, 'send_reply').length };
  };

  it('a malformed approval is no rejection: the ticket waits for a corrected one, which decides', () => {
    for (const malformed of [
      { approved: 'no' },
      { approve: true },
      { approved: 'true' },
      { approved: true, timed_out: true },
      {},
    ]) {
      const r = result([malformed, { approved: true, note: 'checked' }]);
      assert.deepEqual([r.approval, r.note, r.sent], ['approved', 'checked', 1], JSON.stringify(malformed));
      assert.deepEqual(
        r.answers.map((a) => a.disposition),
        ['consumed', 'consumed'],
      );
      const rejected = result([malformed, { approved: false }]);
      assert.deepEqual([rejected.approval, rejected.sent], ['rejected', 0], JSON.stringify(malformed));
    }
  });

  it('a well-formed answer decides at once; a second malformed one ends it invalid, nothing sent', () => {
    assert.deepEqual([result([{ approved: true }]).approval, result([{ approved: true }]).sent], ['approved', 1]);
    const no = result([{ approved: false, note: 'not like this' }]);
    assert.deepEqual([no.approval, no.note, no.sent], ['rejected', 'not like this', 0]);
    const twice = result([{ approved: 'yes' }, { approved: 1 }]);
    assert.deepEqual([twice.approval, twice.note, twice.sent], ['invalid', null, 0]);
    assert.deepEqual(dispatched(twice.events, 'escalate_further'), [], 'not a timeout either');
  });

  it('no signal in time is the timeout, which no payload can fake', () => {
    const timedOut = result([]);
    assert.deepEqual([timedOut.approval, timedOut.sent], ['timed_out', 0]);
    assert.equal(dispatched(timedOut.events, 'escalate_further').length, 1);
    // A payload naming timed_out is malformed, not a timeout: the ticket waits again.
    const faked = result([{ approved: false, timed_out: true }]);
    assert.equal(faked.approval, 'timed_out', 'the second wait timed out, really');
    assert.equal(dispatched(faked.events, 'escalate_further').length, 1);
    assert.equal(faked.answers.length, 1);
    assert.equal(
      faked.events.filter((e) => e.type === 'WaitStarted').length,
      2,
      'it waited a second time after the faked one',
    );
  });
});
