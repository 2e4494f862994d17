import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';

import { serviceSubject } from '@switchyard/contracts';
import { request } from '@switchyard/messaging';
import { AppError, newId } from '@switchyard/platform';
import {
  agentHealthReply,
  agentHealthView,
  capabilitiesReply,
  performanceReply,
  TASKS_SERVICE,
  taskExecuteReply,
  taskSubmitReply,
  taskView,
  unregisterAgentReply,
  type ExternalAgent,
  type TaskPriority,
} from '@switchyard/domain';
import { currentActor } from '../../http/context.js';
import { NATS_CONNECTION } from '../../tokens.js';

export interface DelegateRequest {
  readonly task_type: string;
  readonly context: Record<string, unknown>;
  readonly priority: TaskPriority;
  readonly agent?: string;
  readonly timeout_ms?: number;
}

const subject = (endpoint: string) => serviceSubject(TASKS_SERVICE, endpoint);

/** Talks to the dispatcher's `tasks` service over NATS; the dispatcher's AppError codes come back unchanged. */
@Injectable()
export class AgentsClient {
  constructor(@Inject(NATS_CONNECTION) private readonly nc: NatsConnection) {}

  /**
   * Submit; with `waitMs`, also wait for the end (same idempotency key -> same task) and return
   * the result, or the task as it is when the wait runs out (`done: false`).
   */
  async delegate(req: DelegateRequest, correlationId: string, opts: { idempotencyKey?: string; waitMs?: number } = {}) {
    const key = opts.idempotencyKey ?? newId();
    // The request's actor (`apikey:<id>`) goes into the TaskSubmitted metadata (audit).
    const input = { ...req, idempotency_key: key, correlation_id: correlationId, actor: currentActor() ?? 'anonymous' };
    const submitted = await request(this.nc, subject('submit'), input, { schema: taskSubmitReply, correlationId });
    if (opts.waitMs === undefined) return { done: false as const, submitted };
    try {
      const r = await request(this.nc, subject('execute'), input, { schema: taskExecuteReply, correlationId, timeoutMs: opts.waitMs });
      return { done: true as const, submitted, result: r };
    } catch (err) {
      // The wait ran out, not the task: answer with where it stands.
      if (err instanceof AppError && err.code === 'timeout' && err.details.task_id === undefined) {
        return { done: false as const, submitted: { ...submitted, ...(await this.statusOf(submitted.task_id, correlationId)) } };
      }
      // The task ended failed on an error its agent did not expect: the request itself was
      // fine, so not a 500; the agent's message stays in its log (it may hold internals).
      if (err instanceof AppError && err.code === 'internal' && typeof err.details.task_id === 'string') {
        const { task_id, status, agent, instance } = err.details;
        throw new AppError('illegal_state', `task ${task_id} failed on an internal error of its agent`, { task_id, status, agent, instance }, false);
      }
      throw err;
    }
  }

  private async statusOf(taskId: string, correlationId: string) {
    const v = await this.task(taskId, correlationId);
    return { status: v.status, agent: v.agent, instance: v.instance };
  }

  task(taskId: string, correlationId: string) {
    return request(this.nc, subject('get'), { task_id: taskId }, { schema: taskView, correlationId });
  }

  cancel(taskId: string, reason: string, actor: string, correlationId: string) {
    return request(this.nc, subject('cancel'), { task_id: taskId, reason, actor }, { schema: taskView, correlationId });
  }

  health(correlationId: string) {
    return request(this.nc, subject('agents'), undefined, { schema: agentHealthReply, correlationId });
  }

  agentHealth(agent: string, correlationId: string) {
    return request(this.nc, subject('agent'), { agent }, { schema: agentHealthView, correlationId });
  }

  capabilities(correlationId: string) {
    return request(this.nc, subject('capabilities'), undefined, { schema: capabilitiesReply, correlationId });
  }

  performance(correlationId: string) {
    return request(this.nc, subject('performance'), undefined, { schema: performanceReply, correlationId });
  }

  /** Store and use an external HTTP agent; the actor is recorded in ExternalAgentRegistered. */
  registerExternal(agent: ExternalAgent, actor: string, correlationId: string) {
    return request(this.nc, subject('register_agent'), { ...agent, actor }, { schema: agentHealthView, correlationId });
  }

  unregisterExternal(name: string, actor: string, correlationId: string) {
    return request(this.nc, subject('unregister_agent'), { name, actor }, { schema: unregisterAgentReply, correlationId });
  }
}

