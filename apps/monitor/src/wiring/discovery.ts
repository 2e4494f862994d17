import {
  MCP_SUBJECT_PREFIX,
  mcpRegistryListSubject,
  mcpSubject,
  registryListReplySchema,
  serverHealthSchema,
  type ServerHealth,
} from '@switchyard/contracts';
import { request, serviceClient, type NatsConnection } from '@switchyard/messaging';
import type { Logger } from '@switchyard/platform';
import { functionProbe, type Probe } from '../probes.js';

export interface DiscoveryOptions {
  readonly nats: NatsConnection;
  readonly logger: Logger;
  /** Receives each newly found probe (the Monitor's addProbe). */
  readonly addProbe: (probe: Probe) => void;
  /** Stops probing an agent instance no longer registered and retires it (the Monitor's removeProbe). */
  readonly removeProbe?: (service: string, reason: string) => Promise<void> | void;
  /**
   * Shows a listed MCP server that cannot run as configured as `unconfigured`, with why (the
   * Monitor's markUnconfigured): it then appears in the health report and the status instead of
   * being absent, without counting as an outage.
   */
  readonly markUnconfigured?: (service: string, kind: string, reason: string) => Promise<void> | void;
  /** Discovery rounds in a row an agent instance may miss before it is removed (default 2). */
  readonly agentMissedRoundsToRemove?: number;
  readonly probeTimeoutMs: number;
  /** A successful probe at least this slow is `degraded` (the health policy's threshold). */
  readonly degradedResponseMs: number;
  /** Subject prefix of the MCP connector service (default `switchyard.svc.mcp.v1`; tests use their own). */
  readonly mcpSubjectPrefix?: string;
  /** NATS service names of agents start with this (default `agent-`). */
  readonly agentServicePrefix?: string;
  /** Every MCP health answer a probe got (the wiring turns its queue figures into samples). */
  readonly onMcpHealth?: (server: string, health: ServerHealth) => void;
  /** How long `$SRV.PING` discovery gathers answers (default 500 ms). */
  readonly agentDiscoveryWaitMs?: number;
}

/** Probe service name of an MCP server. */
export const mcpProbeName = (server: string): string => `mcp:${server}`;
/** Probe service name of an agent instance. */
export const agentProbeName = (agent: string, instance: string): string => `agent:${agent}:${instance}`;

/** Resolves after `ms`, or at once when `signal` aborts (never rejects: the caller looks at the signal). */
export const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

/**
 * Finds what to probe besides the core services and hands each new target to the Monitor once:
 * - MCP servers from the connectors' registry listing (`registry.list` over NATS), probed with
 *   `mcpSubject(server, 'health')` `{ probe: true }`; disabled servers get no probe, unconfigured
 *   ones none either: they are handed to `markUnconfigured` with the connector's reason (a
 *   credential not set), once per reason, and probed once the listing shows them configured,
 * - agent instances from the NATS services API (`$SRV.PING`, names starting with `agent-`),
 *   probed with `$SRV.PING.<name>.<id>` of the instance (a restarted instance's new id is followed);
 *   an instance missing from `agentMissedRoundsToRemove` listings in a row (its process ended) is
 *   removed: its probe stops and the Monitor retires it, so it leaves the report instead of
 *   staying `up` (or `down`) with a frozen probe time.
 * A failed listing is logged and retried on the next round; it removes nothing.
 */
export class ProbeDiscovery {
  private readonly mcp = new Set<string>();
  /** Unconfigured MCP servers marked so, with the reason they were marked with. */
  private readonly unconfigured = new Map<string, string>();
  private readonly agents = new Map<string, { name: string; id: string; missed: number }>();
  private readonly log: Logger;

  constructor(private readonly opts: DiscoveryOptions) {
    this.log = opts.logger.child({ component: 'monitor-discovery', correlationId: 'monitor' });
  }

  /** Probe names found so far. */
  get known(): { mcp: string[]; agents: string[] } {
    return { mcp: [...this.mcp].map(mcpProbeName), agents: [...this.agents.keys()] };
  }

  /** One discovery round over both sources. */
  async refresh(): Promise<void> {
    await Promise.all([this.refreshMcp(), this.refreshAgents()]);
  }

  private async refreshMcp(): Promise<void> {
    const prefix = this.opts.mcpSubjectPrefix ?? MCP_SUBJECT_PREFIX;
    let servers;
    try {
      ({ servers } = await request(
        this.opts.nats,
        mcpRegistryListSubject(prefix),
        {},
        { schema: registryListReplySchema, timeoutMs: this.opts.probeTimeoutMs, correlationId: 'monitor' },
      ));
    } catch (err) {
      this.log.debug({ err }, 'MCP registry listing failed; retrying next round');
      return;
    }
    for (const s of servers) {
      if (this.mcp.has(s.server) || !s.enabled) continue;
      if (s.state === 'unconfigured') {
        await this.markUnconfigured(s.server, s.last_error ?? 'not configured');
        continue;
      }
      this.unconfigured.delete(s.server);
      this.mcp.add(s.server);
      this.opts.addProbe(this.mcpProbe(s.server, prefix));
      this.log.debug({ server: s.server, state: s.state }, 'probing MCP server');
    }
  }

  private async markUnconfigured(server: string, reason: string): Promise<void> {
    if (!this.opts.markUnconfigured || this.unconfigured.get(server) === reason) return;
    try {
      await this.opts.markUnconfigured(mcpProbeName(server), 'mcp', reason);
      this.unconfigured.set(server, reason);
      this.log.debug({ server, reason }, 'MCP server unconfigured: not probed');
    } catch (err) {
      // Tried again next round.
      this.log.warn({ err, server }, 'marking an MCP server unconfigured failed');
    }
  }

  private mcpProbe(server: string, prefix: string): Probe {
    const { nats, probeTimeoutMs, degradedResponseMs } = this.opts;
    return functionProbe(mcpProbeName(server), 'mcp', async (signal) => {
      const started = performance.now();
      const h = await request(
        nats,
        mcpSubject(server, 'health', prefix),
        { probe: true },
        { schema: serverHealthSchema, timeoutMs: probeTimeoutMs, correlationId: 'monitor' },
      );
      this.opts.onMcpHealth?.(server, h);
      const details = {
        state: h.state,
        breaker: h.breaker,
        ...(h.response_ms !== undefined ? { responseMs: h.response_ms } : {}),
      };
      switch (h.state) {
        case 'up':
        case 'unconfigured': // lost its configuration since discovery: not an outage
          return details;
        case 'degraded':
          // The health decider knows "degraded" only as a slow success: answer no earlier than
          // its threshold, so the connector's own verdict (slow, breaker not closed) shows up as such.
          // When the threshold is beyond the probe timeout that would read as a failure: answer now.
          if (degradedResponseMs < probeTimeoutMs)
            await sleep(degradedResponseMs - (performance.now() - started), signal);
          return details;
        case 'down':
          throw new Error(`MCP server ${server} is down${h.last_error ? `: ${h.last_error}` : ''}`);
        default: {
          const never: never = h.state;
          throw new Error(`unknown MCP state ${String(never)}`);
        }
      }
    });
  }

  private async refreshAgents(): Promise<void> {
    const prefix = this.opts.agentServicePrefix ?? 'agent-';
    const found: { name: string; id: string; metadata?: Record<string, string> }[] = [];
    try {
      const it = await serviceClient(this.opts.nats, { timeoutMs: this.opts.agentDiscoveryWaitMs ?? 500 }).ping();
      for await (const s of it) if (s.name.startsWith(prefix)) found.push(s);
    } catch (err) {
      // No service at all answers with "no responders": none is registered. Any other failure
      // says nothing about the instances, so it removes none.
      this.log.debug({ err }, 'agent discovery found nothing');
      if (!/no responders|503/i.test(String((err as Error)?.message ?? err))) return;
    }
    const seen = new Set<string>();
    for (const s of found) {
      const agent = s.metadata?.['agent'] ?? s.name.slice(prefix.length);
      const instance = s.metadata?.['instance'] ?? s.id;
      const key = agentProbeName(agent, instance);
      seen.add(key);
      const target = this.agents.get(key);
      if (target) {
        target.id = s.id; // same instance name, maybe a new process: follow it
        target.missed = 0;
        continue;
      }
      const t = { name: s.name, id: s.id, missed: 0 };
      this.agents.set(key, t);
      this.opts.addProbe(
        functionProbe(key, 'agent', async () => {
          await this.opts.nats.request(`$SRV.PING.${t.name}.${t.id}`, new Uint8Array(0), {
            timeout: this.opts.probeTimeoutMs,
          });
          return { service: t.name, id: t.id };
        }),
      );
      this.log.debug({ agent, instance, service: s.name }, 'probing agent instance');
    }
    const limit = this.opts.agentMissedRoundsToRemove ?? 2;
    for (const [key, t] of this.agents) {
      if (seen.has(key) || ++t.missed < limit) continue;
      this.agents.delete(key);
      this.log.info({ service: key, missedRounds: t.missed }, 'agent instance no longer registered: probe removed');
      try {
        await this.opts.removeProbe?.(key, `not registered for ${t.missed} discovery rounds`);
      } catch (err) {
        this.log.warn({ err, service: key }, 'retiring an agent instance failed');
      }
    }
  }
}
