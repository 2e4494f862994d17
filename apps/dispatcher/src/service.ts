import type { NatsConnection } from '@nats-io/nats-core';
import { z } from 'zod';
import {
  tasksSubject,
  agentNameInput,
  registerAgentInput,
  taskCancelInput,
  taskExecuteInput,
  taskIdInput,
  taskSubmitInput,
  unregisterAgentInput,
  type TaskExecuteReply,
  type TaskSubmitReply,
} from '@switchyard/contracts';
import { addService, callProgressNotifier, type Service } from '@switchyard/messaging';
import { AppError, PauseWatch, type Logger } from '@switchyard/platform';
import { taskEndError, type Dispatcher } from './dispatcher.js';
import { taskIdForIdempotencyKey } from '@switchyard/contracts';

const empty = z.undefined().or(z.object({}).loose());

/**
 * The dispatcher's NATS service `tasks` (queue group `tasks`):
 * - `execute`: submit (idempotency key required) and reply when the task ends with
 *   `{ task_id, agent, instance, status: 'completed', result }`, or the AppError (timeout, illegal_state for canceled, the agent's code for failed);
 *   the workflow engine's `agent:<task_type>` steps use it,
 * - `submit`: reply at once `{ task_id, status, agent, instance, duplicate }`,
 * - `get`, `cancel`, `agents` (health of all), `agent` (health of one), `capabilities`, `performance`,
 * - `register_agent` (store and use an external HTTP agent; replies with its health view) and
 *   `unregister_agent` (`{ removed: name }`; `not_found` for a name not registered).
 */
export async function startTasksService(
  nc: NatsConnection,
  dispatcher: Dispatcher,
  logger: Logger,
  pauses: PauseWatch = new PauseWatch(),
): Promise<Service> {
  pauses.start();
  const submit = (input: z.output<typeof taskSubmitInput>, correlationId: string) =>
    dispatcher.submit(
      {
        task_type: input.task_type,
        context: input.context,
        priority: input.priority,
        ...(input.agent !== undefined ? { agent: input.agent } : {}),
        ...(input.idempotency_key !== undefined ? { idempotency_key: input.idempotency_key } : {}),
        ...(input.timeout_ms !== undefined ? { timeout_ms: input.timeout_ms } : {}),
        ...(input.max_attempts !== undefined ? { max_attempts: input.max_attempts } : {}),
        ...(input.actor !== undefined ? { actor: input.actor } : {}),
        ...(input.on_behalf_of !== undefined ? { on_behalf_of: input.on_behalf_of } : {}),
      },
      input.correlation_id ?? correlationId,
    );
  const service = await addService(nc, {
    name: 'tasks',
    version: '1.0.0',
    description: 'Task delegation to AI agents: queue, priorities, retries, timeouts',
    logger,
    endpoints: {
      execute: {
        subject: tasksSubject('execute'),
        schema: taskExecuteInput,
        handler: async (input, ctx): Promise<TaskExecuteReply> => {
          refuseIfStale(input.timeout_ms, pauses, logger, input.idempotency_key, ctx.correlationId);
          // The caller times the task's own work: tell it when the task waits for an agent and when it got one
          // (watching before the submit, by the id its key gives, so an assignment right after it is not missed).
          // While the task is queued the notice is repeated (a heartbeat), so the caller can tell a
          // dispatcher that died with its request from a long queue, and send the request again.
          const progress = input.progress_subject
            ? callProgressNotifier(
                nc,
                input.progress_subject,
                input.idempotency_key,
                undefined,
                input.progress_first_only === true,
              )
            : undefined;
          // `queued` only once the submission's own placement is over: a task recorded queued and
          // assigned a moment later (a pass over the queue) did not wait, and told `queued` its
          // caller would record the wait (the workflow engine appends StepQueued and StepStarted).
          let submitted = false;
          let told = false;
          const tell = (state: 'queued' | 'started') => {
            if (state === 'queued' && !submitted) return;
            told = true;
            progress?.tell(state);
          };
          const unwatch = progress
            ? dispatcher.watchProgress(taskIdForIdempotencyKey(input.idempotency_key), tell)
            : () => undefined;
          try {
            const sub = await submit(input, ctx.correlationId);
            submitted = true;
            if (sub.status === 'queued' && !told) tell('queued');
            else if (sub.status === 'assigned' || sub.status === 'working') tell('started');
            const end = await dispatcher.waitForEnd(sub.task_id, sub.state);
            if (end.status !== 'completed') throw taskEndError(end);
            return {
              task_id: end.task_id,
              agent: end.assigned_agent,
              instance: end.instance,
              status: 'completed',
              result: end.result,
            };
          } finally {
            unwatch();
            progress?.close();
          }
        },
      },
      submit: {
        subject: tasksSubject('submit'),
        schema: taskSubmitInput,
        handler: async (input, ctx): Promise<TaskSubmitReply> => {
          const { state: _state, ...reply } = await submit(input, ctx.correlationId);
          return reply;
        },
      },
      get: { subject: tasksSubject('get'), schema: taskIdInput, handler: (input) => dispatcher.get(input.task_id) },
      cancel: {
        subject: tasksSubject('cancel'),
        schema: taskCancelInput,
        handler: (input, ctx) => dispatcher.cancel(input.task_id, input.reason, input.actor, ctx.correlationId),
      },
      agents: {
        subject: tasksSubject('agents'),
        schema: empty,
        handler: () => ({
          agents: dispatcher.health(),
          queued: dispatcher.queuedCount(),
          checked_at: new Date().toISOString(),
        }),
      },
      agent: {
        subject: tasksSubject('agent'),
        schema: agentNameInput,
        handler: (input) => {
          const one = dispatcher.health().find((h) => h.agent === input.agent);
          if (!one)
            throw new AppError('not_found', `no agent named ${input.agent}`, {
              agent: input.agent,
              known: dispatcher.health().map((h) => h.agent),
            });
          return one;
        },
      },
      capabilities: { subject: tasksSubject('capabilities'), schema: empty, handler: () => dispatcher.capabilities() },
      performance: {
        subject: tasksSubject('performance'),
        schema: empty,
        handler: async () => ({ agents: await dispatcher.performance() }),
      },
      register_agent: {
        subject: tasksSubject('register_agent'),
        schema: registerAgentInput,
        handler: (input, ctx) => dispatcher.registerAgent(input, ctx.correlationId),
      },
      unregister_agent: {
        subject: tasksSubject('unregister_agent'),
        schema: unregisterAgentInput,
        handler: (input, ctx) => dispatcher.removeAgent(input.name, input.actor, ctx.correlationId),
      },
    },
  });
  void service.stopped.finally(() => pauses.stop());
  return service;
}

/**
 * A workflow step's task request read while this dispatcher wakes from a pause longer than the
 * task's timeout may have waited out the pause in the socket's buffer: its caller has timed the
 * attempt out and retried it under a new key, so running it now would run the step's work a
 * second time (the key of the attempt it carries is not the retry's). It is refused `unavailable`
 * (the caller may try again) and nothing is recorded. Only the monotonic clock decides (how long
 * this process was away), so no host's wall clock needs to agree; a request sent just before the
 * waking is refused too, and its caller's retry policy sends it again.
 */
function refuseIfStale(
  timeoutMs: number | undefined,
  pauses: PauseWatch,
  logger: Logger,
  idempotencyKey: string,
  correlationId: string,
): void {
  const paused = pauses.pausedFor();
  if (paused === 0 || timeoutMs === undefined || timeoutMs > paused) return;
  logger.warn(
    { pausedMs: paused, timeoutMs, idempotencyKey, correlationId },
    'refusing a task request read while waking from a pause longer than its timeout',
  );
  throw new AppError(
    'unavailable',
    `this dispatcher was paused for ${paused} ms, longer than the task's timeout (${timeoutMs} ms): the request may have waited out its caller, so it was not run`,
    { paused_ms: paused, timeout_ms: timeoutMs },
    true,
  );
}
