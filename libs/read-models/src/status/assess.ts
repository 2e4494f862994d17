import type { IntegrationReadModels } from './schemas.js';

export type OverallStatus = 'healthy' | 'degraded' | 'unhealthy';

/** Why the overall status is not `healthy`: one line per finding, worst first. */
export interface StatusReason {
  readonly level: Exclude<OverallStatus, 'healthy'>;
  readonly component: string;
  readonly message: string;
}

/** The cached readiness probes (Postgres, NATS, event store, extras) and when they ran. */
export interface InfrastructureSnapshot {
  /** null: no check has finished yet. */
  readonly checked_at: string | null;
  readonly checks: Readonly<
    Record<string, { readonly status: 'up' | 'down'; readonly durationMs: number; readonly error?: string }>
  >;
}

export interface AssessOptions {
  readonly now: Date;
  /** A snapshot older than this counts as stale (degraded): the refresher has stopped. Default 10 s. */
  readonly staleAfterMs?: number;
  /** Checks whose failure makes the system unhealthy (default postgres, nats, eventStore); others degrade it. */
  readonly coreChecks?: readonly string[];
  /** An MCP server failing at least this share of at least `minCalls` calls in the last hour degrades. Default 0.5. */
  readonly failureRateThreshold?: number;
  readonly minCalls?: number;
}

/**
 * The overall verdict, a pure function of the status (so the gateway, a CLI or a test agree):
 * - unhealthy: a core dependency (Postgres, NATS, event store) is down; every known MCP server
 *   (unconfigured ones aside) is down or has its breaker open; a critical alert fires (not silenced).
 * - degraded: another readiness check is down or the checks are stale / not run yet; an MCP
 *   server is down, its breaker is not closed, or it fails too often; an agent whose
 *   instances are all down; a warning alert fires (not silenced).
 * Info alerts and silenced alerts do not count; missing read models are "no data yet", not a fault.
 */
export function assessIntegration(
  status: IntegrationReadModels,
  infra: InfrastructureSnapshot,
  options: AssessOptions,
): { status: OverallStatus; reasons: StatusReason[] } {
  const reasons: StatusReason[] = [];
  const core = new Set(options.coreChecks ?? ['postgres', 'nats', 'eventStore']);
  const staleAfter = options.staleAfterMs ?? 10_000;
  const threshold = options.failureRateThreshold ?? 0.5;
  const minCalls = options.minCalls ?? 10;

  // 1. Infrastructure, from the cached probes.
  if (infra.checked_at === null) {
    reasons.push({ level: 'degraded', component: 'infrastructure', message: 'infrastructure not checked yet' });
  } else {
    const age = options.now.getTime() - Date.parse(infra.checked_at);
    if (age > staleAfter)
      reasons.push({
        level: 'degraded',
        component: 'infrastructure',
        message: `infrastructure checks are stale (${Math.round(age / 1000)} s old)`,
      });
    for (const [name, c] of Object.entries(infra.checks)) {
      if (c.status === 'down') {
        reasons.push({
          level: core.has(name) ? 'unhealthy' : 'degraded',
          component: `infrastructure:${name}`,
          message: `${name} is down${c.error ? `: ${c.error}` : ''}`,
        });
      }
    }
  }

  // 2. MCP servers.
  const servers = status.mcp.servers;
  // An unconfigured server is not set up to run: neither broken nor working.
  const configured = servers.filter((s) => s.health !== 'unconfigured');
  const broken = configured.filter((s) => s.health === 'down' || s.breaker === 'open');
  if (configured.length > 0 && broken.length === configured.length) {
    reasons.push({
      level: 'unhealthy',
      component: 'mcp',
      message: `every configured MCP server is down or has its breaker open (${configured.length})`,
    });
  }
  for (const s of servers) {
    if (s.health === 'down')
      reasons.push({
        level: 'degraded',
        component: `mcp:${s.server}`,
        message: `down since ${s.health_since ?? '?'}${s.health_error ? `: ${s.health_error}` : ''}`,
      });
    if (s.breaker !== 'closed')
      reasons.push({
        level: 'degraded',
        component: `mcp:${s.server}`,
        message: `breaker ${s.breaker} since ${s.breaker_since ?? '?'}`,
      });
    const h = s.last_hour;
    if (h.calls >= minCalls && h.failure_rate !== null && h.failure_rate >= threshold) {
      reasons.push({
        level: 'degraded',
        component: `mcp:${s.server}`,
        message: `${h.failures} of ${h.calls} calls failed in the last hour`,
      });
    }
  }

  // 3. Agents whose every known instance is down.
  for (const a of status.agents.items) {
    if (a.instances && a.instances.length > 0 && a.instances.every((i) => i.status === 'down')) {
      reasons.push({
        level: 'degraded',
        component: `agent:${a.agent}`,
        message: `every instance is down (${a.instances.length})`,
      });
    }
  }

  // 4. Firing alerts that are not silenced.
  for (const a of status.alerts.items) {
    if (a.silenced_by !== null || (a.severity !== 'critical' && a.severity !== 'warning')) continue;
    reasons.push({
      level: a.severity === 'critical' ? 'unhealthy' : 'degraded',
      component: `alert:${a.rule_id}`,
      message: `${a.name} firing since ${a.firing_since ?? '?'}`,
    });
  }

  reasons.sort((a, b) => (a.level === b.level ? 0 : a.level === 'unhealthy' ? -1 : 1));
  const overall: OverallStatus = reasons.some((r) => r.level === 'unhealthy')
    ? 'unhealthy'
    : reasons.length
      ? 'degraded'
      : 'healthy';
  return { status: overall, reasons };
}
