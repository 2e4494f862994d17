import { z } from 'zod';
import { idOf } from '../../http/ids.js';
import {
  agentHealthReply,
  customerIdSchema,
  planningDate,
  externalAgentRegistration,
  externalAgentSchema,
  taskPrioritySchema,
  trimmedText,
} from '@switchyard/contracts';
import { textInt } from '../../http/query-int.js';

// Strict, as the context itself is (checkTaskContext): a misspelt field must not start a task without it.
export const delegateBody = z.strictObject({
  task_type: z.string().min(1).max(100),
  context: z.record(z.string(), z.unknown()).default({}),
  priority: taskPrioritySchema.default('normal'),
  /** Run it on this agent only. */
  agent: z.string().min(1).max(100).optional(),
  timeout_ms: z.number().int().positive().max(3_600_000).optional(),
});
export type DelegateBody = z.output<typeof delegateBody>;

// Strict: a parameter this route does not know is refused (a typo must not start a task with defaults).
export const waitQuery = z.strictObject({
  wait: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1'),
  /** How long `wait=true` waits for the result before answering 202 with the task as it is. Default 60 s. */
  wait_ms: textInt({ min: 1, max: 600_000 })
    .default(60_000)
    .describe(
      'How long `wait=true` waits for the result (default 60 s), at most the request timeout less a margin; then 202 with the task as it is',
    ),
});
export type WaitQuery = z.output<typeof waitQuery>;

export const agentParams = z.object({ agent_name: idOf('agent') });
/** An external agent's name follows the registration's rule (so a malformed one is a 400, not a lookup). */
export const externalAgentParams = z.object({ agent_name: externalAgentSchema.shape.name });
/** Body of `POST /agents/external`: the `tasks.v1.register_agent` input without the actor (that comes from the API key). */
export const externalAgentBody = externalAgentRegistration;
export const externalAgentExample = {
  name: 'invoice-bot',
  url: 'https://agents.example.com/invoice-bot',
  task_types: ['invoice_summary'],
  token: 'the-bearer-token-the-agent-expects',
  max_concurrency: 4,
  description: 'Summarises supplier invoices',
};
export const taskParams = z.object({ task_id: idOf('task') });
export const cancelBody = z
  .object({ reason: z.string().max(500).default('canceled by request') })
  .default({ reason: 'canceled by request' });

/** `GET /agents/health`: the dispatcher's reply plus the overall status the gateway derives from the agents'. */
export const agentsHealthResponse = agentHealthReply.extend({
  status: z
    .enum(['healthy', 'degraded', 'down'])
    .describe('healthy: every agent healthy; down: none up (or no agent); degraded otherwise'),
});

/** The errors a delegation can answer (the quick actions are delegations too). */
export const delegationErrors = [400, 404, 409, 503, 504] as const;

export const delegatedResponse = z.object({
  task_id: z.string(),
  status: z.string(),
  /** The chosen agent, or `queued` while no instance has taken it. */
  agent: z.string(),
  instance: z.string().nullable(),
  duplicate: z.boolean().optional(),
  result: z.unknown().optional(),
});

/** `?wait=true` saw the task end: 200 with its result. */
export const waitedAnswer = {
  status: 200,
  description: 'With `wait=true`: the task ended within the wait; its result',
  schema: delegatedResponse,
} as const;

const priority = { priority: taskPrioritySchema.default('normal') };

/** Quick actions: a fixed task type and a small (strict) body, mapped to the task's context. */
export const quickActions = {
  'analyze-revenue': {
    taskType: 'revenue_analysis',
    summary: 'Revenue analysis (data_analyst)',
    body: z.strictObject({
      timeframe: z.string().max(20).optional(),
      top_n: z.number().int().min(1).max(100).optional(),
      ...priority,
    }),
    context: (b: { timeframe?: string; top_n?: number }) => ({
      ...(b.timeframe ? { timeframe: b.timeframe } : {}),
      ...(b.top_n ? { topN: b.top_n } : {}),
    }),
  },
  'generate-proposal': {
    taskType: 'generate_proposal',
    summary: 'Proposal for a customer (content_creator)',
    body: z.strictObject({
      customer_id: customerIdSchema,
      proposal_type: z.enum(['upgrade', 'renewal', 'expansion']).optional(),
      discount_pct: z.number().min(0).max(30).optional(),
      ...priority,
    }),
    context: (b: { customer_id: number; proposal_type?: string; discount_pct?: number }) => ({
      customerId: b.customer_id,
      ...(b.proposal_type ? { proposalType: b.proposal_type } : {}),
      ...(b.discount_pct !== undefined ? { discountPct: b.discount_pct } : {}),
    }),
  },
  'optimize-schedule': {
    taskType: 'schedule_optimization',
    summary: 'Shift schedule (operations_manager)',
    body: z.strictObject({
      from: planningDate.optional(),
      days: z.number().int().min(1).max(31).optional(),
      ...priority,
    }),
    context: (b: { from?: string; days?: number }) => ({
      ...(b.from ? { from: b.from } : {}),
      ...(b.days ? { days: b.days } : {}),
    }),
  },
  'customer-support': {
    taskType: 'support_response',
    summary: 'Support reply with intent, sentiment and escalation (customer_success)',
    body: z.strictObject({
      query: trimmedText(3, 10_000),
      customer_id: customerIdSchema.optional(),
      ...priority,
    }),
    context: (b: { query: string; customer_id?: number }) => ({
      query: b.query,
      ...(b.customer_id ? { customerId: b.customer_id } : {}),
    }),
  },
} as const;
