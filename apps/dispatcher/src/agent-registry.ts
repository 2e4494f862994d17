import type pg from 'pg';
import type { z } from 'zod';
import {
  resolveTaskType,
  TASK_TYPE_ALIASES,
  builtinAgentCards as agentCards,
  builtinTaskTypes,
  externalAgentSchema,
  EXTERNAL_AGENT_STREAM_PREFIX,
  externalAgentStreamId,
  registerAgentInput,
  type AgentHealthView,
  type RegisterAgentReply,
  type ExternalAgentRegisteredData,
  type ExternalAgentRemovedData,
} from '@switchyard/contracts';
import { handleCommand, toDomainEvent, type EventStore, type RecordedEvent } from '@switchyard/event-store';
import { AppError, newId, type EgressGuard, type Logger } from '@switchyard/platform';
import { isDomainError } from '@switchyard/domain';
import { fetchA2aCard } from './a2a-agents.js';
import {
  deleteExternalAgentToken,
  ensureExternalAgentsTable,
  externalAgentToken,
  externalAgentTokens,
  storeExternalAgentToken,
  withAgentNameLock,
} from './external-agent-store.js';
import { externalAgentDecider, type ExternalAgentEvent, type ExternalAgentState } from './external-agent.decider.js';
import type { InstanceRegistry } from './instances.js';

export interface ExternalAgentsOptions {
  readonly pool: pg.Pool;
  readonly store: EventStore;
  /** Schema of the delegation tables (`<schema>_secrets` holds the agents' tokens). */
  readonly schema: string;
  readonly logger: Logger;
  readonly registry: InstanceRegistry;
  readonly egress: EgressGuard;
  /** External agents from configuration (see DispatcherOptions.externalAgents). */
  readonly configured?: readonly z.input<typeof externalAgentSchema>[];
  /** Runs `fn` after the previous call with the same key (see TaskStates.serially). */
  readonly serially: <T>(key: string, fn: () => Promise<T>) => Promise<T>;
  /** An agent came or changed: ask for a queue pass. */
  readonly kick: () => void;
  /** The health view of every agent (a registration answers with its agent's). */
  readonly health: () => AgentHealthView[];
  readonly stopped: () => boolean;
  /** An external agent was removed (here or by another dispatcher): end what only it could take. */
  readonly removed?: (name: string, actor: string, correlationId: string) => void;
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

/**
 * External HTTP and A2A agents: those from configuration (in memory), and those registered and
 * removed at run time: commands on `external_agent-<name>` whose events are the agents (folded
 * from the log at start, followed from it when another dispatcher changes them), with their
 * tokens kept apart (`<schema>_secrets`). `<schema>.external_agents` is their read model.
 */
export class ExternalAgents {
  /**
   * Per agent name, the revision of its stream the registry reflects: an event of another
   * dispatcher arriving after this one's own newer command (a removal before our registration)
   * must not undo it.
   */
  private readonly applied = new Map<string, number>();
  /**
   * Names this dispatcher is registering or removing right now, each with the newest event of
   * the name that arrived meanwhile: applied once the command is done (its own event, even if it
   * arrives before the command returns, must not re-register the agent under it mid-probe).
   */
  private readonly busy = new Map<string, RecordedEvent | undefined>();
  /** Names of the external agents given by configuration (not stored, not removable at run time). */
  private readonly configuredAgents: ReadonlySet<string>;
  private readonly configured: readonly z.output<typeof externalAgentSchema>[];
  private readonly log: Logger;
  private readonly registry: InstanceRegistry;

  constructor(private readonly opts: ExternalAgentsOptions) {
    this.log = opts.logger;
    this.registry = opts.registry;
    const configured = (opts.configured ?? []).map((a) => externalAgentSchema.parse(a));
    for (const a of configured) refuseAliases(a.name, a.task_types);
    this.configured = configured;
    this.configuredAgents = new Set(configured.map((a) => a.name));
  }

  /** Put the configured agents in the registry (at every start; never stored). */
  registerConfigured(): void {
    for (const a of this.configured) this.registry.registerHttp(a);
  }

  /**
   * Register (or replace) an external HTTP agent: its token kept first (so whoever follows the
   * event finds it), then ExternalAgentRegistered recorded (without the token: what a restarted
   * or another dispatcher knows it by), then put in the registry and probed right away.
   */
  async registerAgent(
    input: z.input<typeof registerAgentInput>,
    correlationId: string = newId(),
  ): Promise<RegisterAgentReply> {
    if (this.opts.stopped()) throw new AppError('unavailable', 'dispatcher is stopping');
    const { actor, ...given } = registerAgentInput.parse(input);
    this.refuseUnmanaged(given.name, 'registered');
    // An A2A agent: its JSON-RPC URL, skills (task types) and description come from its card (fetched through the egress guard).
    let leftOut: string[] = [];
    let a: z.output<typeof externalAgentSchema>;
    if (given.a2a_card_url !== undefined) {
      const fromCard = await this.fromA2aCard({ ...given, a2a_card_url: given.a2a_card_url });
      a = fromCard.agent;
      leftOut = fromCard.leftOut;
    } else a = externalAgentSchema.parse(given);
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
    await this.opts.egress.checkUrlResolved(url);
    return this.opts.serially(`external_agent:${a.name}`, () =>
      this.locally(a.name, async () => {
        const at = new Date().toISOString();
        let registration: RegisterAgentReply['registration'];
        await withAgentNameLock(this.opts.pool, this.opts.schema, a.name, async (db) => {
          const kept = await externalAgentToken(db, this.opts.schema, a.name);
          await storeExternalAgentToken(db, this.opts.schema, a.name, a.token);
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
          const r = await handleCommand(this.opts.store, externalAgentStreamId(a.name), externalAgentDecider, {
            type: 'RegisterExternalAgent',
            data: { ...data, token_changed: kept !== a.token },
            metadata: { timestamp: at, correlationId, actor: actor ?? 'system:dispatcher' },
          });
          this.noteApplied(a.name, r.revision);
          registration =
            r.decidedFrom.status !== 'registered' ? 'created' : r.events.length > 0 ? 'replaced' : 'unchanged';
        });
        const inst = this.registry.registerHttp(a);
        await this.registry.probe(inst);
        this.log.info(
          { correlationId, agent: a.name, url: a.url, taskTypes: a.task_types, actor, healthy: inst.healthy },
          'external agent registered',
        );
        this.opts.kick();
        // Removed meanwhile through another dispatcher (its event came in while this one probed): the
        // registration happened, and the agent now has no instance.
        return {
          ...(this.opts.health().find((h) => h.agent === inst.agent) ?? {
            agent: a.name,
            status: 'down',
            task_types: [...a.task_types].sort(),
            queued: 0,
            in_flight: 0,
            instances: [],
          }),
          ...(registration !== undefined ? { registration } : {}),
          ...(leftOut.length > 0 ? { task_types_left_out: leftOut } : {}),
        };
      }),
    );
  }

  /**
   * The stored form of an A2A agent's registration: what the body left out, from the card. The
   * card's skills that are built-in task types (or their aliases) are not taken unless the body
   * names them in `task_types`: a card is the remote agent's word, and one listing
   * `revenue_analysis` took that task type's delegations from the built-in agent, its made-up
   * results feeding the built-in workflows. `leftOut` names them.
   */
  private async fromA2aCard(
    given: Omit<z.output<typeof registerAgentInput>, 'actor'> & { a2a_card_url: string },
  ): Promise<{ agent: z.output<typeof externalAgentSchema>; leftOut: string[] }> {
    const cardUrl = new URL(given.a2a_card_url);
    if (cardUrl.username || cardUrl.password)
      throw new AppError('validation', 'a2a_card_url must not contain credentials', { agent: given.name }, false);
    await this.opts.egress.checkUrlResolved(cardUrl);
    const card = await fetchA2aCard(this.opts.egress, given.a2a_card_url);
    const builtIn = (t: string) => Object.hasOwn(builtinTaskTypes, t) || resolveTaskType(t).alias !== undefined;
    const leftOut = given.task_types === undefined ? card.skills.filter(builtIn) : [];
    const taskTypes = given.task_types ?? card.skills.filter((t) => !builtIn(t));
    if (taskTypes.length === 0)
      throw new AppError(
        'validation',
        `the agent card at ${cardUrl.origin} offers only built-in task types (${leftOut.join(', ')}); name the ones it should take in task_types`,
        { agent: given.name, task_types_left_out: leftOut },
        false,
      );
    if (leftOut.length > 0)
      this.log.warn(
        { agent: given.name, taskTypesLeftOut: leftOut },
        "an A2A agent's card lists built-in task types: not taken (name them in task_types to take them)",
      );
    return {
      agent: externalAgentSchema.parse({
        ...given,
        url: given.url ?? card.url,
        task_types: taskTypes,
        description: given.description || card.description,
      }),
      leftOut,
    };
  }

  /**
   * Remove a registered external agent: its row goes, its instance leaves the registry (tasks
   * running there are handed back to the queue as for a lost instance), ExternalAgentRemoved
   * is recorded. `not_found` for a name that is not stored.
   */
  async removeAgent(name: string, actor?: string, correlationId: string = newId()): Promise<{ removed: string }> {
    if (this.opts.stopped()) throw new AppError('unavailable', 'dispatcher is stopping');
    this.refuseUnmanaged(name, 'removed');
    return this.opts.serially(`external_agent:${name}`, () =>
      this.locally(name, async () => {
        const at = new Date().toISOString();
        const data: ExternalAgentRemovedData = { name, removed_at: at };
        await withAgentNameLock(this.opts.pool, this.opts.schema, name, async (db) => {
          try {
            const r = await handleCommand(this.opts.store, externalAgentStreamId(name), externalAgentDecider, {
              type: 'RemoveExternalAgent',
              data,
              metadata: { timestamp: at, correlationId, actor: actor ?? 'system:dispatcher' },
            });
            this.noteApplied(name, r.revision);
          } catch (err) {
            throw isDomainError(err) ? new AppError(err.code, err.message, err.details, false) : err;
          }
          await deleteExternalAgentToken(db, this.opts.schema, name);
        });
        this.registry.unregisterHttp(name);
        this.opts.removed?.(name, actor ?? 'system:dispatcher', correlationId);
        this.log.info({ correlationId, agent: name, actor }, 'external agent removed');
        return { removed: name };
      }),
    );
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

  /**
   * Create the dispatcher's tables if needed and put the registered agents in the registry: the
   * registrations folded from the log (an agent named like a configured one is ignored:
   * configuration wins), with their tokens.
   */
  async loadStoredAgents(): Promise<void> {
    await ensureExternalAgentsTable(this.opts.pool, this.opts.schema);
    const states = new Map<string, ExternalAgentState>();
    for (let after = -1; ;) {
      const page = await this.opts.store.readAll({
        after,
        maxCount: 1_000,
        types: ['ExternalAgentRegistered', 'ExternalAgentRemoved'],
        streamPrefixes: [EXTERNAL_AGENT_STREAM_PREFIX],
      });
      for (const r of page) {
        const name = r.streamId.slice(EXTERNAL_AGENT_STREAM_PREFIX.length);
        this.noteApplied(name, r.revision);
        states.set(
          name,
          externalAgentDecider.evolve(
            states.get(name) ?? externalAgentDecider.initialState,
            toDomainEvent<ExternalAgentEvent>(r),
          ),
        );
      }
      if (page.length < 1_000) break;
      after = page[page.length - 1]!.position;
    }
    const registered = [...states.values()].flatMap((st) => (st.status === 'registered' ? [st.agent] : []));
    const tokens = await externalAgentTokens(
      this.opts.pool,
      this.opts.schema,
      registered.map((a) => a.name),
    );
    let loaded = 0;
    for (const r of registered) {
      if (this.configuredAgents.has(r.name)) {
        this.log.warn(
          { agent: r.name },
          'registered external agent has the name of a configured one; the configured one is used',
        );
        continue;
      }
      const parsed = this.agentOf(r, tokens.get(r.name));
      if (!parsed) continue;
      this.registry.registerHttp(parsed);
      loaded++;
    }
    if (loaded > 0) this.log.info({ loaded }, 'registered external agents loaded');
  }

  /** The registry reflects `name`'s stream up to `revision` (never moves back). */
  private noteApplied(name: string, revision: number): void {
    this.applied.set(name, Math.max(this.applied.get(name) ?? -1, revision));
  }

  /** Run a registration or removal of `name`; events of the name arriving meanwhile are applied after it. */
  private async locally<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.busy.set(name, undefined);
    try {
      return await fn();
    } finally {
      const deferred = this.busy.get(name);
      this.busy.delete(name);
      if (deferred)
        await this.refreshStoredAgent(deferred).catch((err: unknown) =>
          this.log.warn({ err, agent: name }, 'applying an event of the agent that came in meanwhile failed'),
        );
    }
  }

  /** An external agent registered or removed through another dispatcher: take it as its event says, with its token. */
  async refreshStoredAgent(recorded: RecordedEvent): Promise<void> {
    const e = toDomainEvent<ExternalAgentEvent>(recorded);
    const name = e.data.name;
    if (this.configuredAgents.has(name)) return;
    if (this.busy.has(name)) {
      const deferred = this.busy.get(name);
      if (!deferred || recorded.revision > deferred.revision) this.busy.set(name, recorded);
      return;
    }
    if (recorded.revision <= (this.applied.get(name) ?? -1)) return; // this dispatcher is past it already
    this.applied.set(name, recorded.revision);
    const have = this.registry.instances.get(`http:${name}`);
    if (e.type === 'ExternalAgentRemoved') {
      if (have) this.registry.unregisterHttp(name);
      this.opts.removed?.(
        name,
        typeof recorded.metadata.actor === 'string' ? recorded.metadata.actor : 'system:dispatcher',
        typeof recorded.metadata.correlationId === 'string' ? recorded.metadata.correlationId : newId(),
      );
      return;
    }
    const token = (await externalAgentTokens(this.opts.pool, this.opts.schema, [name])).get(name);
    const a = this.agentOf(e.data, token);
    if (!a) return;
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
    this.opts.kick();
  }

  /** The registry's form of a recorded registration, or undefined (logged) when it no longer parses. */
  private agentOf(
    r: ExternalAgentRegisteredData,
    token: string | undefined,
  ): z.output<typeof externalAgentSchema> | undefined {
    const parsed = externalAgentSchema.safeParse({
      name: r.name,
      url: r.url,
      task_types: r.task_types,
      max_concurrency: r.max_concurrency,
      description: r.description,
      ...(token !== undefined ? { token } : {}),
      ...(r.a2a_card_url !== undefined ? { a2a_card_url: r.a2a_card_url } : {}),
    });
    if (!parsed.success) {
      this.log.warn(
        { agent: r.name, issues: parsed.error.issues },
        'registered external agent does not parse; skipped',
      );
      return undefined;
    }
    return parsed.data;
  }
}
