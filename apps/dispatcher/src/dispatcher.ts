import type pg from 'pg';
import type { z } from 'zod';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  aliasesOf,
  resolveTaskType,
  serviceSubject,
  TASK_TYPE_ALIASES,
  builtinAgentCards as agentCards,
  builtinTaskTypes,
  agentStartedNotice,
  cardToJson,
  noopInput,
  NOOP_TASK_TYPE,
  taskIdForIdempotencyKey,
  taskViewOf,
  externalAgentSchema,
  externalAgentStreamId,
  registerAgentInput,
  type TaskSubmitReply,
  type TaskView,
  type AgentHealthView,
  type CapabilitiesReply,
  type ExternalAgentRegisteredData,
  type ExternalAgentRemovedData,
} from '@switchyard/contracts';
import {
  aggregateStream,
  FencedError,
  handleCommand,
  type AllSubscription,
  type CommandResult,
  type EventStore,
  type Fence,
} from '@switchyard/event-store';
import { asAppError } from '@switchyard/messaging';
import { fetchA2aCard } from './a2a-agents.js';
import { callA2a, callHttp, callNats, cancelOnInstance, isErrorCode } from './transport.js';
import {
  deleteExternalAgent,
  ensureExternalAgentsTable,
  storedExternalAgent,
  storedExternalAgents,
  storeExternalAgent,
} from './external-agent-store.js';
import { decideTaskCommand, type FollowUp } from './task-commands.js';
import { deleteSlotRows, reserveSlotRow, selectInstance } from './placement.js';
import {
  AppError,
  EgressGuard,
  egressPolicyFromEnv,
  isAppError,
  isConnectionError,
  newId,
  type EgressPolicy,
  type ErrorCode,
  type Logger,
} from '@switchyard/platform';
import {
  DEFAULT_AGING_MS,
  isDomainError,
  isTerminal,
  orderQueue,
  taskDelegationDecider,
  taskStreamId,
  type ExistingTaskState,
  type TaskCommand,
  type TaskError,
  type TaskEvent,
  type TaskState,
  type TaskPriority,
} from '@switchyard/domain';
import { InstanceRegistry, type AgentInstance } from './instances.js';
import { queryPerformance } from '@switchyard/read-models';
import { taskPartition } from './leases.js';

/**
 * Which tasks this dispatcher drives: those whose partition it holds a lease on (see
 * DispatcherLeases). Without one (a Dispatcher made directly) it drives every task, unfenced.
 */
export interface TaskOwnership {
  readonly partitions: number;
  readonly memberId: string;
  /** The fence of a held partition (also while it drains), else undefined. */
  fence(partition: number): Fence | undefined;
  /** Held and not draining: new work of the partition may start here. */
  accepting(partition: number): boolean;
  /** A write was fenced: the partition is someone else's now. */
  dropLost(partition: number): void;
}

export interface DispatcherOptions {
  readonly store: EventStore;
  readonly nats: NatsConnection;
  /** Read-model database (the tasks table, performance). */
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** Schema of the delegation read models. Default `delegation`. */
  readonly schema?: string;
  /** One priority level gained per this much waiting (aging). Default 30 s. */
  readonly agingMs?: number;
  /** The queue is also polled on this interval (besides on every event that frees capacity). Default 250 ms. */
  readonly pollIntervalMs?: number;
  /** Health/load probe interval. Default 1000 ms. */
  readonly healthIntervalMs?: number;
  /** `$SRV.INFO` discovery interval. Default 2000 ms. */
  readonly discoveryIntervalMs?: number;
  readonly discoveryWaitMs?: number;
  readonly probeTimeoutMs?: number;
  readonly breakerThreshold?: number;
  readonly breakerCooldownMs?: number;
  /** Limit of one attempt when the submitter gives none. Default 60 s. */
  readonly defaultTimeoutMs?: number;
  readonly defaultMaxAttempts?: number;
  /** Most tasks running at once per agent across all its instances (on top of each instance's own limit). */
  readonly agentConcurrency?: Readonly<Record<string, number>>;
  /**
   * External agents reached over the HTTP agent contract, from configuration: registered in
   * memory at every start, never stored (the configuration stays their source). Agents
   * registered at run time (`registerAgent`) are stored in `<schema>.external_agents` instead.
   */
  readonly externalAgents?: readonly z.input<typeof externalAgentSchema>[];
  /** How long a submit reply waits for a queue pass to place the task (after it is recorded). Default 250 ms. */
  readonly submitPlacementWaitMs?: number;
  /** Input schemas used to validate a submitted context. Default: the built-in task types and `noop`. */
  readonly taskSchemas?: Readonly<Record<string, z.ZodType>>;
  /**
   * Where external HTTP agents may be reached: the SSRF guard's exceptions (registration and
   * every call and probe are checked). Default from EGRESS_ALLOW_HOSTS / EGRESS_ALLOW_CIDRS;
   * without them only public addresses.
   */
  readonly egress?: EgressPolicy;
  /**
   * Bearer token of this system's agents' HTTP contract (AI_AGENT_AUTH_TOKEN, or the launcher's
   * generated one). Sent to an HTTP agent registered without a token of its own only when its URL
   * is on loopback (one of our agents on 6001-6006): never to a third party.
   */
  readonly agentToken?: string;
  /**
   * AI_AGENT_AUTH_TOKEN as the operator set it, never a generated one: the bearer of every
   * external HTTP agent registered without a token of its own (as MCP_AUTH_TOKEN is the MCP
   * servers' default). Unset, such an agent elsewhere than loopback gets no Authorization.
   */
  readonly externalAgentToken?: string;
  /** Partition ownership (startDispatcher gives its leases); unset: this dispatcher drives every task. */
  readonly ownership?: TaskOwnership;
  /** How long giving a partition back waits for its running attempts to end. Default 3000 ms. */
  readonly drainMs?: number;
}

/** An alias always names its canonical type, so an agent offering a type by that name would never get it. */
function refuseAliases(agent: string, taskTypes: readonly string[]): void {
  const taken = taskTypes.filter((t) => resolveTaskType(t).alias !== undefined);
  if (taken.length > 0) {
    throw new AppError(
      'validation',
      `task type${taken.length === 1 ? '' : 's'} ${taken.join(', ')} ${taken.length === 1 ? 'is an alias' : 'are aliases'} of built-in task types; use another name`,
      {
        agent,
        aliases: Object.fromEntries(taken.map((t) => [t, TASK_TYPE_ALIASES[t]])),
      },
      false,
    );
  }
}

export interface SubmitRequest {
  readonly task_type: string;
  readonly context: Record<string, unknown>;
  readonly priority: TaskPriority;
  readonly agent?: string;
  readonly idempotency_key?: string;
  readonly timeout_ms?: number;
  readonly max_attempts?: number;
  /** Who asked; recorded in the TaskSubmitted metadata (default `system:dispatcher`). */
  readonly actor?: string;
}

interface Run {
  readonly taskId: string;
  readonly assignment: number;
  readonly inst: AgentInstance;
  readonly controller: AbortController;
  /** When the execute request went out (ms). */
  readonly launchedAt: number;
  timer?: NodeJS.Timeout;
  done: boolean;
  /** The agent said it started (its best-effort notice arrived). */
  started?: boolean;
  /** When the notice arrived (the TaskStarted's time, even when it is appended with the completion). */
  noticedAt?: string;
  /** The StartTask of the notice has been handed to exec (alone, or with the completion). */
  startTaken?: boolean;
}

const ACTIVE = ['submitted', 'queued', 'assigned', 'working'];
/** Errors that another attempt cannot fix: the task fails at once. */
const FATAL: readonly ErrorCode[] = [
  'validation',
  'not_found',
  'illegal_state',
  'unauthorized',
  'forbidden',
  'payload_too_large',
];

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,40}$/;

const toTaskError = (e: AppError): TaskError => ({ code: e.code, message: e.message, details: e.details });

/**
 * The task dispatcher. Every decision is a command on the task's stream (TaskDelegation
 * decider, appended with the expected revision); the queue is the set of tasks whose state
 * is `queued`, persisted as events and in the `<schema>.tasks` read model, so a restarted
 * dispatcher recovers it. Selection: capability (task type in the card, or the agent asked
 * for) -> health (answers its probe, breaker not open, did not fail this task) -> load.
 * Order: effective priority with aging. Run it through startDispatcher, which keeps one active
 * dispatcher per system (a leader lock; other processes stand by).
 */
export class Dispatcher {
  readonly registry: InstanceRegistry;
  /** The SSRF guard of every external agent URL (registration, calls, probes). */
  private readonly egress: EgressGuard;
  private readonly log: Logger;
  private readonly active = new Map<string, ExistingTaskState>();
  /**
   * State and stream revision of every live task as this process last wrote or read it: commands
   * are decided against it and appended with that revision, without re-reading the stream. The
   * store's revision check still guards every append; a conflict drops the entry and falls back
   * to read-decide-append.
   */
  private readonly known = new Map<string, { state: TaskState; revision: number }>();
  private readonly runs = new Map<string, Run>();
  private readonly correlation = new Map<string, string>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly waiters = new Map<
    string,
    Set<{ resolve: (s: ExistingTaskState) => void; reject: (e: AppError) => void }>
  >();
  /** Callers following a task's wait for an agent (see watchProgress). */
  private readonly progressWatchers = new Map<string, Set<(state: 'queued' | 'started') => void>>();
  private readonly assigning = new Set<string>();
  /** Slot releases waiting for the one in flight (see releaseSlot). */
  private readonly releases: { readonly taskId: string; readonly assignment: number; readonly done: () => void }[] = [];
  private releasing: Promise<void> | undefined;
  private readonly schemas: Record<string, z.ZodType>;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly background = new Set<Promise<unknown>>();
  private readonly notifySubject: string;
  private readonly schema: string;
  /** Names of the external agents given by configuration (not stored, not removable at run time). */
  private readonly configuredAgents: ReadonlySet<string>;
  private notices?: Subscription;
  private submissions?: AllSubscription;
  /**
   * Tasks this process saw end, in two generations swapped every 30 s: the log watcher may
   * deliver a TaskSubmitted after its (fast) task ended here, and must not read its stream for that.
   */
  private ended = { current: new Set<string>(), previous: new Set<string>() };
  private pumpRun: Promise<void> | undefined;
  private pumpAgain = false;
  private probing = false;
  private discovering = false;
  private stopped = false;
  /** Appends of owned tasks carry their partition's fence (the store supports fences). */
  private readonly fencing: boolean;

  constructor(private readonly opts: DispatcherOptions) {
    this.log = opts.logger.child({ component: 'dispatcher' });
    this.notifySubject = `${serviceSubject('tasks', 'started')}.${newId().replace(/-/g, '')}`;
    this.schema = opts.schema ?? 'delegation';
    // Interpolated into SQL: a plain identifier only.
    if (!SCHEMA_NAME.test(this.schema)) throw new AppError('validation', `bad delegation schema name ${this.schema}`);
    const builtin: Record<string, z.ZodType> = {};
    for (const [type, def] of Object.entries(builtinTaskTypes as Record<string, { readonly input: z.ZodType }>))
      builtin[type] = def.input;
    builtin[NOOP_TASK_TYPE] = noopInput;
    this.schemas = { ...builtin, ...(opts.taskSchemas ?? {}) };
    this.egress = new EgressGuard(opts.egress ?? egressPolicyFromEnv());
    this.registry = new InstanceRegistry({
      nats: opts.nats,
      logger: opts.logger,
      egress: this.egress,
      ...(opts.discoveryWaitMs !== undefined ? { discoveryWaitMs: opts.discoveryWaitMs } : {}),
      ...(opts.probeTimeoutMs !== undefined ? { probeTimeoutMs: opts.probeTimeoutMs } : {}),
      ...(opts.breakerThreshold !== undefined ? { breakerThreshold: opts.breakerThreshold } : {}),
      ...(opts.breakerCooldownMs !== undefined ? { breakerCooldownMs: opts.breakerCooldownMs } : {}),
      onUp: () => this.kick(),
      onDown: (i, reason) => this.instanceLost(i, reason),
    });
    const configured = (opts.externalAgents ?? []).map((a) => externalAgentSchema.parse(a));
    for (const a of configured) refuseAliases(a.name, a.task_types);
    this.configuredAgents = new Set(configured.map((a) => a.name));
    this.fencing = !!opts.ownership && opts.store.supportsFences === true;
    if (opts.ownership && !this.fencing)
      this.log.warn(
        { store: opts.store.kind },
        'the event store cannot check fences: a dispatcher that lost a partition is stopped by its lease alone',
      );
    for (const a of configured) this.registry.registerHttp(a);
  }

  // ---- lifecycle ------------------------------------------------------------

  /**
   * 1. Load the stored external agents. 2. Listen for "started" notices. 3. Discover and probe
   * agents. 4. Recover the queue and in-flight tasks from the read model and their streams (so a
   * recovered task can go to a stored external agent). 5. Start the timers.
   * The read models must be caught up before (startDispatcher waits for its ProjectionRunner).
   */
  async start(): Promise<void> {
    await this.loadStoredAgents();
    this.notices = this.opts.nats.subscribe(this.notifySubject, {
      callback: (err, msg) => {
        if (err) return;
        const parsed = agentStartedNotice.safeParse(msg.json());
        if (parsed.success) void this.onStarted(parsed.data.task_id, parsed.data.attempt);
      },
    });
    this.watchReconnects();
    await this.registry.discover();
    await this.registry.probeAll();
    // Submissions recorded by others from here on are taken over; earlier ones come back with recover().
    const head = await this.opts.store.headPosition();
    await this.recover();
    this.watchSubmissions(head);
    const every = (ms: number, fn: () => Promise<void> | void) => {
      const t = setInterval(() => {
        // Kept until settled, so stop() can wait for a probe or discovery that is under way
        // (else it fails on the closing connection and logs a spurious warning).
        const p = Promise.resolve(fn()).catch(() => undefined);
        this.background.add(p);
        void p.finally(() => this.background.delete(p));
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.opts.pollIntervalMs ?? 250, () => this.kick());
    every(30_000, () => {
      this.ended = { current: new Set(), previous: this.ended.current };
    });
    every(this.opts.healthIntervalMs ?? 1_000, async () => {
      if (this.probing || this.stopped) return;
      this.probing = true;
      try {
        await this.registry.probeAll();
      } finally {
        this.probing = false;
      }
    });
    every(this.opts.discoveryIntervalMs ?? 2_000, async () => {
      if (this.discovering || this.stopped) return;
      this.discovering = true;
      try {
        await this.registry.discover();
      } finally {
        this.discovering = false;
      }
    });
    this.kick();
    this.log.info({ queued: this.queuedCount(), instances: this.registry.instances.size }, 'dispatcher started');
  }

  /**
   * Stop dispatching. Tasks in flight are left as they are in the store: the next dispatcher
   * recovers them (retrying those whose agent is gone). Waiting callers get `unavailable`.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.notices?.unsubscribe();
    await this.submissions?.close();
    await Promise.allSettled([...this.background]);
    for (const run of this.runs.values()) {
      run.done = true;
      clearTimeout(run.timer);
      run.controller.abort('dispatcher stopping');
    }
    this.runs.clear();
    await Promise.allSettled([...this.locks.values()]);
    // Slots given back by the last attempts go before the pool may close (a failure stops the retries now).
    while (this.releasing) await this.releasing;
    for (const [taskId, set] of this.waiters) {
      for (const w of set)
        w.reject(
          new AppError('unavailable', 'dispatcher stopped before the task ended; ask again', { task_id: taskId }),
        );
    }
    this.waiters.clear();
  }

  // ---- API (used by the NATS service) ---------------------------------------------

  /** Task types a submission may name: the built-in ones and whatever a live or registered agent offers. */
  knownTaskTypes(): string[] {
    const types = new Set(Object.keys(builtinTaskTypes));
    for (const i of this.registry.instances.values()) for (const t of i.taskTypes) types.add(t);
    return [...types].sort();
  }

  /**
   * Validate and submit a task, then try to place it at once. Idempotent on the key: the same
   * key returns the task created first (its id is derived from the key).
   */
  async submit(req: SubmitRequest, correlationId: string): Promise<TaskSubmitReply & { state: ExistingTaskState }> {
    if (this.stopped) throw new AppError('unavailable', 'dispatcher is stopping');
    // 1. An alias names its canonical type (recorded as requested_task_type); the type must be
    // known, and the context must fit its schema.
    const { taskType, alias } = resolveTaskType(req.task_type);
    this.check(taskType, req.context, req.agent);
    // 2. Submit (a duplicate submit decides nothing and returns the existing state).
    const taskId = req.idempotency_key ? taskIdForIdempotencyKey(req.idempotency_key) : newId();
    // Another dispatcher owns the task's partition: record the submission; the owner takes it from the log.
    if (!this.accepting(taskId)) return this.submitForeign(taskId, taskType, alias, req, correlationId);
    this.correlation.set(taskId, correlationId);
    // A fast task may end before this reply is made (a queue pass placed it, it ran): its end state is kept here, not read back.
    let ended: ExistingTaskState | undefined;
    const endWatch = { resolve: (s: ExistingTaskState) => void (ended = s), reject: () => undefined };
    let endWatchers = this.waiters.get(taskId);
    if (!endWatchers) this.waiters.set(taskId, (endWatchers = new Set()));
    endWatchers.add(endWatch);
    try {
      return await this.submitOwn(taskId, taskType, alias, req, correlationId, () => ended);
    } finally {
      const set = this.waiters.get(taskId);
      set?.delete(endWatch);
      if (set?.size === 0) this.waiters.delete(taskId);
    }
  }

  private async submitOwn(
    taskId: string,
    taskType: string,
    alias: string | undefined,
    req: SubmitRequest,
    correlationId: string,
    ended: () => ExistingTaskState | undefined,
  ): Promise<TaskSubmitReply & { state: ExistingTaskState }> {
    // 3a. When nothing else is waiting (so no task is overtaken) and an instance is free, the
    // assignment is decided with the submission and appended with it: one write instead of two.
    // Working by partitions, the instance's shared slot is reserved first (it needs a round trip).
    let pre: AgentInstance | undefined;
    if (
      this.opts.ownership &&
      !this.stopped &&
      this.assigning.size === 0 &&
      this.queuedCount() === 0 &&
      !this.known.has(taskId)
    ) {
      const inst = this.select({ task_type: taskType, agent: req.agent, failed_instances: [] });
      if (inst) {
        this.registry.reserve(inst);
        if ((await this.reserveSlot(taskId, inst, 1)) === 'ok') pre = inst;
        else this.registry.release(inst);
      }
    }
    let placed: AgentInstance | undefined;
    const assignNow: FollowUp = (s) => {
      if (s.status !== 'queued' || this.stopped) return undefined;
      let inst = pre;
      if (!this.opts.ownership) {
        if (this.assigning.size > 0 || this.queuedCount() > 0) return undefined;
        inst = this.select(s);
        if (inst) this.registry.reserve(inst);
      }
      if (!inst) return undefined;
      placed = inst;
      return {
        command: {
          type: 'AssignTask',
          data: { agent: inst.agent, instance: inst.instance },
          metadata: this.meta(taskId),
        },
        undo: () => {
          if (!this.opts.ownership) this.registry.release(inst);
          placed = undefined;
        },
      };
    };
    const unreserve = () => {
      if (!pre || placed === pre) return;
      this.registry.release(pre);
      void this.releaseSlot(taskId, 1);
    };
    let r: CommandResult<TaskEvent, TaskState>;
    try {
      r = await this.exec(
        taskId,
        {
          type: 'SubmitTask',
          data: this.submitData(taskId, taskType, alias, req),
          metadata: this.meta(taskId, req.actor),
        },
        assignNow,
      );
    } catch (err) {
      placed = undefined;
      unreserve();
      throw err;
    }
    if (placed && r.state.status !== 'assigned') placed = undefined;
    unreserve();
    const duplicate = r.events.length === 0;
    if (!duplicate)
      this.log.debug(
        { correlationId, taskId, taskType, ...(alias !== undefined ? { alias } : {}), priority: req.priority },
        'task submitted',
      );
    if (placed && r.state.status === 'assigned') this.launch(r.state, placed);
    // 3b. Otherwise a pass over the queue may place it, so the answer can name the agent; but
    // the reply waits for it only briefly: under load a pass (and the passes it coalesces with)
    // can take longer than the caller waits, and the task is recorded already.
    else if (!duplicate) await this.placeSoon();
    const state = (this.active.get(taskId) ?? ended() ?? (await this.load(taskId))) as ExistingTaskState;
    const view = taskViewOf(state);
    return { task_id: taskId, status: view.status, agent: view.agent, instance: view.instance, duplicate, state };
  }

  /** A SubmitTask's data with this dispatcher's defaults: the same whether this process or the partition's owner drives the task. */
  private submitData(taskId: string, taskType: string, alias: string | undefined, req: SubmitRequest) {
    return {
      task_id: taskId,
      task_type: taskType,
      ...(alias !== undefined ? { requested_task_type: alias } : {}),
      context: req.context ?? {},
      priority: req.priority,
      ...(req.agent !== undefined ? { agent: req.agent } : {}),
      max_attempts: req.max_attempts ?? this.opts.defaultMaxAttempts ?? 3,
      timeout_ms: req.timeout_ms ?? this.opts.defaultTimeoutMs ?? 60_000,
      ...(req.idempotency_key !== undefined ? { idempotency_key: req.idempotency_key } : {}),
    };
  }

  /**
   * The submission of a task whose partition another dispatcher holds: checked here, appended
   * like a caller's own submission (decided on the stream, `no_stream`, no fence: of this and
   * any other submitter exactly one writes the first events), then left to the owner, which
   * takes it over from the log. The reply says `queued` (or the state a duplicate found).
   */
  private async submitForeign(
    taskId: string,
    taskType: string,
    alias: string | undefined,
    req: SubmitRequest,
    correlationId: string,
  ): Promise<TaskSubmitReply & { state: ExistingTaskState }> {
    const r = await handleCommand(this.opts.store, taskStreamId(taskId), taskDelegationDecider, {
      type: 'SubmitTask',
      data: this.submitData(taskId, taskType, alias, req),
      metadata: { timestamp: new Date().toISOString(), correlationId, actor: req.actor ?? 'system:dispatcher' },
    });
    const state = r.state as ExistingTaskState;
    const duplicate = r.events.length === 0;
    if (!duplicate)
      this.log.info(
        { correlationId, taskId, taskType, partition: this.partitionOf(taskId) },
        'task submitted for the partition owner',
      );
    const view = taskViewOf(state);
    return { task_id: taskId, status: view.status, agent: view.agent, instance: view.instance, duplicate, state };
  }

  // ---- partitions ------------------------------------------------------------

  private partitionOf(taskId: string): number {
    return this.opts.ownership ? taskPartition(taskId, this.opts.ownership.partitions) : 0;
  }

  /** This dispatcher drives the task (holds its partition, maybe draining). */
  private owns(taskId: string): boolean {
    const o = this.opts.ownership;
    return !o || o.fence(taskPartition(taskId, o.partitions)) !== undefined;
  }

  /** New work of the task may start here (its partition is held and not being given back). */
  private accepting(taskId: string): boolean {
    const o = this.opts.ownership;
    return !o || o.accepting(taskPartition(taskId, o.partitions));
  }

  private fenceOf(taskId: string): Fence | undefined {
    const o = this.opts.ownership;
    if (!o || !this.fencing) return undefined;
    const f = o.fence(taskPartition(taskId, o.partitions));
    if (!f)
      throw new AppError(
        'unavailable',
        `task ${taskId} is in a partition this dispatcher no longer holds`,
        { task_id: taskId },
        true,
      );
    return f;
  }

  /**
   * Shared capacity: reserve the instance's slot for an attempt in `<schema>.assignments`, under
   * a per-agent transaction lock, counting every dispatcher's running attempts of the agent and
   * the instance against their limits, and only while this dispatcher's lease epoch of the task's
   * partition is current (the lease row is read FOR SHARE, so a takeover waits for the commit
   * or the reservation sees the new epoch). The row is the attempt's fenced assignment record.
   */
  private async reserveSlot(
    taskId: string,
    inst: AgentInstance,
    assignment: number,
  ): Promise<'ok' | 'agent_full' | 'instance_full' | 'fenced'> {
    const o = this.opts.ownership;
    if (!o) return 'ok';
    const p = taskPartition(taskId, o.partitions);
    const fence = o.fence(p);
    if (!fence) return 'fenced';
    return reserveSlotRow(
      this.opts.pool,
      this.schema,
      { taskId, assignment, partition: p, epoch: fence.epoch, memberId: o.memberId },
      inst,
      this.opts.agentConcurrency,
    ).catch((err) => {
      this.log.warn({ err, taskId }, 'reserving an agent slot failed');
      return 'fenced' as const;
    });
  }

  /**
   * Give an attempt's slot back (a conditional delete: only our own row of that attempt).
   * Releases group: while one delete is in flight the next ones wait and go together in one
   * statement, so concurrent tasks ending cost one round trip and one commit between them.
   */
  private releaseSlot(taskId: string, assignment: number): Promise<void> {
    if (!this.opts.ownership) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.releases.push({ taskId, assignment, done: resolve });
      this.flushReleases();
    });
  }

  private flushReleases(): void {
    if (this.releasing || this.releases.length === 0 || !this.opts.ownership) return;
    const memberId = this.opts.ownership.memberId;
    const batch = this.releases.splice(0, 500);
    const del = (rows: readonly { taskId: string; assignment: number }[]) =>
      // Retried through a database outage: a slot row left behind would hold one of the agent's slots for good.
      this.untilRecorded(rows[0]!.taskId, 'releasing agent slots', this.log, () =>
        deleteSlotRows(this.opts.pool, this.schema, rows, memberId),
      );
    this.releasing = (async () => {
      try {
        await del(batch);
      } catch (err) {
        // A SQL error (say a deadlock with a takeover's delete) rolled the whole batch back: one by one, so one row cannot keep the others.
        if (batch.length === 1 || isConnectionError(err))
          this.log.warn(
            { err, tasks: batch.length },
            'releasing agent slots failed; the next owner of the partition clears them',
          );
        else
          for (const r of batch)
            await del([r]).catch((e) =>
              this.log.warn(
                { err: e, taskId: r.taskId },
                'releasing an agent slot failed; the next owner of the partition clears it',
              ),
            );
      } finally {
        for (const r of batch) r.done();
        this.releasing = undefined;
        this.flushReleases();
      }
    })();
  }

  /**
   * Partitions just leased here (fences raised; the read model caught up by the caller): recover
   * their live tasks as after a restart.
   */
  async acquire(partitions: readonly number[]): Promise<void> {
    if (this.stopped) return;
    await this.recover(new Set(partitions));
    this.kick();
  }

  /** Forget a partition's tasks at once, writing nothing (the lease is gone; the new owner recovers them). */
  lose(partition: number): void {
    if (!this.opts.ownership) return;
    const mine = (id: string) => this.partitionOf(id) === partition;
    for (const run of [...this.runs.values()]) {
      if (!mine(run.taskId)) continue;
      run.done = true;
      clearTimeout(run.timer);
      this.runs.delete(run.taskId);
      this.registry.release(run.inst);
      run.controller.abort('partition lost');
    }
    for (const id of [...this.active.keys()]) if (mine(id)) this.active.delete(id);
    for (const id of [...this.known.keys()]) if (mine(id)) this.known.delete(id);
  }

  /** Giving a partition back: no new attempt starts there (accepting is false); wait for running ones (bounded), then forget it. */
  async drain(partition: number): Promise<void> {
    const until = Date.now() + (this.opts.drainMs ?? 3_000);
    const busy = () =>
      [...this.runs.values()].some((r) => this.partitionOf(r.taskId) === partition) ||
      [...this.locks.keys()].some((k) => !k.includes(':') && this.partitionOf(k) === partition);
    while (busy() && Date.now() < until && !this.stopped) await new Promise((r) => setTimeout(r, 50));
    this.lose(partition);
  }

  /** A task whose events someone else wrote (a cancel through another dispatcher, a gateway): catch up after our own commands on it. */
  private reconcile(taskId: string): void {
    const prev = this.locks.get(taskId) ?? Promise.resolve();
    const next = prev
      .catch(() => undefined)
      .then(async () => {
        if (!this.known.has(taskId) && !this.runs.has(taskId)) {
          if (this.waiters.has(taskId)) {
            const s = await this.load(taskId);
            if (s && isTerminal(s)) this.resolveWaiters(taskId, s);
          }
          return;
        }
        const s = await this.load(taskId);
        if (!s || !isTerminal(s)) return;
        this.known.delete(taskId);
        const run = this.runs.get(taskId);
        if (run) {
          this.finishRun(run);
          void cancelOnInstance(this.opts.nats, run.inst, taskId, `task ${s.status} elsewhere`);
        }
        this.track(taskId, s);
      })
      .catch((err) => this.log.warn({ err, taskId }, 'catching up with a task changed elsewhere failed'));
    this.locks.set(taskId, next);
    const clear = () => {
      if (this.locks.get(taskId) === next) this.locks.delete(taskId);
    };
    void next.then(clear, clear);
  }

  /** An external agent registered or removed through another dispatcher: take the stored row as it is now. */
  private async refreshStoredAgent(name: string): Promise<void> {
    if (this.configuredAgents.has(name)) return;
    const row = await storedExternalAgent(this.opts.pool, this.schema, name);
    const have = this.registry.instances.get(`http:${name}`);
    if (!row) {
      if (have) this.registry.unregisterHttp(name);
      return;
    }
    const parsed = externalAgentSchema.safeParse({ ...row, token: row.token ?? undefined });
    if (!parsed.success) return;
    const a = parsed.data;
    if (
      have &&
      have.url === a.url.replace(/\/+$/, '') &&
      have.token === a.token &&
      have.maxConcurrency === a.max_concurrency &&
      [...have.taskTypes].sort().join() === [...a.task_types].sort().join()
    )
      return;
    const inst = this.registry.registerHttp(a);
    await this.registry.probe(inst);
    this.kick();
  }

  /** A submission the dispatcher would refuse: unknown task type, a context outside its schema, an unknown agent (AppError validation). */
  private check(taskType: string, context: Record<string, unknown> | undefined, agent: string | undefined): void {
    const known = this.knownTaskTypes();
    if (!known.includes(taskType)) {
      throw new AppError(
        'validation',
        `unknown task_type ${taskType}; valid task types: ${known.join(', ')} (or an alias: ${Object.keys(TASK_TYPE_ALIASES).sort().join(', ')})`,
        {
          task_type: taskType,
          valid_task_types: known,
          aliases: TASK_TYPE_ALIASES,
        },
        false,
      );
    }
    const schema = this.schemas[taskType];
    if (schema) {
      const parsed = schema.safeParse(context ?? {});
      if (!parsed.success) {
        const issues = parsed.error.issues.map((i) => ({
          path: ['context', ...i.path.map(String)].join('.'),
          message: i.message,
        }));
        throw new AppError(
          'validation',
          `invalid context for ${taskType}: ${issues.map((i) => `${i.path} (${i.message})`).join('; ')}`,
          {
            task_type: taskType,
            errors: issues,
          },
          false,
        );
      }
    }
    if (agent !== undefined && !this.agentNames().includes(agent)) {
      throw new AppError(
        'validation',
        `unknown agent ${agent}; valid agents: ${this.agentNames().join(', ')}`,
        { agent: agent },
        false,
      );
    }
  }

  /**
   * Tell `listener` when the task (re)joins the queue (`queued`) and when it is assigned to an agent
   * (`started`: its own timeout counts from there), until the returned function is called.
   */
  watchProgress(taskId: string, listener: (state: 'queued' | 'started') => void): () => void {
    let set = this.progressWatchers.get(taskId);
    if (!set) this.progressWatchers.set(taskId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.progressWatchers.get(taskId) === set) this.progressWatchers.delete(taskId);
    };
  }

  /**
   * Resolve when the task has ended (completed, failed, canceled, timed out). `seen`: the state
   * the caller's submit just returned; an ended one is the answer, with no read.
   */
  async waitForEnd(taskId: string, seen?: ExistingTaskState): Promise<ExistingTaskState> {
    if (seen && isTerminal(seen)) return seen;
    // Register first, then look: an end that lands in between is not missed.
    const done = new Promise<ExistingTaskState>((resolve, reject) => {
      let set = this.waiters.get(taskId);
      if (!set) this.waiters.set(taskId, (set = new Set()));
      set.add({ resolve, reject });
    });
    // When the read below fails (the database restarting), nobody awaits `done`; stop() then
    // rejects it, and an unhandled rejection would reach the process. Callers that await it still see it.
    done.catch(() => undefined);
    // A live task this process is driving needs no read: its end passes through track().
    if (this.known.has(taskId)) return done;
    const now = await this.load(taskId);
    if (!now) {
      this.waiters.delete(taskId);
      throw new AppError('not_found', `no task ${taskId}`, { task_id: taskId });
    }
    if (isTerminal(now)) this.resolveWaiters(taskId, now);
    return done;
  }

  async get(taskId: string): Promise<TaskView> {
    const s = await this.load(taskId);
    if (!s) throw new AppError('not_found', `no task ${taskId}`, { task_id: taskId });
    return taskViewOf(s);
  }

  async cancel(taskId: string, reason: string, actor: string, correlationId?: string): Promise<TaskView> {
    if (!this.owns(taskId)) {
      // The owner sees the TaskCanceled in the log and stops the attempt on the agent.
      const r = await handleCommand(this.opts.store, taskStreamId(taskId), taskDelegationDecider, {
        type: 'CancelTask',
        data: { actor, reason },
        metadata: { timestamp: new Date().toISOString(), correlationId: correlationId ?? taskId, actor },
      }).catch((err: unknown) => {
        throw isDomainError(err) ? new AppError(err.code, err.message, err.details, false) : err;
      });
      if (r.state.status === 'initial') throw new AppError('not_found', `no task ${taskId}`, { task_id: taskId });
      this.log.info(
        { correlationId: correlationId ?? taskId, taskId, actor, reason },
        'task canceled (for the partition owner)',
      );
      return taskViewOf(r.state);
    }
    if (correlationId) this.correlation.set(taskId, correlationId);
    const r = await this.exec(taskId, {
      type: 'CancelTask',
      data: { actor, reason },
      metadata: this.meta(taskId, actor),
    });
    const ev = r.events[0];
    if (ev?.type === 'TaskCanceled' && ev.data.instance) {
      const run = this.runs.get(taskId);
      if (run) {
        this.finishRun(run);
        void cancelOnInstance(this.opts.nats, run.inst, taskId, 'canceled');
      }
    }
    this.log.info({ correlationId: this.cid(taskId), taskId, actor, reason }, 'task canceled');
    return taskViewOf(r.state as ExistingTaskState);
  }

  /**
   * Register (or replace) an external HTTP agent: stored first (so a restarted or standby
   * dispatcher knows it), recorded as ExternalAgentRegistered (without the token), then put
   * in the registry and probed right away.
   */
  async registerAgent(
    input: z.input<typeof registerAgentInput>,
    correlationId: string = newId(),
  ): Promise<AgentHealthView> {
    if (this.stopped) throw new AppError('unavailable', 'dispatcher is stopping');
    const { actor, ...given } = registerAgentInput.parse(input);
    this.refuseUnmanaged(given.name, 'registered');
    // An A2A agent: its JSON-RPC URL, skills (task types) and description come from its card (fetched through the egress guard).
    const a =
      given.a2a_card_url !== undefined
        ? await this.fromA2aCard({ ...given, a2a_card_url: given.a2a_card_url })
        : externalAgentSchema.parse(given);
    refuseAliases(a.name, a.task_types);
    // fetch refuses such a URL, and the URL goes into events: the secret belongs in `token`.
    const url = new URL(a.url);
    if (url.username || url.password) {
      throw new AppError(
        'validation',
        'url must not contain credentials (user:password@); give the bearer token in `token`',
        { agent: a.name },
        false,
      );
    }
    // An internal address (metadata service, loopback, the database) is refused here (403),
    // and again at every connection (the name may resolve elsewhere later).
    await this.egress.checkUrlResolved(url);
    return this.serially(`external_agent:${a.name}`, async () => {
      const at = new Date().toISOString();
      await storeExternalAgent(this.opts.pool, this.schema, a, at);
      const data: ExternalAgentRegisteredData = {
        name: a.name,
        url: a.url,
        task_types: a.task_types,
        has_token: a.token !== undefined,
        max_concurrency: a.max_concurrency,
        description: a.description,
        registered_at: at,
        ...(a.a2a_card_url !== undefined ? { a2a_card_url: a.a2a_card_url } : {}),
      };
      await this.opts.store.append(externalAgentStreamId(a.name), [
        {
          type: 'ExternalAgentRegistered',
          data,
          metadata: { timestamp: at, correlationId, actor: actor ?? 'system:dispatcher' },
        },
      ]);
      const inst = this.registry.registerHttp(a);
      await this.registry.probe(inst);
      this.log.info(
        { correlationId, agent: a.name, url: a.url, taskTypes: a.task_types, actor, healthy: inst.healthy },
        'external agent registered',
      );
      this.kick();
      return this.health().find((h) => h.agent === inst.agent)!;
    });
  }

  /** The stored form of an A2A agent's registration: what the body left out, from the card. */
  private async fromA2aCard(
    given: Omit<z.output<typeof registerAgentInput>, 'actor'> & { a2a_card_url: string },
  ): Promise<z.output<typeof externalAgentSchema>> {
    const cardUrl = new URL(given.a2a_card_url);
    if (cardUrl.username || cardUrl.password)
      throw new AppError('validation', 'a2a_card_url must not contain credentials', { agent: given.name }, false);
    await this.egress.checkUrlResolved(cardUrl);
    const card = await fetchA2aCard(this.egress, given.a2a_card_url);
    return externalAgentSchema.parse({
      ...given,
      url: given.url ?? card.url,
      task_types: given.task_types ?? card.skills,
      description: given.description || card.description,
    });
  }

  /**
   * Remove a registered external agent: its row goes, its instance leaves the registry (tasks
   * running there are handed back to the queue as for a lost instance), ExternalAgentRemoved
   * is recorded. `not_found` for a name that is not stored.
   */
  async removeAgent(name: string, actor?: string, correlationId: string = newId()): Promise<{ removed: string }> {
    if (this.stopped) throw new AppError('unavailable', 'dispatcher is stopping');
    this.refuseUnmanaged(name, 'removed');
    return this.serially(`external_agent:${name}`, async () => {
      if (!(await deleteExternalAgent(this.opts.pool, this.schema, name)))
        throw new AppError('not_found', `no registered external agent named ${name}`, { agent: name });
      this.registry.unregisterHttp(name);
      const at = new Date().toISOString();
      const data: ExternalAgentRemovedData = { name, removed_at: at };
      await this.opts.store.append(externalAgentStreamId(name), [
        {
          type: 'ExternalAgentRemoved',
          data,
          metadata: { timestamp: at, correlationId, actor: actor ?? 'system:dispatcher' },
        },
      ]);
      this.log.info({ correlationId, agent: name, actor }, 'external agent removed');
      return { removed: name };
    });
  }

  /** Built-in agents and configured external agents are not managed at run time. */
  private refuseUnmanaged(name: string, what: 'registered' | 'removed'): void {
    if (agentCards.some((c) => c.name === name)) {
      throw new AppError(
        'validation',
        `${name} is a built-in agent; it cannot be ${what} as an external agent`,
        { agent: name },
        false,
      );
    }
    if (this.configuredAgents.has(name)) {
      throw new AppError(
        'validation',
        `${name} is an external agent from the dispatcher's configuration; change it there`,
        { agent: name },
        false,
      );
    }
  }

  /** Create `<schema>.external_agents` if needed and put its agents in the registry (a row named like a configured agent is ignored: configuration wins). */
  private async loadStoredAgents(): Promise<void> {
    await ensureExternalAgentsTable(this.opts.pool, this.schema);
    let loaded = 0;
    for (const r of await storedExternalAgents(this.opts.pool, this.schema)) {
      if (this.configuredAgents.has(r.name)) {
        this.log.warn(
          { agent: r.name },
          'stored external agent has the name of a configured one; the configured one is used',
        );
        continue;
      }
      const parsed = externalAgentSchema.safeParse({
        ...r,
        token: r.token ?? undefined,
        a2a_card_url: r.a2a_card_url ?? undefined,
      });
      if (!parsed.success) {
        this.log.warn({ agent: r.name, issues: parsed.error.issues }, 'stored external agent does not parse; skipped');
        continue;
      }
      this.registry.registerHttp(parsed.data);
      loaded++;
    }
    if (loaded > 0) this.log.info({ loaded }, 'stored external agents loaded');
  }

  /** Runs `fn` after the previous call with the same key has settled (stop() waits for these too). */
  private serially<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.locks.get(key) ?? Promise.resolve()).catch(() => undefined).then(fn);
    this.locks.set(key, next);
    const clear = () => {
      if (this.locks.get(key) === next) this.locks.delete(key);
    };
    next.then(clear, clear);
    return next;
  }

  private agentNames(): string[] {
    const names = new Set<string>(agentCards.map((c) => c.name));
    for (const i of this.registry.instances.values()) names.add(i.agent);
    return [...names].sort();
  }

  /** Health of every agent (or one): its instances, what is queued for it and running on it. */
  health(): AgentHealthView[] {
    const byAgent = new Map<string, AgentInstance[]>();
    for (const c of agentCards) byAgent.set(c.name, []);
    for (const i of this.registry.instances.values())
      (byAgent.get(i.agent) ?? byAgent.set(i.agent, []).get(i.agent)!).push(i);
    const queued = [...this.active.values()].filter((s) => s.status === 'queued');
    return [...byAgent.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([agent, insts]) => {
        const types = new Set<string>(insts.flatMap((i) => [...i.taskTypes]));
        const card = agentCards.find((c) => c.name === agent);
        for (const t of card?.taskTypes ?? []) types.add(t.type);
        const up = insts.filter((i) => i.healthy && this.registry.breakerState(i) !== 'open');
        const status: AgentHealthView['status'] =
          up.length === 0 ? 'down' : up.length < insts.length ? 'degraded' : 'healthy';
        return {
          agent,
          status,
          task_types: [...types].sort(),
          queued: queued.filter((s) => (s.agent === undefined || s.agent === agent) && types.has(s.task_type)).length,
          in_flight: insts.reduce((n, i) => n + i.inFlight, 0),
          instances: insts.map((i) => ({
            instance: i.instance,
            kind: i.kind,
            healthy: i.healthy,
            breaker: this.registry.breakerState(i),
            in_flight: Math.max(i.inFlight, i.reportedInFlight),
            max_concurrency: i.maxConcurrency,
            last_seen: i.lastSeen ? new Date(i.lastSeen).toISOString() : null,
            last_error: i.lastError ?? null,
          })),
        };
      });
  }

  queuedCount(): number {
    let n = 0;
    for (const s of this.active.values()) if (s.status === 'queued') n++;
    return n;
  }

  capabilities(): CapabilitiesReply {
    const out = new Map<string, CapabilitiesReply['agents'][number]>();
    for (const i of this.registry.instances.values()) {
      const prev = out.get(i.agent);
      if (prev && (prev.available || !i.healthy)) continue;
      out.set(i.agent, {
        agent: i.agent,
        description: i.description,
        version: i.version,
        max_concurrency: i.maxConcurrency,
        kind: i.kind,
        available: i.healthy,
        task_types: [...i.taskTypes]
          .sort()
          .map((type) => ({ type, description: '', input_schema: i.inputSchemas.get(type), aliases: aliasesOf(type) })),
      });
    }
    // Descriptions (and the agents with no live instance) from the built-in cards.
    for (const c of agentCards.map(cardToJson)) {
      const have = out.get(c.name);
      const described = c.taskTypes.map((t) => ({
        type: t.type,
        description: t.description,
        input_schema: t.inputSchema,
        aliases: aliasesOf(t.type),
      }));
      if (!have) {
        out.set(c.name, {
          agent: c.name,
          description: c.description,
          version: c.version,
          max_concurrency: c.maxConcurrency,
          kind: 'nats',
          available: false,
          task_types: described,
        });
      } else {
        have.task_types = have.task_types.map(
          (t) =>
            described.find((d) => d.type === t.type) ?? {
              ...t,
              description: t.type === NOOP_TASK_TYPE ? 'benchmark/test only: waits and echoes' : t.description,
            },
        );
      }
    }
    return {
      agents: [...out.values()].sort((a, b) => a.agent.localeCompare(b.agent)),
      task_types: this.knownTaskTypes(),
      aliases: { ...TASK_TYPE_ALIASES },
    };
  }

  performance() {
    return queryPerformance(this.opts.pool, this.opts.schema);
  }

  // ---- the queue -----------------------------------------------------------

  /** A queue pass, awaited at most `submitPlacementWaitMs`. */
  private async placeSoon(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const pass = this.pump().catch((err) => this.log.error({ err }, 'queue pass failed'));
    await Promise.race([
      pass,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, this.opts.submitPlacementWaitMs ?? 250))),
    ]);
    clearTimeout(timer);
  }

  /**
   * Tasks whose first events someone else appended (the gateway records a submission itself
   * when this dispatcher's reply is late) are taken over from the log: every TaskSubmitted after
   * `from` that this process is not driving is loaded, checked like a submission (refused ones
   * are canceled, with the reason) and queued.
   */
  private watchSubmissions(from: number): void {
    const sub = this.opts.store.subscribeToAll({ from, types: [...WATCHED] });
    this.submissions = sub;
    const p = (async () => {
      for await (const e of sub) {
        if (this.stopped) break;
        if (e.type === 'ExternalAgentRegistered' || e.type === 'ExternalAgentRemoved') {
          const name = (e.data as { name?: unknown }).name;
          if (typeof name === 'string')
            await this.refreshStoredAgent(name).catch((err) =>
              this.log.warn({ err, agent: name }, 'refreshing an external agent failed'),
            );
          continue;
        }
        const taskId = (e.data as { task_id?: unknown }).task_id;
        if (typeof taskId !== 'string') continue;
        if (e.type === 'TaskAssigned' || e.type === 'TaskQueued') {
          // A caller here follows a task another dispatcher drives: pass its progress on.
          const watchers = this.known.has(taskId) ? undefined : this.progressWatchers.get(taskId);
          for (const w of watchers ?? []) {
            try {
              w(e.type === 'TaskQueued' ? 'queued' : 'started');
            } catch {
              // a notice is advisory
            }
          }
          continue;
        }
        if (e.type !== 'TaskSubmitted') {
          // An end: a caller here may wait for a task another dispatcher drives, or someone else ended one driven here.
          if (this.waiters.has(taskId) || this.known.has(taskId) || this.runs.has(taskId)) this.reconcile(taskId);
          continue;
        }
        if (this.drivenHere(taskId) || !this.accepting(taskId)) continue;
        await this.adopt(taskId, e.metadata.correlationId).catch((err) =>
          this.log.warn({ err, taskId }, 'taking over a task submitted elsewhere failed'),
        );
      }
    })().catch((err) => {
      if (!this.stopped) this.log.error({ err }, 'watching task submissions failed');
    });
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  private drivenHere(taskId: string): boolean {
    return (
      this.known.has(taskId) ||
      this.active.has(taskId) ||
      this.locks.has(taskId) ||
      this.ended.current.has(taskId) ||
      this.ended.previous.has(taskId)
    );
  }

  private async adopt(taskId: string, correlationId: string | undefined): Promise<void> {
    const state = await this.load(taskId);
    if (!state || isTerminal(state) || this.drivenHere(taskId) || !this.accepting(taskId)) return;
    this.correlation.set(taskId, correlationId ?? taskId);
    try {
      this.check(state.task_type, state.context, state.agent);
    } catch (err) {
      const reason = err instanceof AppError ? err.message : String(err);
      this.log.warn({ correlationId: this.cid(taskId), taskId, reason }, 'task submitted elsewhere refused');
      await this.exec(taskId, {
        type: 'CancelTask',
        data: { actor: 'system:dispatcher', reason: `refused: ${reason}` },
        metadata: this.meta(taskId),
      });
      return;
    }
    this.log.info(
      { correlationId: this.cid(taskId), taskId, taskType: state.task_type, status: state.status },
      'task submitted elsewhere taken over',
    );
    this.track(taskId, state);
  }

  /** Ask for a pass over the queue (coalesced). */
  kick(): void {
    if (!this.stopped) void this.pump().catch((err) => this.log.error({ err }, 'queue pass failed'));
  }

  /** Resolves after a pass that started after this call (a running pass is followed by one more). */
  private pump(): Promise<void> {
    if (this.pumpRun) {
      this.pumpAgain = true;
      return this.pumpRun;
    }
    this.pumpRun = (async () => {
      try {
        do {
          this.pumpAgain = false;
          await this.pumpOnce();
        } while (this.pumpAgain && !this.stopped);
      } finally {
        this.pumpRun = undefined;
      }
    })();
    return this.pumpRun;
  }

  /** One pass: queued tasks by effective priority (aging), each placed on the best instance that accepts it. */
  private async pumpOnce(): Promise<void> {
    const now = Date.now();
    const queued = [...this.active.values()]
      .filter(
        (s): s is Extract<ExistingTaskState, { status: 'queued' }> =>
          s.status === 'queued' && !this.assigning.has(s.task_id) && this.accepting(s.task_id),
      )
      .map((s) => ({ task_id: s.task_id, priority: s.priority, waiting_since_ms: Date.parse(s.submitted_at), s }));
    // Instances and agents found full in the shared slot table during this pass (other dispatchers' attempts).
    const full = new Set<string>();
    for (const { s } of orderQueue(queued, now, this.opts.agingMs ?? DEFAULT_AGING_MS)) {
      if (this.stopped) return;
      const inst = this.select(s, full);
      if (!inst) continue;
      this.registry.reserve(inst);
      this.assigning.add(s.task_id);
      let r: CommandResult<TaskEvent, TaskState>;
      try {
        const slot = await this.reserveSlot(s.task_id, inst, s.assignment + 1);
        if (slot !== 'ok') {
          this.registry.release(inst);
          full.add(slot === 'agent_full' ? `agent:${inst.agent}` : inst.key);
          continue;
        }
        try {
          r = await this.exec(s.task_id, {
            type: 'AssignTask',
            data: { agent: inst.agent, instance: inst.instance },
            metadata: this.meta(s.task_id),
          });
        } catch (err) {
          this.registry.release(inst);
          void this.releaseSlot(s.task_id, s.assignment + 1);
          this.log.warn({ correlationId: this.cid(s.task_id), taskId: s.task_id, err }, 'assignment refused');
          continue;
        }
      } finally {
        this.assigning.delete(s.task_id);
      }
      if (r.state.status !== 'assigned') {
        this.registry.release(inst);
        void this.releaseSlot(s.task_id, s.assignment + 1);
        continue;
      }
      this.launch(r.state, inst);
    }
  }

  /** Capability (or the asked-for agent), health, breaker, concurrency; then least loaded, avoiding instances that failed this task. */
  private select(
    s: Pick<ExistingTaskState, 'task_type' | 'agent' | 'failed_instances'>,
    exclude?: ReadonlySet<string>,
  ): AgentInstance | undefined {
    return selectInstance(this.registry, s, this.opts.agentConcurrency, exclude);
  }

  // ---- one attempt -----------------------------------------------------------

  private launch(s: Extract<TaskState, { status: 'assigned' }>, inst: AgentInstance): void {
    const run: Run = {
      taskId: s.task_id,
      assignment: s.assignment,
      inst,
      controller: new AbortController(),
      launchedAt: Date.now(),
      done: false,
    };
    this.runs.set(s.task_id, run);
    const remaining = Math.max(0, Date.parse(s.deadline) - Date.now());
    run.timer = setTimeout(() => void this.onDeadline(run), remaining);
    const log = this.log.child({
      correlationId: this.cid(s.task_id),
      taskId: s.task_id,
      agent: inst.agent,
      instance: inst.instance,
      assignment: s.assignment,
    });
    // Per task at debug: at info, logging is a measurable part of a short task's cost.
    log.debug({ taskType: s.task_type, attempt: s.attempts + 1 }, 'task assigned');
    void (async () => {
      try {
        const result =
          inst.kind === 'nats'
            ? await callNats(this.opts.nats, s, inst, remaining, {
                notifySubject: this.notifySubject,
                correlationId: this.cid(s.task_id),
              })
            : inst.a2aCardUrl
              ? await callA2a(this.egress, s, inst, run.controller.signal)
              : await callHttp(this.egress, s, inst, run.controller.signal, {
                  correlationId: this.cid(s.task_id),
                  agentToken: this.opts.agentToken,
                  externalAgentToken: this.opts.externalAgentToken,
                });
        if (run.done) return; // given up already (deadline, cancel, instance lost): a late result is ignored
        // A start notice not recorded yet goes in the completion's append.
        const withStart = this.takeStart(run);
        this.finishRun(run);
        this.registry.recordSuccess(inst);
        const complete: TaskCommand = {
          type: 'CompleteTask',
          data: { assignment: s.assignment, result },
          metadata: this.meta(s.task_id),
        };
        // The result lives only in this process until it is appended: keep trying through a
        // database outage (a PostgreSQL restart), or the task would stay assigned for good.
        await this.untilRecorded(s.task_id, 'recording a completion', log, async () => {
          if (!withStart) return this.exec(s.task_id, complete);
          const r = await this.exec(s.task_id, this.startCommand(run), () => ({
            command: complete,
            undo: () => undefined,
          }));
          // The follow-up goes only with a fast-path append; otherwise the completion goes alone.
          return r.events.some((e) => e.type === 'TaskCompleted') ? r : this.exec(s.task_id, complete);
        });
        log.debug({}, 'task completed');
      } catch (err) {
        if (run.done) return;
        if (this.takeStart(run))
          void this.exec(s.task_id, this.startCommand(run)).catch((e) =>
            log.warn({ err: e }, 'recording a start failed'),
          );
        this.finishRun(run);
        await this.untilRecorded(s.task_id, 'recording a failed attempt', log, () =>
          this.attemptFailed(s, inst, asAppError(err), log),
        ).catch((e) => log.error({ err: e }, 'recording a failed attempt failed'));
      }
    })();
  }

  /**
   * Map an attempt's error to the decider: busy -> back to the queue (no attempt used, instance
   * not blamed); errors another attempt cannot fix -> fail; the rest -> retry elsewhere and
   * count against the instance's breaker.
   */
  private async attemptFailed(
    s: Extract<TaskState, { status: 'assigned' }>,
    inst: AgentInstance,
    e: AppError,
    log: Logger,
  ): Promise<void> {
    const base = { assignment: s.assignment, error: toTaskError(e) };
    if (e.code === 'unavailable' && e.details.reason === 'busy') {
      inst.reportedInFlight = inst.maxConcurrency; // full until its next probe says otherwise
      log.debug({}, 'instance busy; task back in the queue');
      await this.exec(s.task_id, {
        type: 'FailTask',
        data: { ...base, retryable: true, avoid_instance: false, count_attempt: false },
        metadata: this.meta(s.task_id),
      });
      return;
    }
    if (e.code === 'timeout') {
      await this.exec(s.task_id, {
        type: 'TimeOutTask',
        data: { assignment: s.assignment },
        metadata: this.meta(s.task_id),
      });
      return;
    }
    const fatal = FATAL.includes(e.code);
    if (!fatal) this.registry.recordFailure(inst, e.message);
    log.warn({ code: e.code, message: e.message, retryable: !fatal }, 'task attempt failed');
    await this.exec(s.task_id, {
      type: 'FailTask',
      data: { ...base, retryable: !fatal },
      metadata: this.meta(s.task_id),
    });
    // Nobody listening on the instance subject (the request helper's "no responders"): it is gone, not merely failing.
    if (e.code === 'unavailable' && inst.kind === 'nats' && e.message.startsWith('no service is listening'))
      this.registry.markDown(inst, e.message);
  }

  private async onDeadline(run: Run): Promise<void> {
    if (run.done) return;
    this.finishRun(run);
    this.log.warn(
      { correlationId: this.cid(run.taskId), taskId: run.taskId, instance: run.inst.instance },
      'task timed out',
    );
    await this.exec(run.taskId, {
      type: 'TimeOutTask',
      data: { assignment: run.assignment },
      metadata: this.meta(run.taskId),
    }).catch((err) => this.log.error({ err, taskId: run.taskId }, 'recording a timeout failed'));
    void cancelOnInstance(this.opts.nats, run.inst, run.taskId, 'deadline');
  }

  /**
   * The agent's start notice. Recorded on the next turn of the event loop rather than at once: a
   * fast task's result often arrives in the same read from NATS, and then TaskStarted goes in the
   * completion's append (one write instead of two). Either way it is recorded once, in order.
   */
  private onStarted(taskId: string, assignment: number): void {
    const run = this.runs.get(taskId);
    if (!run || run.assignment !== assignment || run.done) return;
    run.started = true;
    run.noticedAt = new Date().toISOString();
    setImmediate(() => {
      // Ended meanwhile another way (deadline, cancel, instance lost): the decider would ignore a start after that end.
      if (run.done) run.startTaken = true;
      if (!this.takeStart(run)) return;
      void this.exec(taskId, this.startCommand(run)).catch((err) =>
        this.log.warn({ err, taskId }, 'recording a start failed'),
      );
    });
  }

  /** True once for a run whose start notice arrived and is not recorded yet: the caller records it. */
  private takeStart(run: Run): boolean {
    if (!run.started || run.startTaken) return false;
    run.startTaken = true;
    return true;
  }

  private startCommand(run: Run): TaskCommand {
    return {
      type: 'StartTask',
      data: { assignment: run.assignment },
      metadata: { ...this.meta(run.taskId), timestamp: run.noticedAt ?? new Date().toISOString() },
    };
  }

  /**
   * A NATS server restart can swallow an execute request sent around the outage: the agent never
   * gets it, and the task would sit `assigned` until its deadline and time out. So a little after
   * each reconnect, a run over NATS launched before it whose agent has not said it started goes
   * back to the queue (no attempt used); its instance is asked to cancel first, in case only the
   * best-effort start notice was lost.
   */
  private watchReconnects(): void {
    void (async () => {
      try {
        for await (const status of this.opts.nats.status()) {
          if (this.stopped) return;
          if (status.type !== 'reconnect') continue;
          const at = Date.now();
          setTimeout(() => void this.requeueUnstarted(at), LOST_DISPATCH_CHECK_MS).unref();
        }
      } catch (err) {
        this.log.warn({ err }, 'NATS status watch stopped');
      }
    })();
  }

  private async requeueUnstarted(reconnectedAt: number): Promise<void> {
    if (this.stopped) return;
    for (const run of [...this.runs.values()]) {
      if (run.done || run.started || run.inst.kind !== 'nats' || run.launchedAt > reconnectedAt) continue;
      this.finishRun(run);
      this.log.warn(
        { correlationId: this.cid(run.taskId), taskId: run.taskId, instance: run.inst.instance },
        'no start notice after a NATS reconnect: the task goes back to the queue',
      );
      await cancelOnInstance(this.opts.nats, run.inst, run.taskId, 'dispatch presumed lost in a NATS reconnect');
      await this.exec(run.taskId, {
        type: 'FailTask',
        data: {
          assignment: run.assignment,
          error: {
            code: 'unavailable',
            message: `no start notice from ${run.inst.instance} after a NATS reconnect; dispatched again`,
          },
          retryable: true,
          avoid_instance: false,
          count_attempt: false,
        },
        metadata: this.meta(run.taskId),
      }).catch((err) => this.log.error({ err, taskId: run.taskId }, 'requeueing an unstarted task failed'));
    }
  }

  /** An instance stopped answering: its tasks go back to the queue (retry elsewhere). */
  private instanceLost(inst: AgentInstance, reason: string): void {
    for (const run of [...this.runs.values()]) {
      if (run.inst !== inst || run.done) continue;
      this.finishRun(run);
      this.log.warn(
        { correlationId: this.cid(run.taskId), taskId: run.taskId, instance: inst.instance, reason },
        'instance lost mid-task; retrying elsewhere',
      );
      void this.exec(run.taskId, {
        type: 'FailTask',
        data: {
          assignment: run.assignment,
          error: { code: 'unavailable', message: `agent instance ${inst.instance} lost: ${reason}` },
          retryable: true,
        },
        metadata: this.meta(run.taskId),
      }).catch((err) => this.log.error({ err, taskId: run.taskId }, 'recording a lost instance failed'));
    }
  }

  private finishRun(run: Run): void {
    if (run.done) return;
    run.done = true;
    clearTimeout(run.timer);
    if (this.runs.get(run.taskId) === run) this.runs.delete(run.taskId);
    this.registry.release(run.inst);
    void this.releaseSlot(run.taskId, run.assignment);
    run.controller.abort('finished');
    this.kick();
  }

  // ---- recovery --------------------------------------------------------------

  /**
   * After a restart: queued tasks go back in the queue; tasks that were in flight cannot
   * deliver their result to us any more (the reply went to the old connection), so they are
   * retried: on another instance when theirs is gone (it died), without using an attempt
   * and after a cancel when it is still alive.
   */
  private async recover(partitions?: ReadonlySet<number>): Promise<void> {
    const s = this.schema;
    const all = await this.opts.pool.query<{ task_id: string }>(
      `select task_id from ${s}.tasks where status = any($1) order by submitted_at`,
      [ACTIVE],
    );
    const rows = {
      rows: all.rows.filter((r) =>
        partitions ? partitions.has(this.partitionOf(r.task_id)) : this.accepting(r.task_id),
      ),
    };
    let queued = 0;
    let retried = 0;
    for (const { task_id } of rows.rows) {
      if (this.stopped || this.drivenHere(task_id) || !this.accepting(task_id)) continue;
      const state = await this.load(task_id);
      if (!state || isTerminal(state) || this.drivenHere(task_id)) continue;
      const first = await this.opts.store.readStream(taskStreamId(task_id), { maxCount: 1 });
      this.correlation.set(task_id, first[0]?.metadata.correlationId ?? task_id);
      this.active.set(task_id, state);
      if (state.status === 'assigned' || state.status === 'working') {
        const inst = [...this.registry.instances.values()].find(
          (i) => i.instance === state.instance && i.agent === state.assigned_agent,
        );
        const alive = !!inst?.healthy;
        if (inst && alive) await cancelOnInstance(this.opts.nats, inst, task_id, 'dispatcher restarted');
        await this.exec(task_id, {
          type: 'FailTask',
          data: {
            assignment: state.assignment,
            error: {
              code: 'unavailable',
              message: alive
                ? 'dispatcher restarted or partition taken over; attempt abandoned'
                : `agent instance ${state.instance} lost during a dispatcher restart`,
            },
            retryable: true,
            avoid_instance: !alive,
            count_attempt: !alive,
          },
          metadata: this.meta(task_id),
        });
        retried++;
      } else queued++;
    }
    if (queued + retried > 0)
      this.log.info(
        { queued, retried, ...(partitions ? { partitions: [...partitions] } : {}) },
        'recovered tasks after restart or takeover',
      );
  }

  // ---- plumbing ----------------------------------------------------------------

  private cid(taskId: string): string {
    return this.correlation.get(taskId) ?? taskId;
  }

  private meta(taskId: string, actor = 'system:dispatcher') {
    return { timestamp: new Date().toISOString(), correlationId: this.cid(taskId), actor };
  }

  private async load(taskId: string): Promise<ExistingTaskState | undefined> {
    const { state } = await aggregateStream(this.opts.store, taskStreamId(taskId), taskDelegationDecider);
    return state.status === 'initial' ? undefined : state;
  }

  /**
   * Run `record` until it succeeds, retrying while the failure is transient (the database or the
   * event store unavailable) with backoff from 250 ms to 5 s, for up to RECORD_RETRY_BUDGET_MS;
   * stops when this dispatcher stops or no longer drives the task (its partition was taken over:
   * the new owner recovers the task from the events). Other errors are thrown at once.
   */
  private async untilRecorded<T>(
    taskId: string,
    what: string,
    log: Logger,
    record: () => Promise<T>,
  ): Promise<T | undefined> {
    const deadline = Date.now() + RECORD_RETRY_BUDGET_MS;
    for (let delay = 250; ; delay = Math.min(delay * 2, 5_000)) {
      try {
        return await record();
      } catch (err) {
        const transient =
          isConnectionError(err) ||
          (isAppError(err) && err.code === 'unavailable' && !/driven by another dispatcher/.test(err.message));
        if (!transient || this.stopped || Date.now() + delay > deadline) throw err;
        log.warn({ err, taskId, retryInMs: delay }, `${what} failed; retrying`);
        await new Promise((r) => setTimeout(r, delay));
        if (this.stopped) return undefined;
      }
    }
  }

  /** Commands on one task run one at a time here (the store's revision check guards across processes). */
  private exec(taskId: string, command: TaskCommand, follow?: FollowUp): Promise<CommandResult<TaskEvent, TaskState>> {
    const prev = this.locks.get(taskId) ?? Promise.resolve();
    const next = prev
      .catch(() => undefined)
      .then(() => this.decideAndAppend(taskId, command, follow))
      .catch((err: unknown) => {
        if (err instanceof FencedError) {
          // Another dispatcher holds the partition now: stop acting on it, write nothing more.
          this.log.warn(
            { taskId, fence: err.fence, current: err.current },
            'append fenced: partition taken over by another dispatcher',
          );
          this.known.delete(taskId);
          this.opts.ownership?.dropLost(this.partitionOf(taskId));
          throw new AppError(
            'unavailable',
            `task ${taskId} is now driven by another dispatcher`,
            { task_id: taskId },
            true,
          );
        }
        // Domain errors keep their code on the way to NATS and HTTP.
        throw isDomainError(err) ? new AppError(err.code, err.message, err.details, false) : err;
      })
      .then((r) => {
        this.remember(taskId, r);
        this.track(taskId, r.state);
        return r;
      });
    this.locks.set(taskId, next);
    const clear = () => {
      if (this.locks.get(taskId) === next) this.locks.delete(taskId);
    };
    next.then(clear, clear);
    return next;
  }

  /** The task's command through the shared command path, with the state and revision this process holds (see decideTaskCommand). */
  private decideAndAppend(
    taskId: string,
    command: TaskCommand,
    follow?: FollowUp,
  ): Promise<CommandResult<TaskEvent, TaskState>> {
    // Every write of a task this dispatcher drives carries its partition's fence (throws when the partition is gone).
    const fence = this.fenceOf(taskId);
    return decideTaskCommand(this.opts.store, taskId, command, {
      held: this.known.get(taskId),
      fence,
      follow,
      forget: () => this.known.delete(taskId),
    });
  }

  /** Keep the state and revision of live tasks only (ended ones are read from the store when asked). */
  private remember(taskId: string, r: CommandResult<TaskEvent, TaskState>): void {
    if (r.state.status === 'initial' || isTerminal(r.state)) this.known.delete(taskId);
    else this.known.set(taskId, { state: r.state, revision: r.revision });
  }

  private track(taskId: string, state: TaskState): void {
    if (state.status === 'initial') return;
    if (isTerminal(state)) {
      this.active.delete(taskId);
      this.ended.current.add(taskId);
      this.resolveWaiters(taskId, state);
      // Keep the correlation only while someone may still act on the task.
      this.correlation.delete(taskId);
      return;
    }
    this.active.set(taskId, state);
    const watchers = this.progressWatchers.get(taskId);
    if (watchers && (state.status === 'queued' || state.status === 'assigned')) {
      for (const w of watchers) {
        try {
          w(state.status === 'queued' ? 'queued' : 'started');
        } catch {
          // a notice is advisory
        }
      }
    }
    if (state.status === 'queued') this.kick();
  }

  private resolveWaiters(taskId: string, state: ExistingTaskState): void {
    const set = this.waiters.get(taskId);
    if (!set) return;
    this.waiters.delete(taskId);
    for (const w of set) w.resolve(state);
  }
}

const TRANSIENT_TASK_CODES = new Set(['unavailable', 'rate_limited']);
/** How long an attempt's outcome is retried through a database outage before it is left to recovery. */
const RECORD_RETRY_BUDGET_MS = 120_000;
/** What the log watcher follows: submissions to take over, progress and ends to pass on, external agents changed by another dispatcher. */
const WATCHED = [
  'TaskSubmitted',
  'TaskQueued',
  'TaskAssigned',
  'TaskCompleted',
  'TaskFailed',
  'TaskCanceled',
  'TaskTimedOut',
  'ExternalAgentRegistered',
  'ExternalAgentRemoved',
] as const;
/** How long after a NATS reconnect a run without a start notice is taken for lost (see watchReconnects). */
const LOST_DISPATCH_CHECK_MS = 5_000;

/** The AppError a caller of `execute` gets for a task that did not complete. */
export function taskEndError(s: ExistingTaskState): AppError {
  const v = taskViewOf(s);
  const details = { task_id: s.task_id, status: s.status, agent: v.agent, instance: v.instance, error: v.error };
  switch (s.status) {
    case 'timed_out':
      return new AppError('timeout', `task ${s.task_id} timed out after ${s.timeout_ms} ms`, details, false);
    case 'canceled':
      return new AppError('illegal_state', `task ${s.task_id} was canceled: ${s.reason}`, details, false);
    case 'failed':
      // A task that failed because no agent could take it (lost, unreachable, refusing for load) may succeed
      // when asked again: say so, so a workflow step retries it rather than failing.
      return new AppError(
        isErrorCode(s.error.code) ? s.error.code : 'internal',
        `task ${s.task_id} failed: ${s.error.message}`,
        details,
        TRANSIENT_TASK_CODES.has(s.error.code),
      );
    default:
      return new AppError('internal', `task ${s.task_id} has not ended (${s.status})`, details, false);
  }
}
