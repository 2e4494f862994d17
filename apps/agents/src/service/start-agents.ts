import type pg from 'pg';
import type { NatsConnection } from '@nats-io/nats-core';
import { newId, type Logger } from '@switchyard/platform';
import { agentCards } from '../registry.js';
import type { LlmClient } from '../llm.js';
import { startAgent, type AgentHandle } from './agent-service.js';
import { startAgentHttp, type AgentHttpCallAudit, type AgentHttpHandle } from './http.js';
import { BUILTIN_AGENT_PORTS } from '@switchyard/contracts';

export interface StartAgentsOptions {
  readonly nats: NatsConnection;
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** Prefix of the instance ids (`<prefix>-<agent>`); default a random id, so restarts get new ids. */
  readonly instancePrefix?: string;
  /** Which agents (default all six). */
  readonly agents?: readonly string[];
  /**
   * Serve the seed's HTTP contract on 6001-6006 (or `ports`). Only with a bearer token: the
   * contract runs work for whoever calls it. Default off (undefined or false).
   */
  readonly http?:
    | false
    | {
        /** Bearer token for POST /execute (401 without it): pass AI_AGENT_AUTH_TOKEN or the launcher's generated one. */
        readonly token: string;
        /** Default 127.0.0.1. */
        readonly host?: string;
        /** Told about every /execute the contract ran (the audit trail of direct calls). */
        readonly onExecute?: (call: AgentHttpCallAudit) => void;
        /** Port per agent name; 0 picks a free one. Default BUILTIN_AGENT_PORTS. */
        readonly ports?: Readonly<Record<string, number>>;
      };
  /** Serve the benchmark/test-only `noop` task type on every agent. Default false. */
  readonly noop?: boolean;
  readonly llm?: LlmClient;
}

export interface AgentsHandle {
  readonly agents: readonly AgentHandle[];
  readonly http: readonly AgentHttpHandle[];
  stop(): Promise<void>;
}

/** Start the built-in agents (one instance each) as NATS services, plus their HTTP contract. */
export async function startAgents(opts: StartAgentsOptions): Promise<AgentsHandle> {
  const prefix = opts.instancePrefix ?? newId().slice(0, 8);
  const names = opts.agents ?? agentCards.map((c) => c.name);
  const agents: AgentHandle[] = [];
  const https: AgentHttpHandle[] = [];
  const stop = async () => {
    await Promise.all(https.map((h) => h.close()));
    await Promise.all(agents.map((a) => a.stop()));
  };
  try {
    for (const agent of names) {
      const handle = await startAgent({
        nats: opts.nats,
        pool: opts.pool,
        agent,
        instanceId: `${prefix}-${agent}`,
        logger: opts.logger,
        ...(opts.noop !== undefined ? { noop: opts.noop } : {}),
        ...(opts.llm ? { llm: opts.llm } : {}),
      });
      agents.push(handle);
      if (opts.http) {
        const port = opts.http.ports?.[agent] ?? BUILTIN_AGENT_PORTS[agent] ?? 0;
        https.push(
          await startAgentHttp({
            runtime: handle.runtime,
            port,
            logger: opts.logger,
            ...(opts.http.host ? { host: opts.http.host } : {}),
            token: opts.http.token,
            ...(opts.http.onExecute ? { onExecute: opts.http.onExecute } : {}),
          }),
        );
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { agents, http: https, stop };
}
