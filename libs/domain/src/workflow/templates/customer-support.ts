import type { WorkflowDefinitionInput } from '../definition/schema.js';

/**
 * Customer support: fetch the customer's context, analyse the query (agent), generate the
 * response (agent), escalate when the analysis says so, and log the interaction.
 */
export const customerSupportTemplate = {
  id: 'customer_support',
  version: 1,
  name: 'Customer support',
  description: 'Fetch customer context, analyse the query, generate a response, escalate when needed, log the interaction.',
  input: {
    type: 'object',
    properties: {
      customer_email: { type: 'string', format: 'email' },
      query: { type: 'string', minLength: 1 },
      channel: { type: 'string', enum: ['email', 'chat', 'phone'], default: 'email' },
      escalation_webhook: { type: 'string', default: 'support-escalation' },
    },
    required: ['customer_email', 'query'],
  },
  steps: [
    {
      id: 'fetch_context',
      name: 'Fetch customer context',
      uses: 'mcp:database/query',
      with: {
        sql:
          'SELECT c.id, c.name, c.plan, (SELECT count(*)::int FROM support_interactions s WHERE s.customer_email = c.email) AS past_interactions ' +
          'FROM customers c WHERE lower(c.email) = lower($1)',
        params: ['${{ input.customer_email }}'],
      },
      retry: { attempts: 3, backoff: { initialMs: 500, factor: 2, maxMs: 5000, jitter: 0.2 }, on: ['unavailable', 'timeout'] },
      timeout_ms: 15_000,
    },
    {
      id: 'analyze_query',
      name: 'Analyse the query',
      uses: 'agent:support_response',
      needs: ['fetch_context'],
      with: { mode: 'analyze', query: '${{ input.query }}', channel: '${{ input.channel }}', customer: '${{ steps.fetch_context.output.rows }}' },
      timeout_ms: 60_000,
    },
    {
      id: 'generate_response',
      name: 'Generate the response',
      uses: 'agent:support_response',
      needs: ['analyze_query'],
      with: { mode: 'respond', query: '${{ input.query }}', analysis: '${{ steps.analyze_query.output }}', channel: '${{ input.channel }}' },
      timeout_ms: 60_000,
    },
    {
      id: 'escalate',
      name: 'Escalate to a human',
      uses: 'mcp:automation/send_webhook',
      needs: ['analyze_query'],
      if: 'has(steps.analyze_query.output.escalate) && steps.analyze_query.output.escalate == true',
      with: {
        name: '${{ input.escalation_webhook }}',
        payload: {
          customer_email: '${{ input.customer_email }}',
          query: '${{ input.query }}',
          analysis: '${{ steps.analyze_query.output }}',
        },
      },
      retry: { attempts: 4, backoff: { initialMs: 1000, factor: 2, maxMs: 20_000, jitter: 0.3 } },
      timeout_ms: 15_000,
    },
    {
      id: 'log_interaction',
      name: 'Log the interaction',
      uses: 'mcp:database/query',
      needs: ['generate_response', 'escalate'],
      // Escalation is usually skipped; the interaction is logged either way.
      if: "steps.generate_response.status == 'succeeded'",
      with: {
        sql:
          'INSERT INTO support_interactions (customer_email, channel, query, response, escalated) VALUES ($1, $2, $3, $4, $5) RETURNING id',
        params: [
          '${{ input.customer_email }}',
          '${{ input.channel }}',
          '${{ input.query }}',
          '${{ steps.generate_response.output }}',
          "${{ steps.escalate.status == 'succeeded' }}",
        ],
      },
      retry: { attempts: 3, backoff: { initialMs: 500, factor: 2, maxMs: 5000, jitter: 0.2 }, on: ['unavailable', 'timeout'] },
      timeout_ms: 15_000,
    },
  ],
  outputs: {
    response: '${{ steps.generate_response.output }}',
    escalated: "${{ steps.escalate.status == 'succeeded' }}",
    interaction_id: '${{ steps.log_interaction.output.rows[0].id }}',
  },
} as const satisfies WorkflowDefinitionInput;
