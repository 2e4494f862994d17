import { z } from 'zod';
import type { Sample } from '../sampler.js';

/**
 * Pure part of the call metrics: which recorded events are MCP or agent calls, what they
 * say (who, outcome, duration), and the time-series samples each one becomes. No I/O.
 */

/** Event types the call-metrics consumer reads, by stream prefix. */
export const mcpCallEventTypes = ['McpToolSucceeded', 'McpToolFailed'] as const;
export const agentTaskEventTypes = ['TaskCompleted', 'TaskFailed', 'TaskTimedOut'] as const;
export const callMetricsEventTypes: readonly string[] = [...mcpCallEventTypes, ...agentTaskEventTypes];
export const callMetricsStreamPrefixes: readonly string[] = ['mcpserver-', 'task-'];

/** Names of the stored series (monitoring.samples) the consumer and the window aggregator write. */
export const callMetricNames = {
  /** Duration of one MCP call as the caller waited for it (ms; not for `rejected` calls, which never reached the server). */
  mcpCallMs: 'mcp_call_ms',
  /** 1 for a failed MCP call (any outcome but success), 0 for a success: avg = error rate, sum = error count, count = calls. */
  mcpCallError: 'mcp_call_error',
  /** Duration of one finished agent task attempt (ms; a timeout counts as its timeout). */
  agentTaskMs: 'agent_task_ms',
  /** 1 for a failed or timed-out task, 0 for a completed one. */
  agentTaskError: 'agent_task_error',
  /** Window aggregates, emitted every few seconds per series (rules watch these). */
  mcpCallP95Ms: 'mcp_call_p95_ms',
  mcpCallAvgMs: 'mcp_call_avg_ms',
  mcpCallErrorRatePercent: 'mcp_call_error_rate_percent',
  agentTaskP95Ms: 'agent_task_p95_ms',
  agentTaskAvgMs: 'agent_task_avg_ms',
  agentTaskErrorRatePercent: 'agent_task_error_rate_percent',
} as const;

export type McpCallOutcome = 'success' | 'tool_error' | 'error' | 'rejected';
export type AgentTaskOutcome = 'completed' | 'failed' | 'timed_out';

/** One finished MCP tool call or agent task, as the metrics see it. */
export type CallObservation =
  | {
      readonly kind: 'mcp';
      readonly server: string;
      readonly tool: string;
      readonly outcome: McpCallOutcome;
      readonly errorCode: string | null;
      readonly durationMs: number;
      readonly at: number;
    }
  | {
      readonly kind: 'agent';
      readonly agent: string;
      readonly taskType: string;
      readonly outcome: AgentTaskOutcome;
      readonly errorCode: string | null;
      readonly durationMs: number;
      readonly at: number;
    };

// Only the fields the metrics need: the producers' full schemas live with them
// (libs/contracts/src/mcp-events.ts, libs/domain/src/task); extra fields are ignored.
const name = z.string().min(1);
const ms = z.number().finite().min(0);
const iso = z.string().optional();
const mcpSucceeded = z.object({ server: name, tool: name, duration_ms: ms, at: iso });
const mcpFailed = z.object({
  server: name,
  tool: name,
  duration_ms: ms,
  outcome: z.enum(['tool_error', 'error', 'rejected']),
  error_code: z.string().optional(),
  at: iso,
});
const taskCompleted = z.object({ agent: name, task_type: name, duration_ms: ms, completed_at: iso });
const taskFailed = z.object({
  agent: name,
  task_type: name,
  duration_ms: ms,
  error: z.object({ code: z.string() }).optional(),
  failed_at: iso,
});
const taskTimedOut = z.object({ agent: name, task_type: name, timeout_ms: ms, timed_out_at: iso });

/** The event's own time when it carries a valid one, else when the store recorded it. */
function when(iso: string | undefined, recordedAt: Date | number): number {
  const t = iso ? Date.parse(iso) : Number.NaN;
  return Number.isFinite(t) ? t : typeof recordedAt === 'number' ? recordedAt : recordedAt.getTime();
}

/** What `toObservation` reads of a recorded event. */
export interface CallEventInput {
  readonly type: string;
  readonly data: unknown;
  readonly recordedAt: Date | number;
}

/**
 * The observation an event stands for; `null` for other event types. Throws a ZodError
 * when a handled type carries data without the needed fields (the caller logs and skips it).
 */
export function toObservation(e: CallEventInput): CallObservation | null {
  switch (e.type) {
    case 'McpToolSucceeded': {
      const d = mcpSucceeded.parse(e.data);
      return {
        kind: 'mcp',
        server: d.server,
        tool: d.tool,
        outcome: 'success',
        errorCode: null,
        durationMs: d.duration_ms,
        at: when(d.at, e.recordedAt),
      };
    }
    case 'McpToolFailed': {
      const d = mcpFailed.parse(e.data);
      return {
        kind: 'mcp',
        server: d.server,
        tool: d.tool,
        outcome: d.outcome,
        errorCode: d.error_code ?? null,
        durationMs: d.duration_ms,
        at: when(d.at, e.recordedAt),
      };
    }
    case 'TaskCompleted': {
      const d = taskCompleted.parse(e.data);
      return {
        kind: 'agent',
        agent: d.agent,
        taskType: d.task_type,
        outcome: 'completed',
        errorCode: null,
        durationMs: d.duration_ms,
        at: when(d.completed_at, e.recordedAt),
      };
    }
    case 'TaskFailed': {
      const d = taskFailed.parse(e.data);
      return {
        kind: 'agent',
        agent: d.agent,
        taskType: d.task_type,
        outcome: 'failed',
        errorCode: d.error?.code ?? null,
        durationMs: d.duration_ms,
        at: when(d.failed_at, e.recordedAt),
      };
    }
    case 'TaskTimedOut': {
      const d = taskTimedOut.parse(e.data);
      return {
        kind: 'agent',
        agent: d.agent,
        taskType: d.task_type,
        outcome: 'timed_out',
        errorCode: 'timeout',
        durationMs: d.timeout_ms,
        at: when(d.timed_out_at, e.recordedAt),
      };
    }
    default:
      return null;
  }
}

/** The stored samples of one observation (see {@link callMetricNames}). */
export function samplesOf(o: CallObservation): Sample[] {
  if (o.kind === 'mcp') {
    const labels = { server: o.server, tool: o.tool };
    const out: Sample[] = [
      { metric: callMetricNames.mcpCallError, labels, ts: o.at, value: o.outcome === 'success' ? 0 : 1 },
    ];
    // A rejected call (open circuit, bad input) took no server time: it would drag the latency down.
    if (o.outcome !== 'rejected')
      out.push({ metric: callMetricNames.mcpCallMs, labels, ts: o.at, value: o.durationMs });
    return out;
  }
  const labels = { agent: o.agent, task_type: o.taskType };
  return [
    { metric: callMetricNames.agentTaskMs, labels, ts: o.at, value: o.durationMs },
    { metric: callMetricNames.agentTaskError, labels, ts: o.at, value: o.outcome === 'completed' ? 0 : 1 },
  ];
}

/** One series' figures over the aggregation window (from the raw samples). */
export interface WindowFigures {
  readonly labels: Readonly<Record<string, string>>;
  readonly count: number;
  readonly avg: number;
  readonly p95: number;
}

/**
 * Samples of the window aggregates at `now`: p95 and avg latency per series, and the error
 * rate in % (from the 0/1 error series). Only series with calls in the window get a sample:
 * no calls is no evidence, neither a breach nor a recovery.
 */
export function windowSamples(
  kind: 'mcp' | 'agent',
  latency: readonly WindowFigures[],
  errors: readonly WindowFigures[],
  now: number,
): Sample[] {
  const n =
    kind === 'mcp'
      ? {
          p95: callMetricNames.mcpCallP95Ms,
          avg: callMetricNames.mcpCallAvgMs,
          rate: callMetricNames.mcpCallErrorRatePercent,
        }
      : {
          p95: callMetricNames.agentTaskP95Ms,
          avg: callMetricNames.agentTaskAvgMs,
          rate: callMetricNames.agentTaskErrorRatePercent,
        };
  const out: Sample[] = [];
  for (const f of latency) {
    if (f.count === 0) continue;
    out.push({ metric: n.p95, labels: f.labels, ts: now, value: f.p95 });
    out.push({ metric: n.avg, labels: f.labels, ts: now, value: f.avg });
  }
  for (const f of errors) {
    if (f.count === 0) continue;
    out.push({ metric: n.rate, labels: f.labels, ts: now, value: Math.round(f.avg * 100_000) / 1_000 });
  }
  return out;
}
