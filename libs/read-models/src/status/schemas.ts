import { z } from 'zod';

/**
 * The read-model half of GET /api/v1/integration/status (the gateway adds the infrastructure
 * checks and the overall verdict). Every section says whether its tables exist yet: a fresh
 * system answers `available: false` ("no data yet") rather than an error.
 */

const iso = z.string().describe('ISO-8601 instant');

export const mcpServerStatusSchema = z.object({
  server: z.string(),
  health: z
    .enum(['up', 'down', 'unknown', 'unconfigured'])
    .describe(
      "From McpServerWentDown / McpServerRecovered; before the first of them, from the monitor's probe (unknown when there is none); unconfigured: listed but not runnable as configured (health_error says what is missing), not an outage",
    ),
  health_since: iso.nullable(),
  health_error: z.string().nullable(),
  breaker: z.enum(['closed', 'open', 'half_open']),
  breaker_since: iso.nullable(),
  last_error: z.object({ code: z.string().nullable(), message: z.string().nullable(), at: iso.nullable() }).nullable(),
  last_call_at: iso.nullable(),
  last_hour: z.object({
    calls: z.number().int(),
    failures: z.number().int().describe('Every McpToolFailed, tool errors and breaker rejections included'),
    tool_errors: z.number().int().describe('Failures where the server answered but the tool said isError'),
    failure_rate: z.number().nullable(),
    p95_ms: z.number().nullable().describe('From a log histogram (about ±5 %); breaker rejections excluded'),
  }),
  totals: z.object({ calls: z.number().int(), failures: z.number().int() }),
});
export type McpServerStatus = z.infer<typeof mcpServerStatusSchema>;

export const agentInstanceStatusSchema = z.object({
  instance: z.string(),
  status: z.string().describe("up | degraded | down | unknown, from the monitor's probes"),
  since: iso.nullable(),
  last_probe_at: iso.nullable(),
  last_error: z.string().nullable(),
});

export const agentStatusSchema = z.object({
  agent: z.string(),
  in_flight: z.number().int().describe('Tasks assigned to or running on this agent'),
  queued: z.number().int().describe('Queued tasks that asked for this agent by name'),
  last_hour: z.object({
    completed: z.number().int(),
    failed: z.number().int(),
    timed_out: z.number().int(),
    caller_errors: z
      .number()
      .int()
      .describe(
        "Failures through the caller's input (validation, not_found, illegal_state from the agent): not in failed",
      ),
    success_rate: z
      .number()
      .nullable()
      .describe('completed / (completed + failed + timed_out): caller errors are left out; null without such tasks'),
    latency_p50_ms: z.number().nullable(),
    latency_p95_ms: z.number().nullable(),
  }),
  totals: z
    .object({
      tasks_done: z.number().int(),
      succeeded: z.number().int(),
      failed: z.number().int(),
      timed_out: z.number().int(),
      caller_errors: z.number().int(),
      last_task_at: iso.nullable(),
    })
    .nullable(),
  instances: z
    .array(agentInstanceStatusSchema)
    .nullable()
    .describe("From the monitor's probes; null when the monitor has no data yet"),
});
export type AgentStatus = z.infer<typeof agentStatusSchema>;

export const alertSummarySchema = z.object({
  id: z.string(),
  rule_id: z.string(),
  name: z.string(),
  severity: z.string(),
  labels: z.record(z.string(), z.string()),
  value: z.number().nullable(),
  threshold: z.number().nullable(),
  firing_since: iso.nullable(),
  silenced_by: z.string().nullable(),
});

const section = { available: z.boolean().describe('false: its read model does not exist yet (no data yet)') };

export const integrationReadModelsSchema = z.object({
  generated_at: iso,
  window: z.object({ from: iso, to: iso }).describe('The "last hour"'),
  mcp: z.object({ ...section, servers: z.array(mcpServerStatusSchema) }),
  agents: z.object({
    ...section,
    queued_any_agent: z.number().int().describe('Queued tasks any capable agent may take'),
    items: z.array(agentStatusSchema),
  }),
  workflows: z.object({
    ...section,
    running: z.number().int(),
    canceling: z.number().int(),
    last_hour: z.object({ completed: z.number().int(), failed: z.number().int(), canceled: z.number().int() }),
  }),
  alerts: z.object({
    ...section,
    firing: z.number().int(),
    pending: z.number().int(),
    items: z.array(alertSummarySchema).describe('Firing alerts, critical first (at most 100)'),
  }),
});
export type IntegrationReadModels = z.infer<typeof integrationReadModelsSchema>;
