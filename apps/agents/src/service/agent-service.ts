import type pg from 'pg';
import { z } from 'zod';
import type { NatsConnection } from '@nats-io/nats-core';
import { addService, type Service } from '@switchyard/messaging';
import { newId, type Logger } from '@switchyard/platform';
import {
  subjectToken,
  AGENT_SERVICE_VERSION,
  agentCancelInput,
  agentExecuteInput,
  agentInstanceSubject,
  agentServiceName,
  agentSubject,
  type AgentCapabilitiesReply,
  type AgentServiceMetadata,
} from '@switchyard/contracts';
import type { LlmClient } from '../llm.js';
import { AgentRuntime } from './runtime.js';

export interface StartAgentOptions {
  readonly nats: NatsConnection;
  /** The business database. */
  readonly pool: pg.Pool;
  /** Agent name from the capability cards (`data_analyst` ...). */
  readonly agent: string;
  /** Unique per running instance; becomes a subject token. Default: a random id. */
  readonly instanceId?: string;
  readonly logger: Logger;
  /** Overrides the card's maxConcurrency. */
  readonly maxConcurrency?: number;
  /** Also serve the benchmark/test-only `noop` task type. Default false. */
  readonly noop?: boolean;
  readonly llm?: LlmClient;
}

export interface AgentHandle {
  readonly agent: string;
  readonly instanceId: string;
  readonly runtime: AgentRuntime;
  readonly service: Service;
  /** Abort running handlers and stop the service (its subscriptions drain). */
  stop(): Promise<void>;
}

const empty = z.undefined().or(z.object({}).loose());

/**
 * Register one agent instance as a NATS micro-service (`agent-<name>`, version 1.0.0, the
 * capability card in its `$SRV.INFO` metadata) with endpoints:
 * - `execute` on the agent subject in the `agent-<name>` queue group (instances share the load),
 * - `execute_instance`, `cancel`, `load_instance` on the instance's own subjects,
 * - `capabilities` and `load` on the agent subject.
 * A task beyond max concurrency is refused with `unavailable` (busy); bad context is a 400
 * naming the field; `cancel` aborts the handler's AbortSignal.
 */
export async function startAgent(opts: StartAgentOptions): Promise<AgentHandle> {
  const instanceId = subjectToken(opts.instanceId ?? newId().slice(0, 8));
  const runtime = new AgentRuntime({
    agent: opts.agent,
    instanceId,
    pool: opts.pool,
    logger: opts.logger,
    ...(opts.maxConcurrency !== undefined ? { maxConcurrency: opts.maxConcurrency } : {}),
    ...(opts.noop !== undefined ? { noop: opts.noop } : {}),
    ...(opts.llm ? { llm: opts.llm } : {}),
  });
  const agent = runtime.agent;
  const name = agentServiceName(agent);
  const cardJson = runtime.cardJson();
  const metadata: AgentServiceMetadata = {
    kind: 'agent',
    agent,
    instance: instanceId,
    max_concurrency: String(runtime.maxConcurrency),
    task_types: runtime.taskTypes.join(','),
    card: JSON.stringify(cardJson),
  };

  const execute = async (input: z.output<typeof agentExecuteInput>, ctx: { correlationId: string }) =>
    runtime.run({ ...input, correlationId: ctx.correlationId }, () => {
      // Best effort: a lost notice only means the task is shown as `assigned` until its result.
      if (input.notify_subject) {
        opts.nats.publish(
          input.notify_subject,
          JSON.stringify({ task_id: input.task_id, attempt: input.attempt, instance: instanceId, agent }),
        );
      }
    });

  const service = await addService(opts.nats, {
    name,
    version: AGENT_SERVICE_VERSION,
    description: runtime.card.description,
    queue: name,
    metadata,
    logger: opts.logger,
    endpoints: {
      execute: { subject: agentSubject(agent, 'execute'), schema: agentExecuteInput, handler: execute },
      execute_instance: {
        subject: agentInstanceSubject(agent, instanceId, 'execute'),
        schema: agentExecuteInput,
        handler: execute,
        queue: instanceId,
      },
      cancel: {
        subject: agentInstanceSubject(agent, instanceId, 'cancel'),
        schema: agentCancelInput,
        queue: instanceId,
        handler: (input) => ({ task_id: input.task_id, canceled: runtime.cancel(input.task_id, input.reason) }),
      },
      capabilities: {
        subject: agentSubject(agent, 'capabilities'),
        schema: empty,
        handler: (): AgentCapabilitiesReply => ({
          agent,
          instance: instanceId,
          card: cardJson as AgentCapabilitiesReply['card'],
        }),
      },
      load: { subject: agentSubject(agent, 'load'), schema: empty, handler: () => runtime.load() },
      load_instance: {
        subject: agentInstanceSubject(agent, instanceId, 'load'),
        schema: empty,
        queue: instanceId,
        handler: () => runtime.load(),
      },
    },
  });
  opts.logger.debug(
    { agent, instance: instanceId, service: name, taskTypes: runtime.taskTypes },
    'agent service started',
  );

  let stopped = false;
  return {
    agent,
    instanceId,
    runtime,
    service,
    async stop() {
      if (stopped) return;
      stopped = true;
      runtime.abortAll();
      await service.stop().catch(() => undefined);
    },
  };
}
