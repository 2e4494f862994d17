import type { WorkflowDefinitionInput } from '../definition/schema.js';

const CREATED = 'steps.create_records.output.rows[0]';
/**
 * This execution made the customer: create_records answered its own row (`created`, true for the
 * row it made whichever attempt's answer came back). An onboarding of the same e-mail running at
 * the same time finds the other's row (`created: false`): that customer was already one, and gets
 * no second welcome nor follow-ups.
 */
const MADE = `(steps.create_records.status == 'succeeded' && size(steps.create_records.output.rows) > 0 && ${CREATED}.created == true)`;

/**
 * Onboard a customer into the demo business data set:
 * 1. the input schema validates the customer data, then a lookup checks the e-mail is not a customer yet;
 * 2. one SQL statement creates the `business.customers` row and its `business.subscriptions` row
 *    (price per seat from the plan list). This needs the database server with writes allowed
 *    (`DATABASE_ALLOW_WRITES=true`); on the read-only default the step fails with a `forbidden`
 *    "writes are not allowed" error and the execution fails saying so. Re-running the statement
 *    returns the row it created (idempotent against a retried dispatch);
 * 3. the welcome e-mail from the content agent (`agent:marketing_content`, kind `welcome`, for the
 *    customer just made: its name, plan and seats, next steps; its subject and plain-text body),
 *    mailed to the customer with `send_email` (SMTP_URL, or the development mailbox), keyed by the
 *    execution and the step so a re-dispatched step never mails twice;
 * 4. one durable one-shot schedule per `follow_up_after` delay (`create_schedule` with `after`, an
 *    e-mail target): the automation server mails the follow-up when it fires, once.
 * Steps 3 and 4 run only for the customer this execution made: an onboarding of the same e-mail
 * that ran at the same time and made it first answers `already_customer` and sends nothing.
 * Sending and scheduling run in parallel. Neither a failed send nor a failed schedule undoes the
 * onboarding (`continue`; the outputs carry `welcome_error` / `follow_up_error`); cancelling after the
 * records exist runs `remove_customer`, and `delete_follow_up` for each follow-up schedule made
 * (one still being made when the cancel came, once it is; one already gone counts as deleted).
 */
export const customerOnboardingTemplate = {
  id: 'customer_onboarding',
  // v4: the welcome and the follow-ups are e-mails (send_email, one-shot e-mail schedules), no webhooks to register.
  // v5: the compensation removes only the customer create_records reports it inserted (its id), not any customer with the input's e-mail.
  // v6: the customer's and the subscription's ids come from identity columns (max + 1 collided under
  // load); the row names the execution that made it, which the compensation removes; the follow-up
  // schedules are retried on unavailable and timeout.
  // v7: an onboarding whose create_records found the customer another onboarding of the e-mail had
  // just made reports `already_customer` and sends no welcome nor follow-ups; a delay given twice in
  // follow_up_after is two follow-ups (two schedules), as the output lists them.
  // v8: the welcome is the content agent's `welcome` kind (subject and body of its own, the
  // customer's plan and seats), not its segment newsletter, whose subject line and revenue figures
  // landed in the body.
  // v9: a canceled onboarding deletes the follow-up schedules it made (`delete_follow_up`, the
  // compensation of each schedule_follow_ups item): they mailed a customer that no longer existed;
  // one already gone counts as deleted.
  // v10: when a follow-up is refused part way (the one-shot cap), `follow_ups` lists the schedules
  // the items before it made (they stay) instead of none.
  version: 10,
  name: 'Customer onboarding',
  description:
    'Validate customer data, create the customer and subscription records, generate and send a welcome e-mail, schedule follow-ups.',
  input: {
    type: 'object',
    properties: {
      customer: {
        type: 'object',
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 200 },
          email: { type: 'string', format: 'email', maxLength: 320 },
          segment: { type: 'string', enum: ['smb', 'mid_market', 'enterprise'], default: 'smb' },
          region: { type: 'string', enum: ['north_america', 'emea', 'apac', 'latam'], default: 'north_america' },
          plan: { type: 'string', enum: ['starter', 'growth', 'business', 'enterprise'], default: 'starter' },
          seats: { type: 'integer', minimum: 1, maximum: 10_000, default: 5 },
        },
        required: ['name', 'email'],
        additionalProperties: false,
      },
      follow_up_after: {
        type: 'array',
        description:
          'One follow-up e-mail this long after the onboarding for each entry (30s, 15m, 2h, 7d, 2w); a delay given twice is two e-mails',
        items: { type: 'string', pattern: '^[0-9]{1,6}[smhdw]$' },
        maxItems: 10,
        default: ['1d', '7d', '30d'],
      },
    },
    required: ['customer'],
    additionalProperties: false,
  },
  steps: [
    {
      id: 'check_existing',
      name: 'Check the e-mail is not a customer yet',
      uses: 'mcp:database/query',
      with: {
        sql: 'SELECT id FROM business.customers WHERE lower(email) = lower($1::text)',
        params: ['${{ input.customer.email }}'],
      },
      retry: {
        attempts: 3,
        backoff: { initialMs: 500, factor: 2, maxMs: 5000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 15_000,
    },
    {
      id: 'create_records',
      name: 'Create the customer and subscription records',
      uses: 'mcp:database_writer/query',
      needs: ['check_existing'],
      if: 'size(steps.check_existing.output.rows) == 0',
      with: {
        // Ids come from the tables' identity columns (max + 1 collided between onboardings running
        // at once). ON CONFLICT on the e-mail plus the fallback SELECT make a repeated call return
        // the row the first one created. The row names the execution that made it (`onboarded_by`):
        // `created` is true for the row this execution made, whichever attempt's answer came back
        // (an attempt whose answer was lost made the row, and the retry's fallback found it).
        sql:
          "WITH plan AS (SELECT price FROM (VALUES ('starter', 15.00), ('growth', 29.00), ('business', 49.00), ('enterprise', 79.00)) AS p(name, price) WHERE name = $5::text), " +
          'c AS (INSERT INTO business.customers (name, email, segment, region, signup_date, onboarded_by) ' +
          'VALUES ($1::text, lower($2::text), $3::text, $4::text, current_date, $7::text) ' +
          'ON CONFLICT (email) DO NOTHING RETURNING id, signup_date), ' +
          's AS (INSERT INTO business.subscriptions (customer_id, plan, seats, price_per_seat, started_on) ' +
          'SELECT c.id, $5::text, $6::int, plan.price, c.signup_date FROM c, plan ' +
          'RETURNING id, plan, seats, price_per_seat) ' +
          'SELECT c.id AS customer_id, c.signup_date::text AS signup_date, s.id AS subscription_id, s.plan, s.seats, s.price_per_seat::float8 AS price_per_seat, true AS created FROM c, s ' +
          'UNION ALL SELECT x.id, x.signup_date::text, y.id, y.plan, y.seats, y.price_per_seat::float8, x.onboarded_by IS NOT DISTINCT FROM $7::text ' +
          'FROM business.customers x LEFT JOIN business.subscriptions y ON y.customer_id = x.id ' +
          'WHERE x.email = lower($2::text) AND NOT EXISTS (SELECT 1 FROM c)',
        params: [
          '${{ input.customer.name }}',
          '${{ input.customer.email }}',
          '${{ input.customer.segment }}',
          '${{ input.customer.region }}',
          '${{ input.customer.plan }}',
          '${{ input.customer.seats }}',
          '${{ execution.id }}',
        ],
      },
      retry: {
        attempts: 3,
        backoff: { initialMs: 500, factor: 2, maxMs: 5000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 15_000,
      on_error: { compensate: 'remove_customer' },
    },
    {
      id: 'welcome_content',
      name: 'Generate the welcome content',
      uses: 'agent:marketing_content',
      needs: ['create_records'],
      // Only for the customer this execution made (send_welcome, which needs it, is skipped with it).
      if: MADE,
      with: { kind: 'welcome', channel: 'email', customerId: `\${{ ${CREATED}.customer_id }}` },
      retry: {
        attempts: 2,
        backoff: { initialMs: 1000, factor: 2, maxMs: 10_000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 120_000,
    },
    {
      id: 'send_welcome',
      name: 'Send the welcome e-mail',
      uses: 'mcp:automation/send_email',
      needs: ['welcome_content'],
      with: {
        to: '${{ input.customer.email }}',
        subject: '${{ steps.welcome_content.output.subject }}',
        text: '${{ steps.welcome_content.output.text }}',
        // One welcome per execution, however often the step is re-dispatched or retried.
        idempotency_key: 'welcome-${{ execution.id }}:send_welcome',
      },
      retry: {
        attempts: 3,
        backoff: { initialMs: 1000, factor: 2, maxMs: 30_000, jitter: 0.3 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 60_000,
      // A missing welcome e-mail is worth a visible `welcome_sent: false`, not an undone onboarding.
      on_error: 'continue',
    },
    {
      id: 'schedule_follow_ups',
      name: 'Schedule the follow-up tasks',
      uses: 'mcp:automation/create_schedule',
      needs: ['create_records'],
      if: MADE,
      // A cancel deletes each schedule an item made (delete_follow_up, with that item's output).
      for_each: { items: 'input.follow_up_after', concurrency: 2, compensate: 'delete_follow_up' },
      with: {
        // One schedule per entry: a delay given again is named by its place too (`-after-2s-2`), or
        // create_schedule would answer the first one's schedule and the two would be one e-mail.
        // (The indices cover follow_up_after's maxItems of 10: j < index <= 9.)
        name:
          `onboarding-\${{ string(${CREATED}.customer_id) }}-after-\${{ item }}` +
          "${{ [0, 1, 2, 3, 4, 5, 6, 7, 8].exists(j, j < index && input.follow_up_after[j] == item) ? '-' + string(index + 1) : '' }}",
        // Once, `item` from now; the automation server mails it when it fires (keyed by the occurrence).
        after: '${{ item }}',
        target: {
          kind: 'email',
          to: '${{ input.customer.email }}',
          subject: 'How is it going, ${{ input.customer.name }}?',
          text:
            "${{ 'Hi ' + input.customer.name + ',\\n\\nyou have been on the ' + input.customer.plan + ' plan for ' + item + ' now. ' + " +
            "'Anything we can help with? Just reply to this e-mail.\\n\\nThe Switchyard team' }}",
        },
      },
      // create_schedule answers the schedule already there when it is the same one: a retry after
      // an attempt whose answer was lost with its process finds it instead of failing.
      retry: {
        attempts: 3,
        backoff: { initialMs: 1000, factor: 2, maxMs: 10_000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 15_000,
      // The customer exists by now: a refused schedule is reported in the outputs
      // (`follow_up_error`), not turned into a failed onboarding that a re-run would skip anyway.
      on_error: 'continue',
    },
    {
      id: 'remove_customer',
      name: 'Compensation: remove the created customer and subscription',
      uses: 'mcp:database_writer/query',
      // Reads create_records' answer (only ever runs as its compensation).
      needs: ['create_records'],
      with: {
        // Only the row this execution made (`onboarded_by`, the row's own record of it): a
        // compensation never removes a customer another onboarding made, even when a stale lookup
        // or a concurrent onboarding led create_records to an existing one, and it removes the
        // row an attempt made whose answer was lost (the retry that succeeded said `created: false`).
        sql:
          'WITH target AS (SELECT id FROM business.customers WHERE onboarded_by = $1::text), ' +
          's AS (DELETE FROM business.subscriptions WHERE customer_id IN (SELECT id FROM target) RETURNING id) ' +
          'DELETE FROM business.customers WHERE id IN (SELECT id FROM target) RETURNING id',
        params: ['${{ execution.id }}'],
      },
      // The compensation's whole budget: its engine sends it again while its server restarts.
      timeout_ms: 90_000,
    },
    {
      id: 'delete_follow_up',
      name: 'Compensation: delete the follow-up schedule one item made',
      uses: 'mcp:automation/delete_schedule',
      // Only ever runs as the compensation of one schedule_follow_ups item: `output` is the
      // schedule that item made. By its id: a name may be another owner's too. A schedule already
      // gone (deleted by hand, or by an earlier send of this undo whose answer was lost: undos are
      // at least once) is what the undo is for, so missing_ok answers it as done, not not_found.
      with: { schedule: '${{ output.schedule.id }}', missing_ok: true },
      timeout_ms: 90_000,
    },
  ],
  outputs: {
    status: `\${{ ${MADE} ? 'onboarded' : 'already_customer' }}`,
    // The customer either way: the one made, the one create_records found, or the one looked up.
    customer_id:
      `\${{ steps.create_records.status == 'succeeded' && size(steps.create_records.output.rows) > 0 ? ${CREATED}.customer_id : ` +
      '(size(steps.check_existing.output.rows) > 0 ? steps.check_existing.output.rows[0].id : null) }}',
    subscription_id: `\${{ ${MADE} ? ${CREATED}.subscription_id : null }}`,
    welcome_sent:
      "${{ steps.send_welcome.status == 'succeeded' && size(steps.send_welcome.output.email.accepted) > 0 }}",
    // The schedules that exist: when an item was refused (say the one-shot cap), the ones made
    // before it stay (on_error: continue) and are listed beside follow_up_error.
    follow_ups:
      "${{ steps.schedule_follow_ups.status == 'succeeded' ? steps.schedule_follow_ups.output.map(s, s.schedule.name) : " +
      '(steps.schedule_follow_ups.item_outputs == null ? [] : steps.schedule_follow_ups.item_outputs.filter(s, s != null).map(s, s.schedule.name)) }}',
    welcome_error: "${{ steps.send_welcome.status == 'failed' ? steps.send_welcome.error.message : null }}",
    follow_up_error:
      "${{ steps.schedule_follow_ups.status == 'failed' ? steps.schedule_follow_ups.error.message : null }}",
  },
} as const satisfies WorkflowDefinitionInput;
