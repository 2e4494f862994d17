import { Counter, Histogram, type Registry } from 'prom-client';
import type { CallObservation } from './observations.js';

// Seconds, from a fast local tool call to a slow agent: Prometheus' defaults stop at 10 s.
const mcpBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const agentBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/**
 * The call counters and latency histograms, registered in the monitor's prom-client registry
 * (so they are part of its Prometheus text). They count what THIS process applied since it
 * started: a restart resets them, which `rate()`/`increase()` handle like any counter reset.
 */
export class CallPrometheusMetrics {
  readonly mcpCalls: Counter<'server' | 'tool' | 'outcome'>;
  readonly mcpDuration: Histogram<'server' | 'tool' | 'outcome'>;
  readonly agentTasks: Counter<'agent' | 'task_type' | 'outcome'>;
  readonly agentDuration: Histogram<'agent' | 'task_type' | 'outcome'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.mcpCalls = new Counter({
      name: 'switchyard_mcp_calls_total',
      help: 'MCP tool calls by server, tool and outcome (success, tool_error, error, rejected)',
      labelNames: ['server', 'tool', 'outcome'],
      registers,
    });
    this.mcpDuration = new Histogram({
      name: 'switchyard_mcp_call_duration_seconds',
      help: 'MCP tool call duration as the caller waited for it',
      labelNames: ['server', 'tool', 'outcome'],
      buckets: mcpBuckets,
      registers,
    });
    this.agentTasks = new Counter({
      name: 'switchyard_agent_tasks_total',
      help: 'Finished agent task attempts by agent, task type and outcome (completed, failed, timed_out)',
      labelNames: ['agent', 'task_type', 'outcome'],
      registers,
    });
    this.agentDuration = new Histogram({
      name: 'switchyard_agent_task_duration_seconds',
      help: 'Agent task duration from assignment to its end (a timeout counts as its timeout)',
      labelNames: ['agent', 'task_type', 'outcome'],
      buckets: agentBuckets,
      registers,
    });
  }

  observe(o: CallObservation): void {
    if (o.kind === 'mcp') {
      const labels = { server: o.server, tool: o.tool, outcome: o.outcome };
      this.mcpCalls.inc(labels);
      this.mcpDuration.observe(labels, o.durationMs / 1000);
    } else {
      const labels = { agent: o.agent, task_type: o.taskType, outcome: o.outcome };
      this.agentTasks.inc(labels);
      this.agentDuration.observe(labels, o.durationMs / 1000);
    }
  }
}
