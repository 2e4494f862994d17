import { getEventListeners, setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
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
  ExecutionEventQueue,
  type AgentExecutionEvent,
  type ExecutionEventBus,
  type RequestContext,
  type ServerCallContext,
} from '@a2a-js/sdk/server';
import { RequestMalformedError, TaskNotFoundError, UnsupportedOperationError } from '@a2a-js/sdk/errors';
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
import { clientGoneOf, redactPushConfig, redactStreamResponse, redactTask, seesPayloads } from './redaction.js';
import { linkOf, type PgPushNotificationStore, type PgTaskStore } from './store.js';

const FINAL_STATES: readonly number[] = [A2A_STATE.completed, A2A_STATE.failed, A2A_STATE.canceled, 7 /* rejected */];

/**
 * One event bus per task for every caller: the SDK's default keeps one per user, so a viewer's
 * tasks/resubscribe to an operator's running task found none and ended after the snapshot. Who
 * may read a task is the task store's and the router's to say, not the bus's. A bus has a
 * listener for each stream following its task, as many as the peer's stream share lets open
 * (a stream lets go when its client leaves): more than Node's warning threshold of 10 is no leak.
 */
class TaskBuses extends DefaultExecutionEventBusManager {
  constructor() {
    super(() => 'every-caller');
  }

  override createOrGetByTaskId(taskId: string, context?: ServerCallContext): ExecutionEventBus {
    const bus = super.createOrGetByTaskId(taskId, context);
    if (bus instanceof EventTarget) setMaxListeners(0, bus);
    return bus;
  }
}

/** What the race against the client's leaving answers when it left first. */
const CLIENT_GONE = Symbol('client gone');
/**
 * A claim on a new-task message not refreshed for this long is taken over: its holder refreshes
 * it every sixth of it until the task row exists, so only a gateway that died lets it go stale.
 */
const ORIGIN_CLAIM_STALE_MS = 30_000;
/** How long a repeat of a message waits for the task another request is making before it gives up. */
const ORIGIN_WAIT_MS = 2 * ORIGIN_CLAIM_STALE_MS;

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
 *   another key set reads with its URL cut to its origin (its path or query can be a credential);
 * - a stream (`message/stream`, `tasks/resubscribe`) lets go of its task as soon as its client
 *   disconnects (see follow and whileClientListens).
 */
export class SwitchyardRequestHandler extends DefaultRequestHandler {
  readonly executor: WorkExecutor;
  /** The tasks' event buses (the SDK keeps its own reference private). */
  private readonly buses: TaskBuses;
  private readonly log: Logger;
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
    const buses = new TaskBuses();
    super(card, tasks, executor, buses, pushStore, push, extendedCard);
    this.executor = executor;
    this.buses = buses;
    this.log = log;
  }

  /** Listeners on a task's event bus now: the executor's side and one for each stream that follows it. */
  busListeners(taskId: string): number {
    const bus = this.buses.getByTaskId(taskId);
    return bus instanceof EventTarget ? getEventListeners(bus, 'event').length : 0;
  }

  override async sendMessage(params: SendMessageRequest, context: ServerCallContext): Promise<Task | Message> {
    await this.preflight(params);
    const messageId = newTaskMessageId(params);
    if (messageId === undefined) return super.sendMessage(params, context);
    // A client that lost the answer sends the same message again (same messageId): it gets the
    // task the first made, as it now stands, instead of the work started a second time. Sends
    // of one messageId in this process take turns, so two at once make one task.
    // Another gateway may get the same message at the same moment: the claim in PostgreSQL (see
    // makeOnce) decides which one makes the task.
    const turn = `${context.user?.userName ?? ''}\u0000${messageId}`;
    const before = this.sends.get(turn) ?? Promise.resolve();
    const mine = before.then(async () => {
      const made = await this.makeOnce(messageId, context, () => super.sendMessage(params, context));
      return made.existing !== undefined
        ? this.getTask({ id: made.existing, tenant: params.tenant ?? '' }, context)
        : made.result;
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
    if (messageId === undefined)
      return yield* this.whileClientListens(super.sendMessageStream(params, context), context);
    const claim = await this.claimOrigin(messageId, context);
    // The same message again (see sendMessage): the stream of the task it made.
    if (claim.existing !== undefined) return yield* this.followAs(claim.existing, context, true);
    try {
      yield* this.whileClientListens(super.sendMessageStream(params, context), context);
    } finally {
      await claim.release();
    }
  }

  /**
   * Run `make` (the SDK's send, which makes the task) unless a task for this caller's new-task
   * message exists or is being made by another call: then that task's id, once its row exists.
   */
  private async makeOnce<T>(
    messageId: string,
    context: ServerCallContext,
    make: () => Promise<T>,
  ): Promise<{ readonly existing: string } | { readonly existing?: undefined; readonly result: T }> {
    const claim = await this.claimOrigin(messageId, context);
    if (claim.existing !== undefined) return { existing: claim.existing };
    try {
      return { result: await make() };
    } finally {
      await claim.release();
    }
  }

  /**
   * The task a new-task message made, or the claim to make it. A claim held by another call
   * (this gateway's or another's) is waited out until its task row appears; a holder that stops
   * refreshing its claim (its gateway died before the row was written) loses it after
   * ORIGIN_CLAIM_STALE_MS. The holder refreshes it until the row exists, then lets it go.
   */
  private async claimOrigin(
    messageId: string,
    context: ServerCallContext,
  ): Promise<{ readonly existing: string } | { readonly existing?: undefined; release(): Promise<void> }> {
    const giveUpAt = Date.now() + ORIGIN_WAIT_MS;
    for (let pause = 10; ; pause = Math.min(pause * 2, 250)) {
      const existing = await this.tasks.findByOriginMessage(messageId, context);
      if (existing) return { existing };
      if (await this.tasks.claimOrigin(messageId, context, ORIGIN_CLAIM_STALE_MS)) {
        // A holder lets its claim go only once its task row is stored: a claim won just after
        // that (this call read no row a moment before) finds the row now.
        const made = await this.tasks.findByOriginMessage(messageId, context);
        if (!made) break;
        await this.tasks.releaseOrigin(messageId, context);
        return { existing: made };
      }
      if (Date.now() > giveUpAt)
        throw new Error(`a task for message ${messageId} is still being made by another request; send it again later`);
      await sleep(pause);
    }
    let released = false;
    const heartbeat = setInterval(() => {
      void this.tasks
        .findByOriginMessage(messageId, context)
        .then((made) => (made ? release() : released ? undefined : this.tasks.refreshOrigin(messageId, context)))
        .catch((err: unknown) => this.log.warn({ err, messageId }, 'refreshing the claim on an A2A message failed'));
    }, ORIGIN_CLAIM_STALE_MS / 6);
    heartbeat.unref();
    const release = async () => {
      clearInterval(heartbeat);
      if (released) return;
      released = true;
      await this.tasks
        .releaseOrigin(messageId, context)
        .catch((err: unknown) =>
          this.log.warn({ err, messageId }, 'letting go of the claim on an A2A message failed; it goes stale'),
        );
    };
    return { release };
  }

  /**
   * A new task's stream, answered while its client listens. The SDK's stream also carries the
   * task's updates to the task store and its push notifications, so once the client has gone
   * the rest is read here without it (as a non-blocking message/send's is), and the request and
   * its response are let go at once instead of being held until the task ends.
   */
  private async *whileClientListens(
    stream: AsyncGenerator<StreamResponse, void, undefined>,
    context: ServerCallContext,
  ): AsyncGenerator<StreamResponse, void, undefined> {
    const gone = clientGoneOf(context);
    if (!gone) return yield* stream;
    const left = new Promise<typeof CLIENT_GONE>((resolve) => {
      if (gone.aborted) resolve(CLIENT_GONE);
      else gone.addEventListener('abort', () => resolve(CLIENT_GONE), { once: true });
    });
    let ended = false;
    try {
      for (;;) {
        const next = stream.next();
        const step = await Promise.race([next, left]).catch((err: unknown) => {
          ended = true;
          throw err;
        });
        if (step === CLIENT_GONE) {
          ended = true;
          this.readWithoutClient(stream, next);
          return;
        }
        if (step.done) {
          ended = true;
          return;
        }
        yield step.value;
      }
    } finally {
      // Closed early by the transport (not by the client leaving): the task's updates are still read.
      if (!ended) this.readWithoutClient(stream);
    }
  }

  /** Reads a task's stream to its end with nobody to answer: what it stores and pushes still happens. */
  private readWithoutClient(
    stream: AsyncGenerator<StreamResponse, void, undefined>,
    pending?: Promise<IteratorResult<StreamResponse, void>>,
  ): void {
    void (async () => {
      if (pending && (await pending).done) return;
      for (;;) if ((await stream.next()).done) return;
    })().catch((err: unknown) =>
      this.log.warn({ err }, 'following a task whose message/stream client left failed; a later read catches up'),
    );
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
    yield* this.followAs(params.id, context, false);
  }

  /** The task brought up to date, then followed (see follow), as the caller may see it. */
  private async *followAs(
    taskId: string,
    context: ServerCallContext,
    endedAsTask: boolean,
  ): AsyncGenerator<StreamResponse, void, undefined> {
    await this.refresh(taskId, context);
    const updates = this.follow(taskId, context, endedAsTask);
    if (seesPayloads(context)) yield* updates;
    else for await (const update of updates) yield redactStreamResponse(update);
  }

  /**
   * The SDK's resubscribe (the stored task, then its live updates until it ends) that also ends
   * as soon as its client's connection closes. The SDK's waits for the task's next update with
   * its listener on the bus and never hears of the client: every stream a client dropped stayed,
   * with its request and response, until the task moved (a wait step's task: for days), and the
   * caller's stream share, freed at the close, did not bound them.
   */
  private async *follow(
    taskId: string,
    context: ServerCallContext,
    endedAsTask = false,
  ): AsyncGenerator<StreamResponse, void, undefined> {
    if (!(await this.getAgentCard()).capabilities?.streaming)
      throw new UnsupportedOperationError('Streaming (and thus resubscription) is not supported.');
    if (!taskId || !taskId.trim()) throw new RequestMalformedError('Task ID is required');
    const gone = clientGoneOf(context);
    if (gone?.aborted) return;
    const bus = this.buses.getByTaskId(taskId, context);
    // Listening before the read: an update between the two is not missed.
    const queue = bus ? new ExecutionEventQueue(bus) : undefined;
    const stop = () => queue?.stop();
    gone?.addEventListener('abort', stop, { once: true });
    try {
      const task = await this.tasks.load(taskId);
      if (!task) throw new TaskNotFoundError(`Task not found: ${taskId}`);
      // A repeated message/stream gets the task it made even when it has ended (as message/send
      // does); tasks/resubscribe to an ended task is refused, as A2A says.
      if (isFinalTask(task) && endedAsTask) return yield { payload: { $case: 'task', value: task } };
      if (isFinalTask(task))
        throw new UnsupportedOperationError(
          `Task ${taskId} is in a terminal state (${task.status?.state}) and cannot be subscribed to.`,
        );
      yield { payload: { $case: 'task', value: task } };
      if (!queue) return;
      for await (const event of queue.events()) {
        if (gone?.aborted) return;
        const update = updateOf(taskId, event);
        if (update) yield update;
      }
    } finally {
      gone?.removeEventListener('abort', stop);
      queue?.stop();
    }
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

/** A bus event as the update a stream following `taskId` sends, undefined for one it does not. */
function updateOf(taskId: string, event: AgentExecutionEvent): StreamResponse | undefined {
  switch (event.kind) {
    case 'statusUpdate':
      return event.data.taskId === taskId ? { payload: { $case: 'statusUpdate', value: event.data } } : undefined;
    case 'artifactUpdate':
      return event.data.taskId === taskId ? { payload: { $case: 'artifactUpdate', value: event.data } } : undefined;
    case 'task':
      return event.data.id === taskId ? { payload: { $case: 'task', value: event.data } } : undefined;
    default:
      return undefined; // a message ends no stream here: Switchyard's work answers with tasks
  }
}

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
