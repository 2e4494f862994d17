import type { NatsConnection } from '@nats-io/nats-core';
import { request, serviceClient } from '@switchyard/messaging';
import type { ServiceInfo } from '@nats-io/services';
import { guardedFetch, isAppError, urlOrigin, type EgressGuard, type Logger } from '@switchyard/platform';
import type { externalAgentSchema } from '@switchyard/contracts';
import {
  AGENT_SERVICE_PREFIX,
  agentCardJsonSchema,
  agentInstanceSubject,
  agentLoadReply,
  httpHealthReply,
} from '@switchyard/contracts';
import type { z } from 'zod';
import type { AgentCard } from '@a2a-js/sdk';
import { fetchA2aCard } from './a2a-agents.js';

/** The one instance of an external agent (HTTP contract or A2A), named after the agent. */
export const httpInstanceId = (agent: string): string => `http-${agent}`;

export type BreakerState = 'closed' | 'open' | 'half_open';

/** One place a task can run: an instance of a NATS agent service, or an external HTTP agent. */
export interface AgentInstance {
  readonly key: string;
  readonly agent: string;
  readonly instance: string;
  readonly kind: 'nats' | 'http';
  description: string;
  version: string;
  taskTypes: Set<string>;
  maxConcurrency: number;
  /** Input JSON Schemas by task type, from the card (for the capabilities view). */
  inputSchemas: Map<string, unknown>;
  /** HTTP agents only. */
  url?: string;
  token?: string;
  /** External A2A agents: the card's URL (probed instead of `/health`) and the card as last read. */
  a2aCardUrl?: string;
  a2aCard?: AgentCard;
  healthy: boolean;
  /** Tasks this dispatcher has running there. */
  inFlight: number;
  /** What the instance last reported (may include work from other callers). */
  reportedInFlight: number;
  reportedQueue: number;
  lastSeen?: number;
  lastError?: string;
  probeFailures: number;
  // circuit breaker: opens after `breakerThreshold` consecutive task failures, half-opens after the cooldown
  consecutiveFailures: number;
  openUntil?: number;
  halfOpenTrial: boolean;
}

export interface InstanceRegistryOptions {
  readonly nats: NatsConnection;
  readonly logger: Logger;
  /** Checks every connection to an external HTTP agent (SSRF). */
  readonly egress: EgressGuard;
  /** How long a discovery round gathers `$SRV.INFO` replies. Default 300 ms. */
  readonly discoveryWaitMs?: number;
  /** Timeout of one health probe. Default 1000 ms. */
  readonly probeTimeoutMs?: number;
  /** Consecutive failed probes that mark an instance down (a "no responders" answer marks it down at once). Default 2. */
  readonly downAfterProbes?: number;
  readonly breakerThreshold?: number;
  readonly breakerCooldownMs?: number;
  /** Forget an instance that stayed down this long. Default 60 s. */
  readonly forgetAfterMs?: number;
  readonly onUp: (i: AgentInstance) => void;
  readonly onDown: (i: AgentInstance, reason: string) => void;
}

/**
 * The dispatcher's view of the agent instances: discovered from `$SRV.INFO` (service names
 * `agent-*`, capability card in the metadata), probed on their per-instance `load` endpoint
 * (health + load), plus registered external HTTP agents probed on `GET /health`.
 */
export class InstanceRegistry {
  readonly instances = new Map<string, AgentInstance>();
  private readonly log: Logger;

  constructor(private readonly opts: InstanceRegistryOptions) {
    this.log = opts.logger.child({ component: 'agent-instances' });
  }

  /**
   * 1. Ask every service for its info; new `agent-*` instances are added, known ones refreshed. A
   * new instance, or a known one that is down, is taken as up only once it answers on its own
   * `load` subject: any service role may answer discovery, but only the agents may serve an
   * agent's subjects, so an answer to discovery alone (say, from a compromised process of another
   * role) would otherwise route tasks to an instance nobody serves, and bring it back after each
   * probe marked it down.
   */
  async discover(): Promise<void> {
    const toProbe: AgentInstance[] = [];
    let iter;
    try {
      iter = await serviceClient(this.opts.nats, { timeoutMs: this.opts.discoveryWaitMs ?? 300 }).info();
    } catch (err) {
      this.log.warn({ err }, 'agent discovery failed');
      return;
    }
    try {
      for await (const info of iter) {
        const learned = this.learn(info);
        if (learned && !learned.healthy) toProbe.push(learned);
      }
    } catch (err) {
      // No service at all answers with "no responders": nothing to learn this round.
      if (!String(err).includes('no responders')) this.log.warn({ err }, 'agent discovery failed');
    }
    await Promise.all(toProbe.map((i) => this.probe(i)));
  }

  /** Add or refresh the instance an info answer describes; returns it (undefined: not an agent's, or unusable). */
  private learn(info: ServiceInfo): AgentInstance | undefined {
    {
      if (!info.name.startsWith(AGENT_SERVICE_PREFIX) || info.metadata?.kind !== 'agent') return undefined;
      const md = info.metadata;
      const agent = md.agent;
      const instance = md.instance;
      if (!agent || !instance) return undefined;
      let card: z.infer<typeof agentCardJsonSchema> | undefined;
      try {
        card = agentCardJsonSchema.parse(JSON.parse(md.card ?? 'null'));
      } catch {
        this.log.warn({ agent, instance }, 'agent published a card that does not parse; ignored');
        return undefined;
      }
      const key = `nats:${agent}/${instance}`;
      const known = this.instances.get(key);
      const base = {
        description: card.description,
        version: card.version,
        taskTypes: new Set(card.taskTypes.map((t) => t.type)),
        inputSchemas: new Map(card.taskTypes.map((t) => [t.type, t.inputSchema] as const)),
        maxConcurrency: card.maxConcurrency,
      };
      if (known) {
        Object.assign(known, base);
        known.lastSeen = Date.now();
        return known;
      }
      const inst: AgentInstance = {
        key,
        agent,
        instance,
        kind: 'nats',
        ...base,
        // Up once its `load` subject answers (see discover).
        healthy: false,
        inFlight: 0,
        reportedInFlight: 0,
        reportedQueue: 0,
        lastSeen: Date.now(),
        probeFailures: 0,
        consecutiveFailures: 0,
        halfOpenTrial: false,
      };
      this.instances.set(key, inst);
      this.log.debug({ agent, instance, taskTypes: [...base.taskTypes] }, 'agent instance discovered');
      return inst;
    }
  }

  /** Add (or replace) an external agent reached over the HTTP agent contract. */
  registerHttp(a: z.output<typeof externalAgentSchema>): AgentInstance {
    const key = `http:${a.name}`;
    const prev = this.instances.get(key);
    const inst: AgentInstance = {
      key,
      agent: a.name,
      instance: httpInstanceId(a.name),
      kind: 'http',
      description: a.description,
      version: '1.0.0',
      taskTypes: new Set(a.task_types),
      inputSchemas: new Map(),
      maxConcurrency: a.max_concurrency,
      url: a.url.replace(/\/+$/, ''),
      ...(a.token ? { token: a.token } : {}),
      ...(a.a2a_card_url ? { a2aCardUrl: a.a2a_card_url } : {}),
      ...(a.a2a_card_url && prev?.a2aCardUrl === a.a2a_card_url && prev.a2aCard ? { a2aCard: prev.a2aCard } : {}),
      // Unknown until the first probe answers.
      healthy: false,
      inFlight: prev?.inFlight ?? 0,
      reportedInFlight: 0,
      reportedQueue: 0,
      probeFailures: 0,
      consecutiveFailures: 0,
      halfOpenTrial: false,
    };
    this.instances.set(key, inst);
    this.log.info(
      { agent: a.name, url: inst.url && urlOrigin(inst.url), taskTypes: a.task_types },
      'external HTTP agent registered',
    );
    return inst;
  }

  /**
   * Take an external agent out: no new task goes to it. It is marked down first (onDown), so the
   * tasks running there go back to the queue the way they do when an instance is lost.
   */
  unregisterHttp(name: string): AgentInstance | undefined {
    const inst = this.instances.get(`http:${name}`);
    if (!inst) return undefined;
    this.instances.delete(inst.key);
    inst.healthy = false;
    this.log.info({ agent: name, url: inst.url && urlOrigin(inst.url) }, 'external HTTP agent unregistered');
    // Not markDown, which skips an instance already down: the runs there must be handed back regardless.
    this.opts.onDown(inst, 'agent unregistered');
    return inst;
  }

  /** 2. Probe every instance once (in parallel): health and reported load. */
  async probeAll(): Promise<void> {
    await Promise.all([...this.instances.values()].map((i) => this.probe(i)));
    const forgetAfter = this.opts.forgetAfterMs ?? 60_000;
    for (const i of this.instances.values()) {
      if (i.kind === 'nats' && !i.healthy && i.inFlight === 0 && Date.now() - (i.lastSeen ?? 0) > forgetAfter) {
        this.instances.delete(i.key);
        this.log.info({ agent: i.agent, instance: i.instance }, 'forgot agent instance that stayed down');
      }
    }
  }

  async probe(i: AgentInstance): Promise<void> {
    const timeoutMs = this.opts.probeTimeoutMs ?? 1_000;
    try {
      if (i.kind === 'nats') {
        const load = await request(this.opts.nats, agentInstanceSubject(i.agent, i.instance, 'load'), undefined, {
          schema: agentLoadReply,
          timeoutMs,
        });
        i.reportedInFlight = load.in_flight;
        i.reportedQueue = load.queue_length;
        i.maxConcurrency = load.max_concurrency;
      } else if (i.a2aCardUrl) {
        // An A2A agent has no health contract: its card answering is its health.
        i.a2aCard = (await fetchA2aCard(this.opts.egress, i.a2aCardUrl, timeoutMs)).card;
        i.reportedInFlight = 0;
      } else {
        const res = await guardedFetch(this.opts.egress, `${i.url}/health`, { timeoutMs, maxBytes: 64 * 1024 });
        if (!res.ok) throw new Error(`health answered ${res.status}`);
        const h = httpHealthReply.parse(await res.json());
        i.reportedInFlight = h.in_flight ?? 0;
      }
      i.probeFailures = 0;
      i.lastSeen = Date.now();
      if (!i.healthy) this.markUp(i);
    } catch (err) {
      i.probeFailures++;
      i.lastError = err instanceof Error ? err.message : String(err);
      // "No responders" means the instance's subscription is gone: it is down now, not maybe.
      const gone = isAppError(err) && err.code === 'unavailable';
      if (i.healthy && (gone || i.probeFailures >= (this.opts.downAfterProbes ?? 2))) this.markDown(i, i.lastError);
    }
  }

  markUp(i: AgentInstance): void {
    i.healthy = true;
    i.probeFailures = 0;
    this.log.info({ agent: i.agent, instance: i.instance }, 'agent instance up');
    this.opts.onUp(i);
  }

  markDown(i: AgentInstance, reason: string): void {
    if (!i.healthy) return;
    i.healthy = false;
    this.log.warn({ agent: i.agent, instance: i.instance, reason }, 'agent instance down');
    this.opts.onDown(i, reason);
  }

  breakerState(i: AgentInstance, now = Date.now()): BreakerState {
    if (i.openUntil === undefined) return 'closed';
    return now < i.openUntil ? 'open' : 'half_open';
  }

  /** May a new task go there (health, breaker, concurrency)? */
  accepts(i: AgentInstance, now = Date.now()): boolean {
    if (!i.healthy || i.inFlight >= i.maxConcurrency) return false;
    const b = this.breakerState(i, now);
    if (b === 'open') return false;
    // Half-open: one trial task at a time.
    return b === 'closed' || !i.halfOpenTrial;
  }

  reserve(i: AgentInstance): void {
    i.inFlight++;
    if (this.breakerState(i) === 'half_open') i.halfOpenTrial = true;
  }

  release(i: AgentInstance): void {
    i.inFlight = Math.max(0, i.inFlight - 1);
  }

  recordSuccess(i: AgentInstance): void {
    i.consecutiveFailures = 0;
    i.openUntil = undefined;
    i.halfOpenTrial = false;
  }

  recordFailure(i: AgentInstance, reason: string): void {
    i.consecutiveFailures++;
    i.lastError = reason;
    i.halfOpenTrial = false;
    const threshold = this.opts.breakerThreshold ?? 3;
    if (i.consecutiveFailures >= threshold || this.breakerState(i) === 'half_open') {
      i.openUntil = Date.now() + (this.opts.breakerCooldownMs ?? 10_000);
      this.log.warn(
        { agent: i.agent, instance: i.instance, failures: i.consecutiveFailures },
        'circuit opened for agent instance',
      );
    }
  }

  /** Instances that could run `taskType` (optionally only `agent`'s), whatever their state. */
  capable(taskType: string, agent?: string): AgentInstance[] {
    return [...this.instances.values()].filter(
      (i) => i.taskTypes.has(taskType) && (agent === undefined || i.agent === agent),
    );
  }
}
