/**
 * Wire formats and subjects of the agent services. Every agent is one NATS micro-service
 * (`agent-<name>`) with endpoints on
 *
 *   switchyard.svc.agent.v1.<agent>.<endpoint>             shared by all instances (queue group)
 *   switchyard.svc.agent.v1.<agent>.<instance>.<endpoint>  one instance (the dispatcher's choice)
 */
import { z } from 'zod';
import { serviceSubject, subjectToken } from './subjects.js';

export const AGENT_SERVICE_PREFIX = 'agent-';
export const AGENT_SERVICE_VERSION = '1.0.0';

/** NATS service name of an agent (`data_analyst` -> `agent-data-analyst`). */
export const agentServiceName = (agent: string): string => `${AGENT_SERVICE_PREFIX}${agent.replace(/_/g, '-')}`;

/** Shared subject of an agent endpoint (any instance answers). */
export const agentSubject = (agent: string, endpoint: 'execute' | 'capabilities' | 'load'): string =>
  `${serviceSubject('agent', agent)}.${endpoint}`;

/** Subject of one instance's endpoint. */
export const agentInstanceSubject = (
  agent: string,
  instance: string,
  endpoint: 'execute' | 'cancel' | 'load',
): string => `${serviceSubject('agent', agent)}.${subjectToken(instance)}.${endpoint}`;

/** Most a sender may give an attempt (a day); a task's `timeout_ms` is at most an hour. */
const REMAINING_MS_MAX = 24 * 3_600_000;

export const agentExecuteInput = z.object({
  task_id: z.string().min(1).max(200),
  task_type: z.string().min(1).max(100),
  context: z.record(z.string(), z.unknown()).default({}),
  attempt: z.number().int().min(1).default(1),
  /** ISO instant by the sender's clock: the handler's AbortSignal fires then, unless `remaining_ms` is given. */
  deadline: z.string().datetime({ offset: true }).optional(),
  /**
   * The attempt's time left when it was sent, in ms: the agent stops the handler that long after
   * receipt, on its own monotonic clock, so a host whose wall clock disagrees with the sender's
   * still stops it on time. Absent from an older sender (then `deadline` is used).
   */
  remaining_ms: z.number().int().min(0).max(REMAINING_MS_MAX).optional(),
  /**
   * Where to publish `{ task_id, attempt, instance }` once the task is admitted and its
   * handler runs (the dispatcher's "started" notice). Optional.
   */
  notify_subject: z.string().min(1).max(300).optional(),
});
export type AgentExecuteInput = z.input<typeof agentExecuteInput>;

export const agentExecuteReply = z.object({
  task_id: z.string(),
  agent: z.string(),
  instance: z.string(),
  result: z.unknown(),
  duration_ms: z.number(),
});
export type AgentExecuteReply = z.infer<typeof agentExecuteReply>;

export const agentStartedNotice = z.object({
  task_id: z.string(),
  attempt: z.number().int(),
  instance: z.string(),
  agent: z.string(),
});
export type AgentStartedNotice = z.infer<typeof agentStartedNotice>;

export const agentCancelInput = z.object({
  task_id: z.string().min(1),
  reason: z.string().max(500).default('canceled'),
});
export const agentCancelReply = z.object({ task_id: z.string(), canceled: z.boolean() });

export const agentLoadReply = z.object({
  agent: z.string(),
  instance: z.string(),
  in_flight: z.number().int(),
  max_concurrency: z.number().int(),
  /** Always 0: an agent refuses work beyond max_concurrency; the waiting line lives in the dispatcher. */
  queue_length: z.number().int(),
  completed: z.number().int(),
  failed: z.number().int(),
  rejected: z.number().int(),
  canceled: z.number().int(),
  running: z.array(z.string()),
  started_at: z.string(),
});
export type AgentLoadReply = z.infer<typeof agentLoadReply>;

export const agentCardJsonSchema = z.object({
  name: z.string(),
  version: z.string(),
  description: z.string(),
  maxConcurrency: z.number().int(),
  taskTypes: z.array(
    z.object({
      type: z.string(),
      description: z.string(),
      inputSchema: z.record(z.string(), z.unknown()).optional(),
      aliases: z.array(z.string()).optional(),
      contextAliases: z.record(z.string(), z.string()).optional(),
    }),
  ),
});
export const agentCapabilitiesReply = z.object({ agent: z.string(), instance: z.string(), card: agentCardJsonSchema });
export type AgentCapabilitiesReply = z.infer<typeof agentCapabilitiesReply>;

/**
 * `$SRV.INFO` metadata every agent instance publishes (string values: the services API rule). A
 * type, not an interface, so it is assignable to the services API's `Record<string, string>`.
 */
export type AgentServiceMetadata = {
  readonly kind: 'agent';
  readonly agent: string;
  readonly instance: string;
  readonly max_concurrency: string;
  readonly task_types: string;
  /** The capability card as JSON (AgentCardJson). */
  readonly card: string;
};

// ---- the HTTP agent contract (the built-ins on 6001-6006, and external agents) -----------

export const httpExecuteBody = z.object({
  task_type: z.string().min(1),
  context: z.record(z.string(), z.unknown()).default({}),
  task_id: z.string().min(1).max(200).optional(),
  deadline: z.string().datetime({ offset: true }).optional(),
  /** As in the NATS request: the time left in ms, run from receipt; preferred over `deadline`. */
  remaining_ms: z.number().int().min(0).max(REMAINING_MS_MAX).optional(),
});
export type HttpExecuteBody = z.input<typeof httpExecuteBody>;
export const httpExecuteReply = z.object({
  task_id: z.string(),
  agent: z.string(),
  status: z.literal('completed'),
  result: z.unknown(),
  duration_ms: z.number(),
});
export const httpHealthReply = z.object({
  status: z.enum(['healthy', 'busy']),
  agent: z.string(),
  instance: z.string().optional(),
  in_flight: z.number().int().optional(),
  max_concurrency: z.number().int().optional(),
  task_types: z.array(z.string()).optional(),
});
/** Error body of the HTTP contract. */
export const httpErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()).optional() }),
});

/** Ports of the built-in agents' HTTP contract, as the specification assigns them. */
export const BUILTIN_AGENT_PORTS: Readonly<Record<string, number>> = {
  data_analyst: 6001,
  automation_specialist: 6002,
  content_creator: 6003,
  customer_success: 6004,
  financial_advisor: 6005,
  operations_manager: 6006,
};
