import type { WorkflowDefinitionInput } from '../definition/schema.js';

const CUSTOMER = 'steps.fetch_context.output.rows';
/** The analysis of whichever analyse step ran (exactly one does: known customer or not). */
const AN =
  "(steps.analyze_query.status == 'succeeded' ? steps.analyze_query.output : steps.analyze_query_anonymous.output)";
const ANALYSED = "(steps.analyze_query.status == 'succeeded' || steps.analyze_query_anonymous.status == 'succeeded')";
const ESCALATION =
  "(steps.escalate.status == 'succeeded' || steps.escalate_email.status == 'succeeded' ? 'sent' : " +
  "(steps.escalate.status == 'failed' || steps.escalate_email.status == 'failed' ? 'failed' : 'not_needed'))";
/** The escalation went out (by webhook or e-mail). */
const ESCALATED = "(steps.escalate.status == 'succeeded' || steps.escalate_email.status == 'succeeded')";
/**
 * Whether `p` is an approval as documented, `{ approved: boolean, note?: string }` and nothing
 * else. Anything other (`{"approved": "no"}`, a typo such as `{"approve": true}`) is no answer: a
 * wait step cannot refuse a signal by its payload, so the ticket waits once more for a corrected
 * one (await_approval_again) instead of taking a malformed approval as a rejection.
 */
const wellFormed = (p: string): string =>
  `(${p} != null && type(${p}) == map && 'approved' in ${p} && type(${p}.approved) == bool && ` +
  `${p}.all(k, k == 'approved' || k == 'note') && (!('note' in ${p}) || type(${p}.note) == string))`;
const FIRST = 'steps.await_approval.output';
/** The answer that decides: the second wait's when there was one (the first was malformed), else the first's. */
const APPROVAL = `(steps.await_approval_again.status == 'succeeded' ? steps.await_approval_again.output : ${FIRST})`;
const WAITED = "(steps.await_approval.status == 'succeeded')";
/** A wait that timed out succeeds with output null (`on_timeout: continue`), which no signal can send. */
const APPROVAL_TIMED_OUT = `(${WAITED} && ${APPROVAL} == null)`;
const APPROVED = `(${WAITED} && ${wellFormed(APPROVAL)} && ${APPROVAL}.approved == true)`;
const REJECTED = `(${WAITED} && ${wellFormed(APPROVAL)} && ${APPROVAL}.approved == false)`;
/** Whether the escalation webhook is registered (if the listing failed: no, and the desk gets a mail). */
const HOOK =
  "(steps.find_escalation_webhook.status == 'succeeded' && " +
  'steps.find_escalation_webhook.output.webhooks.exists(w, w.name == input.escalation_webhook || w.id == input.escalation_webhook))';

/**
 * Customer support for one incoming query:
 * 1. fetch the customer's context from the business data (database server, read-only);
 * 2. analyse the query and draft the response (`agent:support_response`: intent, sentiment, urgency,
 *    knowledge-base article, escalation decision with reasons, drafted reply). A known customer is
 *    analysed with their account facts (segment, revenue, open tickets); an unknown e-mail without
 *    (the agent takes no null customer id, hence two mutually exclusive steps);
 * 3. escalate to humans only when the analysis says so: through the `escalation_webhook` when it is
 *    registered, else by e-mail (`send_email`) to `support_email`, so a fresh system escalates too;
 * 4. after an escalation, wait for a person's approval of the drafted reply: the signal
 *    `approve_reply` with `{ approved: boolean, note? }` (POST .../executions/{id}/signals/approve_reply).
 *    Approved: the reply is mailed to the customer; not approved: nothing is sent; no signal within
 *    `approval_timeout_ms` (default 4 h): the desk is mailed again at `support_email` (escalated further).
 *    A payload of another shape is no answer: the ticket waits once more for a corrected signal
 *    (a second malformed one ends it `approval: 'invalid'`, nothing sent);
 * 5. log the interaction as an analytics metric (`support.interaction`, labelled with channel,
 *    intent, priority, escalation, customer), which the default (read-only database) system permits.
 * A failed escalation does not lose the answer: the output says `escalation: 'failed'`; `escalated_via`
 * says which way it went (`webhook`, `email` or `none`).
 */
export const customerSupportTemplate = {
  id: 'customer_support',
  // v3: the escalation and the logged interaction carry per-execution idempotency keys.
  // v4: without a registered escalation webhook the escalation is mailed to support_email.
  // v5: an escalated reply waits for the `approve_reply` signal (approval_timeout_ms, then escalated further).
  // v6: only `{ approved: boolean, note?: string }` is an answer; a malformed one is waited past once more.
  version: 6,
  name: 'Customer support',
  description:
    'Fetch customer context, analyse the query and draft the response, escalate when needed, log the interaction.',
  input: {
    type: 'object',
    properties: {
      customer_email: { type: 'string', format: 'email' },
      query: { type: 'string', minLength: 3, maxLength: 10_000 },
      channel: { type: 'string', enum: ['email', 'chat', 'phone'], default: 'email' },
      escalation_webhook: {
        type: 'string',
        minLength: 1,
        description: 'Registered webhook (name or id) of the escalation desk',
        default: 'support-escalation',
      },
      support_email: {
        type: 'string',
        minLength: 3,
        maxLength: 320,
        pattern: '^[^\\s@]+@[^\\s@]+$',
        description: 'Where an escalation is mailed when the escalation webhook is not registered',
        default: 'support@localhost',
      },
      approval_timeout_ms: {
        type: 'integer',
        minimum: 100,
        maximum: 2_592_000_000,
        description:
          'How long an escalated reply waits for the approve_reply signal before the desk is mailed again (default 4 h)',
        default: 14_400_000,
      },
    },
    required: ['customer_email', 'query'],
    additionalProperties: false,
  },
  steps: [
    {
      id: 'fetch_context',
      name: 'Fetch customer context',
      uses: 'mcp:database/query',
      with: {
        sql:
          'SELECT c.id, c.name, c.segment, c.region, ' +
          '(SELECT s.plan FROM business.subscriptions s WHERE s.customer_id = c.id ORDER BY s.started_on DESC LIMIT 1) AS plan, ' +
          '(SELECT count(*)::int FROM business.tickets t WHERE t.customer_id = c.id AND t.resolved_at IS NULL) AS open_tickets ' +
          'FROM business.customers c WHERE lower(c.email) = lower($1::text)',
        params: ['${{ input.customer_email }}'],
      },
      retry: {
        attempts: 3,
        backoff: { initialMs: 500, factor: 2, maxMs: 5000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 15_000,
    },
    {
      id: 'find_escalation_webhook',
      name: 'Look up the escalation webhook',
      uses: 'mcp:automation/list_webhooks',
      // Only that one: the listing is paged, and the escalation webhook may not be on its first page.
      with: { webhook: '${{ input.escalation_webhook }}' },
      retry: {
        attempts: 3,
        backoff: { initialMs: 500, factor: 2, maxMs: 5000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 15_000,
      // Not knowing means mailing the desk, not failing the query.
      on_error: 'continue',
    },
    {
      id: 'analyze_query',
      name: 'Analyse the query and draft the response (known customer)',
      uses: 'agent:support_response',
      needs: ['fetch_context'],
      if: `size(${CUSTOMER}) > 0`,
      with: { query: '${{ input.query }}', customerId: `\${{ ${CUSTOMER}[0].id }}` },
      retry: {
        attempts: 2,
        backoff: { initialMs: 1000, factor: 2, maxMs: 10_000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 60_000,
    },
    {
      id: 'analyze_query_anonymous',
      name: 'Analyse the query and draft the response (unknown e-mail)',
      uses: 'agent:support_response',
      needs: ['fetch_context'],
      if: `size(${CUSTOMER}) == 0`,
      with: { query: '${{ input.query }}' },
      retry: {
        attempts: 2,
        backoff: { initialMs: 1000, factor: 2, maxMs: 10_000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 60_000,
    },
    {
      id: 'escalate',
      name: 'Escalate to a human',
      uses: 'mcp:automation/send_webhook',
      needs: ['analyze_query', 'analyze_query_anonymous', 'find_escalation_webhook'],
      if: `${ANALYSED} && ${AN}.escalation.escalate == true && ${HOOK}`,
      with: {
        webhook: '${{ input.escalation_webhook }}',
        event: 'support.escalation',
        // One escalation per execution, however often the step is re-dispatched or retried.
        idempotency_key: 'escalation-${{ execution.id }}',
        payload: {
          customer_email: '${{ input.customer_email }}',
          customer: `\${{ size(${CUSTOMER}) > 0 ? ${CUSTOMER}[0] : null }}`,
          channel: '${{ input.channel }}',
          query: '${{ input.query }}',
          priority: `\${{ ${AN}.escalation.priority }}`,
          reasons: `\${{ ${AN}.escalation.reasons }}`,
          intent: `\${{ ${AN}.intent }}`,
          sentiment: `\${{ ${AN}.sentiment }}`,
          draft: `\${{ ${AN}.draft }}`,
        },
      },
      retry: {
        attempts: 3,
        backoff: { initialMs: 1000, factor: 2, maxMs: 20_000, jitter: 0.3 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 60_000,
      on_error: 'continue',
    },
    {
      id: 'escalate_email',
      name: 'Escalate to a human by e-mail',
      uses: 'mcp:automation/send_email',
      needs: ['analyze_query', 'analyze_query_anonymous', 'find_escalation_webhook'],
      if: `${ANALYSED} && ${AN}.escalation.escalate == true && !${HOOK}`,
      with: {
        to: '${{ input.support_email }}',
        subject: `[\${{ ${AN}.escalation.priority }}] Support escalation: \${{ input.customer_email }}`,
        text:
          `\${{ 'A ' + input.channel + ' query from ' + input.customer_email + ` +
          `(size(${CUSTOMER}) > 0 ? ' (' + ${CUSTOMER}[0].name + ', customer ' + string(${CUSTOMER}[0].id) + ')' : ' (not a known customer)') + ` +
          `' needs a person.\\n\\nPriority: ' + ${AN}.escalation.priority + '\\nIntent: ' + ${AN}.intent + ` +
          `'\\nReasons: ' + ${AN}.escalation.reasons.join('; ') + '\\n\\nQuery:\\n' + input.query + '\\n\\nDrafted reply:\\n' + ${AN}.draft }}`,
        // One escalation per execution, however often the step is re-dispatched or retried.
        idempotency_key: 'escalation-${{ execution.id }}:escalate_email',
      },
      retry: {
        attempts: 3,
        backoff: { initialMs: 1000, factor: 2, maxMs: 20_000, jitter: 0.3 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 60_000,
      on_error: 'continue',
    },
    {
      id: 'await_approval',
      name: 'Wait for a person to approve the escalated reply',
      needs: ['escalate', 'escalate_email'],
      // Only escalated tickets wait.
      if: ESCALATED,
      wait: {
        signal: 'approve_reply',
        timeout_ms: '${{ input.approval_timeout_ms }}',
        // Output null: a signal's payload is always an object, so no signal passes for the timeout.
        on_timeout: 'continue',
      },
    },
    {
      id: 'await_approval_again',
      name: 'The approval was malformed: wait for a corrected one',
      needs: ['await_approval'],
      if: `${WAITED} && ${FIRST} != null && !${wellFormed(FIRST)}`,
      wait: {
        signal: 'approve_reply',
        timeout_ms: '${{ input.approval_timeout_ms }}',
        on_timeout: 'continue',
      },
    },
    {
      id: 'send_reply',
      name: 'Send the approved reply to the customer',
      uses: 'mcp:automation/send_email',
      needs: ['await_approval', 'await_approval_again'],
      if: APPROVED,
      with: {
        to: '${{ input.customer_email }}',
        subject: 'Re: your ${{ input.channel }} query',
        text: `\${{ ${AN}.draft }}`,
        // One reply per execution, however often the step is re-dispatched or retried.
        idempotency_key: 'reply-${{ execution.id }}',
      },
      retry: {
        attempts: 3,
        backoff: { initialMs: 1000, factor: 2, maxMs: 20_000, jitter: 0.3 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 60_000,
      on_error: 'continue',
    },
    {
      id: 'escalate_further',
      name: 'Nobody approved in time: mail the desk again',
      uses: 'mcp:automation/send_email',
      needs: ['await_approval', 'await_approval_again'],
      if: APPROVAL_TIMED_OUT,
      with: {
        to: '${{ input.support_email }}',
        subject: `[unanswered] Support escalation waits for approval: \${{ input.customer_email }}`,
        text:
          "${{ 'Nobody approved the drafted reply to ' + input.customer_email + ' within ' + string(input.approval_timeout_ms) + ' ms. " +
          "Approve it with POST /api/v1/workflows/executions/' + execution.id + '/signals/approve_reply (it is not sent until then).' }}",
        idempotency_key: 'escalation-${{ execution.id }}:further',
      },
      retry: {
        attempts: 3,
        backoff: { initialMs: 1000, factor: 2, maxMs: 20_000, jitter: 0.3 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 60_000,
      on_error: 'continue',
    },
    {
      id: 'log_interaction',
      name: 'Log the interaction',
      uses: 'mcp:analytics/record_metric',
      needs: ['escalate', 'escalate_email'],
      // Escalation is usually skipped (or may have failed): the interaction is logged either way.
      if: ANALYSED,
      with: {
        // One sample per execution, however often the step is re-dispatched.
        idempotency_key: 'interaction-${{ execution.id }}',
        name: 'support.interaction',
        value: 1,
        labels: {
          channel: '${{ input.channel }}',
          intent: `\${{ ${AN}.intent }}`,
          priority: `\${{ ${AN}.escalation.priority }}`,
          escalation: `\${{ ${ESCALATION} }}`,
          customer: `\${{ size(${CUSTOMER}) > 0 ? string(${CUSTOMER}[0].id) : 'unknown' }}`,
          sentiment: `\${{ ${AN}.sentiment.label }}`,
        },
      },
      retry: {
        attempts: 3,
        backoff: { initialMs: 500, factor: 2, maxMs: 5000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 15_000,
    },
  ],
  outputs: {
    customer_id: `\${{ size(${CUSTOMER}) > 0 ? ${CUSTOMER}[0].id : null }}`,
    response: `\${{ ${AN}.draft }}`,
    intent: `\${{ ${AN}.intent }}`,
    priority: `\${{ ${AN}.escalation.priority }}`,
    escalate_reasons: `\${{ ${AN}.escalation.reasons }}`,
    escalation: `\${{ ${ESCALATION} }}`,
    escalated_via:
      "${{ steps.escalate.status == 'succeeded' ? 'webhook' : (steps.escalate_email.status == 'succeeded' ? 'email' : 'none') }}",
    approval: `\${{ steps.await_approval.status == 'skipped' ? 'not_needed' : (steps.await_approval.status != 'succeeded' ? 'failed' : (${APPROVAL_TIMED_OUT} ? 'timed_out' : (${APPROVED} ? 'approved' : (${REJECTED} ? 'rejected' : 'invalid')))) }}`,
    approval_note: `\${{ ${WAITED} && ${wellFormed(APPROVAL)} && 'note' in ${APPROVAL} ? ${APPROVAL}.note : null }}`,
    reply_sent: "${{ steps.send_reply.status == 'succeeded' }}",
    interaction_metric_id:
      "${{ steps.log_interaction.status == 'succeeded' ? steps.log_interaction.output.id : null }}",
  },
} as const satisfies WorkflowDefinitionInput;
