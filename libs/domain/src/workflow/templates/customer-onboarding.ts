import type { WorkflowDefinitionInput } from '../definition/schema.js';

/**
 * Onboard a customer: check the data against what exists, create the records, write a welcome
 * message (agent), send it, and schedule the follow-ups. Sending and scheduling run in parallel.
 * If creating the records fails for good, `remove_customer` undoes any partial insert.
 */
export const customerOnboardingTemplate = {
  id: 'customer_onboarding',
  version: 1,
  name: 'Customer onboarding',
  description: 'Validate customer data, create the records, generate and send a welcome message, schedule follow-ups.',
  input: {
    type: 'object',
    properties: {
      customer: {
        type: 'object',
        properties: {
          name: { type: 'string', minLength: 1 },
          email: { type: 'string', format: 'email' },
          company: { type: 'string', default: '' },
          plan: { type: 'string', enum: ['free', 'pro', 'enterprise'], default: 'free' },
        },
        required: ['name', 'email'],
      },
      email_webhook: { type: 'string', description: 'Registered webhook that delivers e-mail', default: 'welcome-email' },
      follow_up_days: { type: 'array', items: { type: 'integer', minimum: 1 }, default: [1, 7, 30] },
    },
    required: ['customer'],
  },
  steps: [
    {
      id: 'validate_customer',
      name: 'Validate customer data (not yet a customer)',
      uses: 'mcp:database/query',
      with: {
        sql: 'SELECT count(*)::int AS existing FROM customers WHERE lower(email) = lower($1)',
        params: ['${{ input.customer.email }}'],
      },
      retry: { attempts: 3, backoff: { initialMs: 500, factor: 2, maxMs: 5000, jitter: 0.2 }, on: ['unavailable', 'timeout'] },
      timeout_ms: 15_000,
    },
    {
      id: 'create_records',
      name: 'Create the customer records',
      uses: 'mcp:database/query',
      needs: ['validate_customer'],
      if: 'steps.validate_customer.output.rows[0].existing == 0',
      with: {
        sql: 'INSERT INTO customers (name, email, company, plan) VALUES ($1, $2, $3, $4) RETURNING id',
        params: ['${{ input.customer.name }}', '${{ input.customer.email }}', '${{ input.customer.company }}', '${{ input.customer.plan }}'],
      },
      retry: { attempts: 3, backoff: { initialMs: 500, factor: 2, maxMs: 5000, jitter: 0.2 }, on: ['unavailable', 'timeout'] },
      timeout_ms: 15_000,
      on_error: { compensate: 'remove_customer' },
    },
    {
      id: 'welcome_content',
      name: 'Generate the welcome message',
      uses: 'agent:marketing_content',
      needs: ['create_records'],
      with: {
        kind: 'welcome_email',
        audience: { name: '${{ input.customer.name }}', company: '${{ input.customer.company }}', plan: '${{ input.customer.plan }}' },
        tone: 'friendly',
      },
      timeout_ms: 120_000,
    },
    {
      id: 'send_welcome',
      name: 'Send the welcome e-mail',
      uses: 'mcp:automation/send_webhook',
      needs: ['welcome_content'],
      with: {
        name: '${{ input.email_webhook }}',
        payload: {
          to: '${{ input.customer.email }}',
          subject: '${{ steps.welcome_content.output.subject }}',
          body: '${{ steps.welcome_content.output.body }}',
        },
      },
      retry: { attempts: 5, backoff: { initialMs: 1000, factor: 2, maxMs: 30_000, jitter: 0.3 } },
      timeout_ms: 30_000,
      // A missing welcome e-mail is worth a log line, not an undone onboarding.
      on_error: 'continue',
    },
    {
      id: 'schedule_follow_ups',
      name: 'Schedule the follow-up tasks',
      uses: 'mcp:automation/create_schedule',
      needs: ['create_records'],
      for_each: { items: 'input.follow_up_days', concurrency: 2 },
      with: {
        name: 'onboarding-${{ string(steps.create_records.output.rows[0].id) }}-day-${{ string(item) }}',
        delay_days: '${{ item }}',
        action: { type: 'follow_up_call', customer_email: '${{ input.customer.email }}' },
      },
      timeout_ms: 15_000,
    },
    {
      id: 'remove_customer',
      name: 'Compensation: remove a partially created customer',
      uses: 'mcp:database/query',
      with: { sql: 'DELETE FROM customers WHERE lower(email) = lower($1)', params: ['${{ input.customer.email }}'] },
      timeout_ms: 15_000,
    },
  ],
  outputs: {
    status: "${{ steps.create_records.status == 'succeeded' ? 'onboarded' : 'already_customer' }}",
    customer_id: "${{ steps.create_records.status == 'succeeded' ? steps.create_records.output.rows[0].id : null }}",
    welcome_sent: "${{ steps.send_welcome.status == 'succeeded' }}",
    follow_ups: "${{ steps.schedule_follow_ups.status == 'succeeded' ? size(steps.schedule_follow_ups.output) : 0 }}",
  },
} as const satisfies WorkflowDefinitionInput;
