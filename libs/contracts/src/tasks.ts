/**
 * Wire formats of the task delegation service (`switchyard.svc.tasks.v1.<endpoint>`), shared by
 * the dispatcher and its callers (gateway, workflow engine), and the external agent events'
 * payloads. The TaskDelegation decider (libs/domain) takes its commands in these shapes.
 */
import { z } from 'zod';
import { progressSubjectSchema } from './progress.js';
import { serviceSubject } from './subjects.js';
import { ACTOR_PATTERN } from './mcp.js';

import { taskPriorities } from '@switchyard/domain';

/** The domain's priorities, as the wire carries them. */
export { taskPriorities };

export const TASKS_SERVICE = 'tasks';

/** Subject of a tasks service endpoint: `switchyard.svc.tasks.v1.<endpoint>`. */
export const tasksSubject = (
  endpoint:
    | 'execute'
    | 'submit'
    | 'get'
    | 'cancel'
    | 'agents'
    | 'agent'
    | 'capabilities'
    | 'performance'
    | 'register_agent'
    | 'unregister_agent',
): string => serviceSubject(TASKS_SERVICE, endpoint);
/** What a workflow step's agent task is sent to (the dispatcher replies when the task ends). */
export const TASKS_EXECUTE_SUBJECT = tasksSubject('execute');
export const TASKS_CANCEL_SUBJECT = tasksSubject('cancel');
export const taskPrioritySchema = z.enum(taskPriorities);

const contextSchema = z.record(z.string(), z.unknown());

/** `tasks.v1.submit`: queue a task and answer at once. */
export const taskSubmitInput = z.object({
  task_type: z.string().min(1).max(100),
  context: contextSchema.default({}),
  priority: taskPrioritySchema.default('normal'),
  /** Run it on this agent only (by name). */
  agent: z.string().min(1).max(100).optional(),
  /** Same key, same task: a repeated submit returns the task created first. */
  idempotency_key: z.string().min(1).max(200).optional(),
  timeout_ms: z.number().int().positive().max(3_600_000).optional(),
  max_attempts: z.number().int().min(1).max(10).optional(),
  correlation_id: z.string().max(200).optional(),
  /** Who asked (e.g. `apikey:<id>`), recorded in the TaskSubmitted metadata for the audit trail. */
  actor: z.string().min(1).max(200).optional(),
  /**
   * Whom the task is for when `actor` is the system (a workflow's starter): the queue's share per
   * key counts the task as theirs, and TaskSubmitted's metadata keeps it (`onBehalfOf`).
   */
  on_behalf_of: z.string().regex(ACTOR_PATTERN).optional(),
});
export type TaskSubmitInput = z.input<typeof taskSubmitInput>;

/** `tasks.v1.execute`: submit (idempotency key required) and reply when the task ends. */
export const taskExecuteInput = taskSubmitInput.extend({
  idempotency_key: z.string().min(1).max(200),
  /**
   * Where to publish `{ idempotency_key, state: 'queued' | 'started', at }` once the submission is
   * recorded: `queued` when it waits for an agent (repeated as a heartbeat while it waits), then
   * `started` as it is assigned to one (its own timeout counts from then); a task placed at once is
   * told `started` only. The workflow engine starts a step's clock there. Dot-separated plain tokens.
   */
  progress_subject: progressSubjectSchema.optional(),
  /** Only the first notice is wanted (the caller only learns the submission is recorded): no heartbeat, nothing after it. */
  progress_first_only: z.boolean().optional(),
});
export type TaskExecuteInput = z.input<typeof taskExecuteInput>;

export const taskStatusSchema = z.enum([
  'submitted',
  'queued',
  'assigned',
  'working',
  'completed',
  'failed',
  'canceled',
  'timed_out',
]);

export const taskSubmitReply = z.object({
  task_id: z.string(),
  status: taskStatusSchema,
  /** The agent it went to, or null while queued. */
  agent: z.string().nullable(),
  instance: z.string().nullable(),
  /** True when the idempotency key named a task that already existed. */
  duplicate: z.boolean(),
});
export type TaskSubmitReply = z.infer<typeof taskSubmitReply>;

/** Success reply of `tasks.v1.execute`; failures come back as the AppError instead. */
export const taskExecuteReply = z.object({
  task_id: z.string(),
  agent: z.string(),
  instance: z.string(),
  status: z.literal('completed'),
  result: z.unknown(),
});
export type TaskExecuteReply = z.infer<typeof taskExecuteReply>;

export const taskErrorSchema = z.object({
  code: z.string(),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});

/** `tasks.v1.get` reply. */
export const taskView = z.object({
  task_id: z.string(),
  /** The canonical task type. */
  task_type: z.string(),
  /** The alias the submitter named it by, when it was one. */
  requested_task_type: z.string().optional(),
  status: taskStatusSchema,
  priority: taskPrioritySchema,
  requested_agent: z.string().nullable(),
  agent: z.string().nullable(),
  instance: z.string().nullable(),
  attempts: z
    .number()
    .int()
    .describe(
      'Attempts made: each hand-over to an agent instance that ran (or runs) the task, the current or last one included; ' +
        "a hand-over the instance refused before running (busy), or one of our agents' that a dispatcher restart cut off before it started " +
        "or while its instance lived on, is not one (an external agent's is). At most max_attempts",
    ),
  max_attempts: z.number().int(),
  timeout_ms: z.number().int(),
  failed_instances: z.array(z.string()),
  submitted_at: z.string(),
  assigned_at: z.string().nullable(),
  started_at: z
    .string()
    .nullable()
    .describe(
      "When the current or last attempt's agent started it, also after the task ended; null before it started (queued, assigned) or when no start was recorded",
    ),
  completed_at: z.string().nullable(),
  duration_ms: z.number().nullable(),
  result: z.unknown().optional(),
  error: taskErrorSchema
    .nullable()
    .describe("The last failed attempt's error; null while none failed and once the task completed"),
  canceled: z
    .object({ reason: z.string(), by: z.string() })
    .optional()
    .describe(
      'A canceled task only: the reason given with the cancel, and who canceled it (the actor of its TaskCanceled event)',
    ),
});
export type TaskView = z.infer<typeof taskView>;

export const taskIdInput = z.object({ task_id: z.string().min(1).max(200) });
export const taskCancelInput = taskIdInput.extend({
  reason: z.string().max(500).default('canceled by request'),
  actor: z.string().max(200).default('api'),
});

/** One instance of an agent as the dispatcher sees it. */
export const agentInstanceView = z.object({
  instance: z.string(),
  kind: z.enum(['nats', 'http']),
  healthy: z.boolean(),
  breaker: z.enum(['closed', 'open', 'half_open']),
  in_flight: z.number().int(),
  max_concurrency: z.number().int(),
  last_seen: z.string().nullable(),
  last_error: z.string().nullable(),
});
export const agentHealthView = z.object({
  agent: z.string(),
  status: z.enum(['healthy', 'degraded', 'down']),
  instances: z.array(agentInstanceView),
  task_types: z.array(z.string()),
  queued: z.number().int(),
  in_flight: z.number().int(),
});
export type AgentHealthView = z.infer<typeof agentHealthView>;
/**
 * The answer to `register_agent`: the agent's health, and what the registration did as the log
 * records it (`unchanged`: the same registration again, nothing recorded). Absent from a
 * dispatcher that predates it (read as `created`).
 */
export const registerAgentReply = agentHealthView.extend({
  registration: z.enum(['created', 'replaced', 'unchanged']).optional(),
  /** An A2A agent registered by its card: the card's skills that are built-in task types, not taken (name them in task_types to take them). */
  task_types_left_out: z.array(z.string()).optional(),
});
export type RegisterAgentReply = z.infer<typeof registerAgentReply>;
export const agentHealthReply = z.object({
  agents: z.array(agentHealthView),
  queued: z.number().int(),
  checked_at: z.string(),
});
export const agentNameInput = z.object({ agent: z.string().min(1).max(100) });

export const capabilityView = z.object({
  agent: z.string(),
  description: z.string(),
  version: z.string(),
  max_concurrency: z.number().int(),
  kind: z.enum(['nats', 'http']),
  available: z.boolean(),
  task_types: z.array(
    z.object({
      type: z.string(),
      description: z.string(),
      input_schema: z.unknown().optional(),
      /** Other names a delegation may give this type (resolved to it on submit). */
      aliases: z.array(z.string()),
      /**
       * Other spellings of the input's fields (`customer_id` -> `customerId`), accepted and renamed
       * to the field; the input schema names the fields only (it refuses any other property).
       */
      context_aliases: z.record(z.string(), z.string()).optional(),
    }),
  ),
});
export const capabilitiesReply = z.object({
  agents: z.array(capabilityView),
  task_types: z.array(z.string()),
  /** Every alias and the canonical task type it names. */
  aliases: z.record(z.string(), z.string()),
});
export type CapabilitiesReply = z.infer<typeof capabilitiesReply>;

export const agentPerformanceView = z.object({
  agent: z.string(),
  tasks_done: z.number().int().describe('Tasks ended on this agent: succeeded + failed + timed_out + caller_errors'),
  succeeded: z.number().int(),
  failed: z
    .number()
    .int()
    .describe(
      "Failures that are the agent's: an exception of its handler, an agent unavailable or refusing its own answer (caller errors are not counted here)",
    ),
  timed_out: z.number().int(),
  caller_errors: z
    .number()
    .int()
    .describe(
      "Failures through the caller's input, which another agent would answer the same: the context refused (validation), " +
        'naming what does not exist (not_found), or asking what the data does not allow (illegal_state, e.g. no active subscription)',
    )
    .default(0),
  success_rate: z
    .number()
    .nullable()
    .describe('succeeded / (succeeded + failed + timed_out): caller errors are left out; null before any such task'),
  latency_p50_ms: z.number().nullable(),
  latency_p95_ms: z.number().nullable(),
  last_task_at: z.string().nullable(),
});
export const performanceReply = z.object({ agents: z.array(agentPerformanceView) });
export type PerformanceReply = z.infer<typeof performanceReply>;

/**
 * An external agent as stored: reached over the HTTP agent contract (`POST <url>/execute`), or,
 * with `a2a_card_url`, an A2A agent (`url` is its JSON-RPC endpoint, `task_types` its skills,
 * both taken from the card at registration; tasks go to it with `message/send`).
 */
export const externalAgentSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  url: z.url(),
  task_types: z.array(z.string().min(1)).min(1),
  token: z.string().optional(),
  max_concurrency: z.number().int().min(1).max(1000).default(4),
  description: z.string().default(''),
  a2a_card_url: z.url().optional(),
});
export type ExternalAgent = z.input<typeof externalAgentRegistration>;

const registrationShape = externalAgentSchema.extend({
  url: z.url().optional(),
  task_types: z.array(z.string().min(1)).min(1).optional(),
});
const urlOrCard = (
  v: { url?: string | undefined; task_types?: string[] | undefined; a2a_card_url?: string | undefined },
  ctx: z.RefinementCtx,
) => {
  if (v.a2a_card_url !== undefined) return;
  for (const key of ['url', 'task_types'] as const) {
    if (v[key] === undefined)
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: `${key} is required unless a2a_card_url names an A2A agent's card`,
      });
  }
};

/** What a registration gives: `url` and `task_types` (HTTP agent contract), or `a2a_card_url` (an A2A agent; url and task types come from its card unless given). */
export const externalAgentRegistration = registrationShape.superRefine(urlOrCard);

/** `tasks.v1.register_agent`: the agent, and who asks (recorded in the ExternalAgentRegistered metadata, never trusted from an HTTP body). */
export const registerAgentInput = registrationShape
  .extend({ actor: z.string().min(1).max(200).optional() })
  .superRefine(urlOrCard);
export type RegisterAgentInput = z.input<typeof registerAgentInput>;

/** `tasks.v1.unregister_agent`: remove a registered external agent. */
export const unregisterAgentInput = z.object({
  name: externalAgentSchema.shape.name,
  actor: z.string().min(1).max(200).optional(),
});
export type UnregisterAgentInput = z.input<typeof unregisterAgentInput>;
export const unregisterAgentReply = z.object({ removed: z.string() });

/**
 * Audit events of the external agent registry, stream `external_agent-<name>`. They reach NATS
 * (relay) and the public events API, so they carry `has_token`, never the token.
 */
export const EXTERNAL_AGENT_STREAM_PREFIX = 'external_agent-';
export const externalAgentStreamId = (name: string): string => `${EXTERNAL_AGENT_STREAM_PREFIX}${name}`;
export const externalAgentRegisteredData = z.object({
  name: z.string(),
  url: z.string(),
  task_types: z.array(z.string()),
  has_token: z.boolean(),
  max_concurrency: z.number().int(),
  description: z.string(),
  registered_at: z.string(),
  /** Set for an A2A agent registered by its card. */
  a2a_card_url: z.string().optional(),
});
export type ExternalAgentRegisteredData = z.infer<typeof externalAgentRegisteredData>;
export const externalAgentRemovedData = z.object({ name: z.string(), removed_at: z.string() });
export type ExternalAgentRemovedData = z.infer<typeof externalAgentRemovedData>;
