import type pg from 'pg';
import type { z } from 'zod';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  taskEndError,
  taskViewOf,
  type externalAgentSchema,
  type registerAgentInput,
  type TaskSubmitReply,
  type TaskView,
  type AgentHealthView,
  type RegisterAgentReply,
  type CapabilitiesReply,
} from '@switchyard/contracts';
import { handleCommand, type EventStore } from '@switchyard/event-store';
import {
  AppError,
  EgressGuard,
  egressPolicyFromEnv,
  newId,
  type EgressPolicy,
  type Logger,
} from '@switchyard/platform';
import {
  isDomainError,
  isTerminal,
  taskDelegationDecider,
  taskStreamId,
  type ExistingTaskState,
} from '@switchyard/domain';
import { queryPerformance } from '@switchyard/read-models';
import { InstanceRegistry } from './instances.js';
import { Ownership, type TaskOwnership } from './ownership.js';
import { TaskStates } from './task-state.js';
import { RunPump } from './run-pump.js';
import { ExternalAgents } from './agent-registry.js';
import { AgentCatalog } from './agent-catalog.js';
import { Recovery } from './recovery.js';
import { Submissions, type SubmitRequest } from './submission.js';

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
  /**
   * Most tasks waiting for an agent in this dispatcher (its partitions' share of the queue);
   * past it a submission is refused `rate_limited` with `retry_after_ms`, recorded nowhere.
   * Default DISPATCHER_MAX_QUEUED, else 10,000.
   */
  readonly maxQueued?: number;
  /** Most bytes of JSON of the queued tasks' contexts. Default DISPATCHER_MAX_QUEUED_BYTES, else 256 MiB. */
  readonly maxQueuedBytes?: number;
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

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,40}$/;

/**
 * The task dispatcher. Every decision is a command on the task's stream (TaskDelegation
 * decider, appended with the expected revision); the queue is the set of tasks whose state
 * is `queued`, persisted as events and in the `<schema>.tasks` read model, so a restarted
 * dispatcher recovers it. Selection: capability (task type in the card, or the agent asked
 * for) -> health (answers its probe, breaker not open, did not fail this task) -> load.
 * Order: effective priority with aging. Run it through startDispatcher, which keeps one active
 * dispatcher per system (a leader lock; other processes stand by).
 *
 * This class composes the parts and holds the public API: TaskStates (the cached
 * decide-and-append and its waiters), Ownership (partitions and agent slots), RunPump (the queue
 * and the attempts), ExternalAgents (run-time registration), AgentCatalog (task types, checks,
 * health, capabilities), Recovery (restart, takeover, the log watcher) and Submissions.
 */
export class Dispatcher {
  readonly registry: InstanceRegistry;
  private readonly log: Logger;
  private readonly tasks: TaskStates;
  private readonly ownership: Ownership;
  private readonly pump: RunPump;
  private readonly agents: ExternalAgents;
  private readonly catalog: AgentCatalog;
  private readonly recovery: Recovery;
  private readonly submissions: Submissions;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly background = new Set<Promise<unknown>>();
  private probing = false;
  private discovering = false;
  private stopped = false;

  constructor(private readonly opts: DispatcherOptions) {
    this.log = opts.logger.child({ component: 'dispatcher' });
    const schema = opts.schema ?? 'delegation';
    // Interpolated into SQL: a plain identifier only.
    if (!SCHEMA_NAME.test(schema)) throw new AppError('validation', `bad delegation schema name ${schema}`);
    const stopped = () => this.stopped;
    const kick = () => this.pump.kick();
    /** The SSRF guard of every external agent URL (registration, calls, probes). */
    const egress = new EgressGuard(opts.egress ?? egressPolicyFromEnv());
    this.registry = new InstanceRegistry({
      nats: opts.nats,
      logger: opts.logger,
      egress,
      ...(opts.discoveryWaitMs !== undefined ? { discoveryWaitMs: opts.discoveryWaitMs } : {}),
      ...(opts.probeTimeoutMs !== undefined ? { probeTimeoutMs: opts.probeTimeoutMs } : {}),
      ...(opts.breakerThreshold !== undefined ? { breakerThreshold: opts.breakerThreshold } : {}),
      ...(opts.breakerCooldownMs !== undefined ? { breakerCooldownMs: opts.breakerCooldownMs } : {}),
      onUp: () => this.pump.kick(),
      onDown: (i, reason) => this.pump.instanceLost(i, reason),
    });
    this.tasks = new TaskStates({
      store: opts.store,
      log: this.log,
      fenceOf: (taskId) => this.ownership.fenceOf(taskId),
      fenced: (taskId) => this.ownership.dropLost(taskId),
      kick,
    });
    this.catalog = new AgentCatalog(this.registry, () => this.tasks.activeStates(), opts.taskSchemas);
    this.agents = new ExternalAgents({
      pool: opts.pool,
      store: opts.store,
      schema,
      logger: this.log,
      registry: this.registry,
      egress,
      configured: opts.externalAgents,
      serially: (key, fn) => this.tasks.serially(key, fn),
      kick,
      health: () => this.catalog.health(),
      stopped,
      removed: (name, actor, correlationId) => void this.endTasksOnlyRemovedAgentTook(name, actor, correlationId),
    });
    const fencing = !!opts.ownership && opts.store.supportsFences === true;
    if (opts.ownership && !fencing)
      this.log.warn(
        { store: opts.store.kind },
        'the event store cannot check fences: a dispatcher that lost a partition is stopped by its lease alone',
      );
    this.ownership = new Ownership({
      pool: opts.pool,
      schema,
      logger: this.log,
      ownership: opts.ownership,
      fencing,
      agentConcurrency: opts.agentConcurrency,
      stopped,
    });
    this.pump = new RunPump({
      nats: opts.nats,
      registry: this.registry,
      egress,
      logger: this.log,
      tasks: this.tasks,
      ownership: this.ownership,
      agingMs: opts.agingMs,
      agentConcurrency: opts.agentConcurrency,
      submitPlacementWaitMs: opts.submitPlacementWaitMs,
      agentToken: opts.agentToken,
      externalAgentToken: opts.externalAgentToken,
      stopped,
      unrecorded: (taskId, timedOut) => this.recovery.retryUnrecorded(taskId, timedOut),
    });
    this.recovery = new Recovery({
      store: opts.store,
      nats: opts.nats,
      pool: opts.pool,
      schema,
      logger: this.log,
      registry: this.registry,
      tasks: this.tasks,
      ownership: this.ownership,
      pump: this.pump,
      agents: this.agents,
      catalog: this.catalog,
      drainMs: opts.drainMs,
      background: (p) => this.keep(p),
      stopped,
    });
    this.submissions = new Submissions({
      store: opts.store,
      logger: this.log,
      registry: this.registry,
      tasks: this.tasks,
      ownership: this.ownership,
      pump: this.pump,
      catalog: this.catalog,
      defaultTimeoutMs: opts.defaultTimeoutMs,
      defaultMaxAttempts: opts.defaultMaxAttempts,
      maxQueued: opts.maxQueued,
      maxQueuedBytes: opts.maxQueuedBytes,
      stopped,
    });
    this.agents.registerConfigured();
  }

  // ---- lifecycle ------------------------------------------------------------

  /**
   * 1. Load the stored external agents. 2. Listen for "started" notices. 3. Discover and probe
   * agents. 4. Recover the queue and in-flight tasks from the read model and their streams (so a
   * recovered task can go to a stored external agent). 5. Start the timers.
   * The read models must be caught up before (startDispatcher waits for its ProjectionRunner).
   */
  async start(): Promise<void> {
    await this.agents.loadStoredAgents();
    this.pump.listen();
    await this.registry.discover();
    await this.registry.probeAll();
    // Submissions recorded by others from here on are taken over; earlier ones come back with recover().
    const head = await this.opts.store.headPosition();
    await this.recovery.recover();
    this.recovery.watchSubmissions(head);
    const every = (ms: number, fn: () => Promise<void> | void) => {
      const t = setInterval(() => {
        // Kept until settled, so stop() can wait for a probe or discovery that is under way
        // (else it fails on the closing connection and logs a spurious warning).
        this.keep(Promise.resolve(fn()).catch(() => undefined));
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.opts.pollIntervalMs ?? 250, () => this.kick());
    every(30_000, () => this.tasks.rotateEnded());
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
    this.pump.unlisten();
    await this.recovery.close();
    await Promise.allSettled([...this.background]);
    this.pump.abortAll();
    await Promise.allSettled(this.tasks.inFlight());
    // Slots given back by the last attempts go before the pool may close (a failure stops the retries now).
    await this.ownership.releasesDone();
    this.tasks.rejectWaiters();
  }

  /** Keep a background job until it settles (stop() waits for it). */
  private keep(p: Promise<unknown>): void {
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  // ---- API (used by the NATS service) ---------------------------------------------

  /** Task types a submission may name: the built-in ones and whatever a live or registered agent offers. */
  knownTaskTypes(): string[] {
    return this.catalog.knownTaskTypes();
  }

  /**
   * Validate and submit a task, then try to place it at once. Idempotent on the key: the same
   * key returns the task created first (its id is derived from the key).
   */
  submit(req: SubmitRequest, correlationId: string): Promise<TaskSubmitReply & { state: ExistingTaskState }> {
    return this.submissions.submit(req, correlationId);
  }

  /**
   * Partitions just leased here (fences raised; the read model caught up by the caller): recover
   * their live tasks as after a restart.
   */
  acquire(partitions: readonly number[]): Promise<void> {
    return this.recovery.acquire(partitions);
  }

  /** Forget a partition's tasks at once, writing nothing (the lease is gone; the new owner recovers them). */
  lose(partition: number): void {
    this.recovery.lose(partition);
  }

  /** Giving a partition back: no new attempt starts there (accepting is false); wait for running ones (bounded), then forget it. */
  drain(partition: number): Promise<void> {
    return this.recovery.drain(partition);
  }

  /**
   * Tell `listener` when the task (re)joins the queue (`queued`) and when it is assigned to an agent
   * (`started`: its own timeout counts from there), until the returned function is called.
   */
  watchProgress(taskId: string, listener: (state: 'queued' | 'started') => void): () => void {
    return this.tasks.watchProgress(taskId, listener);
  }

  /**
   * Resolve when the task has ended (completed, failed, canceled, timed out). `seen`: the state
   * the caller's submit just returned; an ended one is the answer, with no read.
   */
  async waitForEnd(taskId: string, seen?: ExistingTaskState): Promise<ExistingTaskState> {
    if (seen && isTerminal(seen)) return seen;
    // Register first, then look: an end that lands in between is not missed.
    const done = new Promise<ExistingTaskState>((resolve, reject) => {
      this.tasks.addWaiter(taskId, { resolve, reject });
    });
    // When the read below fails (the database restarting), nobody awaits `done`; stop() then
    // rejects it, and an unhandled rejection would reach the process. Callers that await it still see it.
    done.catch(() => undefined);
    // A live task this process is driving needs no read: its end passes through track().
    if (this.tasks.isKnown(taskId)) return done;
    const now = await this.tasks.load(taskId);
    if (!now) {
      this.tasks.dropWaiters(taskId);
      throw new AppError('not_found', `no task ${taskId}`, { task_id: taskId });
    }
    if (isTerminal(now)) this.tasks.resolveWaiters(taskId, now);
    return done;
  }

  async get(taskId: string): Promise<TaskView> {
    const s = await this.tasks.load(taskId);
    if (!s) throw new AppError('not_found', `no task ${taskId}`, { task_id: taskId });
    return taskViewOf(s);
  }

  async cancel(taskId: string, reason: string, actor: string, correlationId?: string): Promise<TaskView> {
    if (!this.ownership.owns(taskId)) {
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
    if (correlationId) this.tasks.setCorrelation(taskId, correlationId);
    const r = await this.tasks.exec(taskId, {
      type: 'CancelTask',
      data: { actor, reason },
      metadata: this.tasks.meta(taskId, actor),
    });
    const ev = r.events[0];
    if (ev?.type === 'TaskCanceled' && ev.data.instance) this.pump.cancelRun(taskId, 'canceled');
    this.log.info({ correlationId: this.tasks.cid(taskId), taskId, actor, reason }, 'task canceled');
    return taskViewOf(r.state as ExistingTaskState);
  }

  /**
   * Register (or replace) an external HTTP agent: stored first (so a restarted or standby
   * dispatcher knows it), recorded as ExternalAgentRegistered (without the token), then put
   * in the registry and probed right away.
   */
  registerAgent(
    input: z.input<typeof registerAgentInput>,
    correlationId: string = newId(),
  ): Promise<RegisterAgentReply> {
    return this.agents.registerAgent(input, correlationId);
  }

  /**
   * Remove a registered external agent: its row goes, its instance leaves the registry (tasks
   * running there are handed back to the queue as for a lost instance), ExternalAgentRemoved
   * is recorded. `not_found` for a name that is not stored.
   */
  removeAgent(name: string, actor?: string, correlationId: string = newId()): Promise<{ removed: string }> {
    return this.agents.removeAgent(name, actor, correlationId);
  }

  /**
   * The tasks of this dispatcher that no agent can take once `name` is removed: those that named
   * it, and those of a task type no other agent (built-in or external) offers. They would wait in
   * the queue for good (a task's deadline counts its attempts, not its wait); they are canceled,
   * the reason naming the removal.
   */
  private async endTasksOnlyRemovedAgentTook(name: string, actor: string, correlationId: string): Promise<void> {
    const served = new Set(this.catalog.knownTaskTypes());
    const orphaned = [...this.tasks.activeStates()].filter((s) => s.agent === name || !served.has(s.task_type));
    for (const s of orphaned) {
      const reason =
        s.agent === name
          ? `the agent it named, ${name}, was removed`
          : `no agent takes task type ${s.task_type} since ${name} was removed`;
      try {
        await this.cancel(s.task_id, reason, actor, correlationId);
      } catch (err) {
        // Ended meanwhile: nothing to end.
        if (!(err instanceof AppError && (err.code === 'illegal_state' || err.code === 'not_found')))
          this.log.warn({ err, taskId: s.task_id, agent: name }, 'could not end a task of a removed agent');
      }
    }
  }

  /** Health of every agent (or one): its instances, what is queued for it and running on it. */
  health(): AgentHealthView[] {
    return this.catalog.health();
  }

  queuedCount(): number {
    return this.tasks.queuedCount();
  }

  capabilities(): CapabilitiesReply {
    return this.catalog.capabilities();
  }

  performance() {
    return queryPerformance(this.opts.pool, this.opts.schema);
  }

  /** Ask for a pass over the queue (coalesced). */
  kick(): void {
    this.pump.kick();
  }
}

/** The AppError a caller of `execute` gets for a task that did not complete (one rule for the dispatcher and the gateway). */
export { taskEndError };
