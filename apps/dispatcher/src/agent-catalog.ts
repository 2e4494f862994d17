import type { z } from 'zod';
import {
  aliasesOf,
  TASK_TYPE_ALIASES,
  builtinAgentCards as agentCards,
  builtinTaskTypes,
  cardToJson,
  checkTaskContext,
  contextAliasesOf,
  noopInput,
  NOOP_TASK_TYPE,
  type AgentHealthView,
  type CapabilitiesReply,
} from '@switchyard/contracts';
import { AppError } from '@switchyard/platform';
import type { ExistingTaskState } from '@switchyard/domain';
import type { AgentInstance, InstanceRegistry } from './instances.js';

/**
 * What the dispatcher offers and how its agents are: the task types and agents a submission may
 * name (and the check of a submission against them), each agent's health, the capabilities.
 */
export class AgentCatalog {
  private readonly schemas: Record<string, z.ZodType>;

  constructor(
    private readonly registry: InstanceRegistry,
    /** The live tasks of this dispatcher (health counts the queued ones). */
    private readonly activeStates: () => Iterable<ExistingTaskState>,
    taskSchemas?: Readonly<Record<string, z.ZodType>>,
  ) {
    const builtin: Record<string, z.ZodType> = {};
    for (const [type, def] of Object.entries(builtinTaskTypes as Record<string, { readonly input: z.ZodType }>))
      builtin[type] = def.input;
    builtin[NOOP_TASK_TYPE] = noopInput;
    this.schemas = { ...builtin, ...(taskSchemas ?? {}) };
  }

  /** Task types a submission may name: the built-in ones and whatever a live or registered agent offers. */
  knownTaskTypes(): string[] {
    const types = new Set(Object.keys(builtinTaskTypes));
    for (const i of this.registry.instances.values()) for (const t of i.taskTypes) types.add(t);
    return [...types].sort();
  }

  /**
   * A submission the dispatcher would refuse: unknown task type, a context outside its schema
   * (an unknown field among them), an unknown agent (AppError validation). Returns the context to
   * record: the snake_case spellings of its fields renamed to the schema's names (checkTaskContext).
   */
  check(
    taskType: string,
    context: Record<string, unknown> | undefined,
    agent: string | undefined,
  ): Record<string, unknown> | undefined {
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
    let checked = context;
    if (schema) {
      const r = checkTaskContext(taskType, schema, context ?? {});
      if (!r.success) throw new AppError('validation', r.message, { task_type: taskType, errors: r.issues }, false);
      checked = r.context;
    }
    if (agent !== undefined && !this.agentNames().includes(agent)) {
      throw new AppError(
        'validation',
        `unknown agent ${agent}; valid agents: ${this.agentNames().join(', ')}`,
        { agent: agent },
        false,
      );
    }
    // An agent named for a task type it does not take (its card does not list it, nor does any of
    // its instances): no instance could ever be given the task, and it would wait in the queue for
    // good, holding its context and a place in every pass. `noop` is every agent's to take.
    if (agent !== undefined && taskType !== NOOP_TASK_TYPE && !this.takes(agent, taskType)) {
      const takers = this.agentsTaking(taskType);
      throw new AppError(
        'validation',
        `agent ${agent} does not take task type ${taskType}; agents that do: ${takers.join(', ') || 'none'}`,
        { agent, task_type: taskType, agents: takers },
        false,
      );
    }
    return checked;
  }

  /** Whether `agent` takes `taskType`: its card lists it, or one of its instances does (an agent known by neither: not refused here). */
  private takes(agent: string, taskType: string): boolean {
    const card = agentCards.find((c) => c.name === agent);
    const instances = [...this.registry.instances.values()].filter((i) => i.agent === agent);
    if (!card && instances.length === 0) return true;
    return (
      (card?.taskTypes.some((t) => t.type === taskType) ?? false) || instances.some((i) => i.taskTypes.has(taskType))
    );
  }

  /** The agents whose card or running instances take `taskType`. */
  private agentsTaking(taskType: string): string[] {
    const names = new Set<string>();
    for (const c of agentCards) if (c.taskTypes.some((t) => t.type === taskType)) names.add(c.name);
    for (const i of this.registry.instances.values()) if (i.taskTypes.has(taskType)) names.add(i.agent);
    return [...names].sort();
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
    const queued = [...this.activeStates()].filter((s) => s.status === 'queued');
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

  /** The other spellings of a task type's fields that a context may use (none for a type without a schema here). */
  private contextAliases(taskType: string): Record<string, string> {
    const schema = this.schemas[taskType];
    return schema ? contextAliasesOf(schema) : {};
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
        task_types: [...i.taskTypes].sort().map((type) => ({
          type,
          description: '',
          input_schema: i.inputSchemas.get(type),
          aliases: aliasesOf(type),
          context_aliases: this.contextAliases(type),
        })),
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
        context_aliases: { ...t.contextAliases },
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
}
