import type {
  AgentCard,
  CancelTaskRequest,
  GetTaskPushNotificationConfigRequest,
  GetTaskRequest,
  ListTaskPushNotificationConfigsRequest,
  ListTaskPushNotificationConfigsResponse,
  ListTasksRequest,
  ListTasksResponse,
  Message,
  SendMessageRequest,
  StreamResponse,
  SubscribeToTaskRequest,
  Task,
  TaskPushNotificationConfig,
} from '@a2a-js/sdk';
import {
  DefaultRequestHandler,
  DefaultExecutionEventBusManager,
  type RequestContext,
  type ServerCallContext,
} from '@a2a-js/sdk/server';
import { RequestMalformedError, TaskNotFoundError } from '@a2a-js/sdk/errors';
import type { EgressGuard, Logger } from '@switchyard/platform';
import {
  A2A_STATE,
  cancelWork,
  resultArtifact,
  statusOf,
  WorkExecutor,
  type Backend,
  type WorkStatus,
} from './executor.js';
import { parseWorkRequest, type WorkRequest } from './message.js';
import type { PushDelivery } from './push.js';
import { redactPushConfig, redactStreamResponse, redactTask, seesPayloads } from './redaction.js';
import { linkOf, type PgPushNotificationStore, type PgTaskStore } from './store.js';

const FINAL_STATES: readonly number[] = [A2A_STATE.completed, A2A_STATE.failed, A2A_STATE.canceled, 7 /* rejected */];

/**
 * The SDK's request handler with what Switchyard adds around it:
 * - a message is checked (skill, and its input against the skill's schema, as the REST start
 *   checks it) before a task exists: a bad one is JSON-RPC -32602;
 * - a task no process follows any more (the gateway restarted while it ran) is brought up to
 *   date from the delegation or execution it maps to when it is read, canceled or resubscribed,
 *   and a cancel then cancels that work in Switchyard too;
 * - push notification URLs must pass the egress guard when they are set, and a task brought up
 *   to date that way gets the notifications of its new state (keyed: never sent twice);
 * - a key below operator reads tasks without their payloads (artifacts, history), and nobody
 *   reads a push notification config's token or credentials back (see redaction.ts); a config
 *   another key set reads with its URL cut to its origin (its path or query can be a credential).
 */
export class SwitchyardRequestHandler extends DefaultRequestHandler {
  readonly executor: WorkExecutor;
  /** message/send of one caller and messageId in progress here (see sendMessage). */
  private readonly sends = new Map<string, Promise<void>>();

  constructor(
    card: AgentCard,
    private readonly tasks: PgTaskStore,
    private readonly backend: Backend,
    private readonly pushStore: PgPushNotificationStore,
    private readonly push: PushDelivery,
    private readonly guard: EgressGuard,
    log: Logger,
    extendedCard?: (context: ServerCallContext) => Promise<AgentCard>,
  ) {
    // The SDK has put the new task's id on the message by now; the check against follow-ups ran in preflight.
    const executor = new WorkExecutor(
      backend,
      (ctx: RequestContext) => parseFor(backend, { ...ctx.userMessage, taskId: '' }),
      log,
    );
    // One bus per task for every caller: the SDK's default keeps one per user, so a viewer's
    // tasks/resubscribe to an operator's running task found none and ended after the snapshot.
    // Who may read a task is the task store's and the router's to say, not the bus's.
    super(
      card,
      tasks,
      executor,
      new DefaultExecutionEventBusManager(() => 'every-caller'),
      pushStore,
      push,
      extendedCard,
    );
    this.executor = executor;
  }

  override async sendMessage(params: SendMessageRequest, context: ServerCallContext): Promise<Task | Message> {
    await this.preflight(params);
    const messageId = newTaskMessageId(params);
    if (messageId === undefined) return super.sendMessage(params, context);
    // A client that lost the answer sends the same message again (same messageId): it gets the
    // task the first made, as it now stands, instead of the work started a second time. Sends
    // of one messageId in this process take turns, so two at once make one task.
    const turn = `${context.user?.userName ?? ''}\u0000${messageId}`;
    const before = this.sends.get(turn) ?? Promise.resolve();
    const mine = before.then(async () => {
      const existing = await this.tasks.findByOriginMessage(messageId, context);
      if (existing) return this.getTask({ id: existing, tenant: params.tenant ?? '' }, context);
      return super.sendMessage(params, context);
    });
    const settled = mine.then(
      () => undefined,
      () => undefined,
    );
    this.sends.set(turn, settled);
    void settled.then(() => {
      if (this.sends.get(turn) === settled) this.sends.delete(turn);
    });
    return mine;
  }

  override async *sendMessageStream(
    params: SendMessageRequest,
    context: ServerCallContext,
  ): AsyncGenerator<StreamResponse, void, undefined> {
    await this.preflight(params);
    const messageId = newTaskMessageId(params);
    const existing = messageId !== undefined ? await this.tasks.findByOriginMessage(messageId, context) : undefined;
    // The same message again (see sendMessage): the stream of the task it made.
    if (existing) yield* this.resubscribe({ id: existing, tenant: params.tenant ?? '' }, context);
    else yield* super.sendMessageStream(params, context);
  }

  override async getTask(params: GetTaskRequest, context: ServerCallContext): Promise<Task> {
    await this.refresh(params.id, context);
    const task = await super.getTask(params, context);
    return seesPayloads(context) ? task : redactTask(task);
  }

  override async listTasks(params: ListTasksRequest, context: ServerCallContext): Promise<ListTasksResponse> {
    const page = await super.listTasks(params, context);
    return seesPayloads(context) ? page : { ...page, tasks: page.tasks.map(redactTask) };
  }

  override async getTaskPushNotificationConfig(
    params: GetTaskPushNotificationConfigRequest,
    context: ServerCallContext,
  ): Promise<TaskPushNotificationConfig> {
    const config = await super.getTaskPushNotificationConfig(params, context);
    const others = await this.pushStore.setByOthers(config.taskId || params.taskId, context);
    return redactPushConfig(config, !seesPayloads(context) || others.has(config.id));
  }

  override async listTaskPushNotificationConfigs(
    params: ListTaskPushNotificationConfigsRequest,
    context: ServerCallContext,
  ): Promise<ListTaskPushNotificationConfigsResponse> {
    const page = await super.listTaskPushNotificationConfigs(params, context);
    const cutUrl = !seesPayloads(context);
    const others = await this.pushStore.setByOthers(params.taskId, context);
    return { ...page, configs: page.configs.map((c) => redactPushConfig(c, cutUrl || others.has(c.id))) };
  }

  override async cancelTask(params: CancelTaskRequest, context: ServerCallContext): Promise<Task> {
    const task = await this.refresh(params.id, context);
    if (task && !isFinalTask(task) && !this.executor.isRunning(task.id)) {
      const link = linkOf(task);
      if (link) await cancelWork(this.backend, link.id, task.id);
    }
    return super.cancelTask(params, context);
  }

  override async *resubscribe(
    params: SubscribeToTaskRequest,
    context: ServerCallContext,
  ): AsyncGenerator<StreamResponse, void, undefined> {
    await this.refresh(params.id, context);
    if (seesPayloads(context)) yield* super.resubscribe(params, context);
    else for await (const update of super.resubscribe(params, context)) yield redactStreamResponse(update);
  }

  override async createTaskPushNotificationConfig(
    params: TaskPushNotificationConfig,
    context: ServerCallContext,
  ): Promise<TaskPushNotificationConfig> {
    await this.checkPushUrl(params.url);
    return super.createTaskPushNotificationConfig(params, context);
  }

  /** A push URL must be http(s), without credentials, and pass the egress guard: refused at once, not at the first delivery. */
  private async checkPushUrl(raw: string): Promise<void> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new RequestMalformedError('pushNotificationConfig.url must be an absolute http(s) URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new RequestMalformedError('pushNotificationConfig.url must be http or https');
    if (url.username || url.password)
      throw new RequestMalformedError(
        'pushNotificationConfig.url must not carry credentials; use token or authentication',
      );
    try {
      await this.guard.checkUrlResolved(url);
    } catch (err) {
      throw new RequestMalformedError(`pushNotificationConfig.url is refused: ${(err as Error).message}`);
    }
  }

  private async preflight(params: SendMessageRequest): Promise<WorkRequest> {
    const push = params.configuration?.taskPushNotificationConfig;
    if (push?.url) await this.checkPushUrl(push.url);
    const req = await parseFor(this.backend, params.message);
    await this.backend.check(req);
    return req;
  }

  /** The stored task, updated from its Switchyard work when no process follows it and it may have moved on. */
  private async refresh(taskId: string, context: ServerCallContext): Promise<Task | undefined> {
    if (!taskId || !taskId.trim()) return undefined;
    const task = await this.tasks.load(taskId);
    if (!task) throw new TaskNotFoundError(`Task not found: ${taskId}`);
    if (isFinalTask(task) || this.executor.isRunning(taskId)) return task;
    const link = linkOf(task);
    if (!link) return task;
    let w: WorkStatus;
    try {
      w = await this.backend.status(link.id);
    } catch {
      return task; // the backend cannot say now: answer with what is stored
    }
    if (A2A_STATE[w.state] === task.status?.state) return task;
    const updated: Task = {
      ...task,
      status: statusOf(task.id, task.contextId, w),
      artifacts: w.state === 'completed' ? [resultArtifact(w.result)] : task.artifacts,
    };
    await this.tasks.save(updated, context);
    // The events no process published: pushed now. One a stopped gateway handed over already has the same key and is not sent again.
    const ids = { taskId: task.id, contextId: task.contextId };
    if (w.state === 'completed') {
      const artifact = updated.artifacts[0]!;
      void this.push.send(
        {
          payload: {
            $case: 'artifactUpdate',
            value: { ...ids, artifact, append: false, lastChunk: true, metadata: undefined },
          },
        },
        context,
        updated,
      );
    }
    void this.push.send(
      { payload: { $case: 'statusUpdate', value: { ...ids, status: updated.status, metadata: undefined } } },
      context,
      updated,
    );
    return updated;
  }
}

const isFinalTask = (t: Task) => t.status !== undefined && FINAL_STATES.includes(t.status.state);

/**
 * The work a message asks for, its skill resolved against one copy of the endpoint's skills (a
 * message names one; however many names its parts hold, they cost no read each). A name the
 * copy lacks is looked up once more in a fresh copy, so a definition registered a moment ago is
 * found.
 */
async function parseFor(backend: Backend, message: SendMessageRequest['message']): Promise<WorkRequest> {
  let skills = await backend.skills();
  let missed = false;
  const resolve = (n: string) => {
    const s = backend.resolveSkill(n, skills);
    if (s === undefined) missed = true;
    return s;
  };
  try {
    return parseWorkRequest(message, resolve, skills);
  } catch (err) {
    if (!missed) throw err;
    skills = await backend.skills({ fresh: true });
    return parseWorkRequest(message, (n) => backend.resolveSkill(n, skills), skills);
  }
}

/** The messageId of a message that starts a new task (none names a task it continues), if it has one. */
function newTaskMessageId(params: SendMessageRequest): string | undefined {
  const m = params.message;
  if (!m || m.taskId) return undefined;
  return typeof m.messageId === 'string' && m.messageId.length > 0 && m.messageId.length <= 200
    ? m.messageId
    : undefined;
}
