import type { HealthReport, StaleProbe } from '../monitor.js';
import type { AlertRow } from '../store.js';
import type { HealthReportReply } from '@switchyard/contracts';

/** Services without which nothing works: one of them down makes the whole system unhealthy. */
export const ESSENTIAL_SERVICES: ReadonlySet<string> = new Set(['postgres', 'nats', 'event-store']);

/**
 * The overall verdict (pure):
 * - unhealthy: an essential service is down,
 * - degraded: any other service down, any service degraded, an unsilenced alert firing, or a
 *   service the monitor probes gone without a probe for too long (`stale`: its row is old news),
 * - healthy otherwise. Services never probed yet (`unknown`) do not count, nor services not
 *   probed for `staleAfterMs` before `now` (no longer probed by anyone: e.g. a previous run's).
 * `reasons` says why, one line each, worst first.
 */
export function overallHealth(
  services: HealthReport['services'],
  firing: readonly Pick<AlertRow, 'name' | 'severity' | 'labels' | 'suppressedBy'>[],
  opts: {
    essential?: ReadonlySet<string>;
    now?: number;
    staleAfterMs?: number;
    stale?: readonly Pick<StaleProbe, 'service' | 'ageMs'>[];
  } = {},
): { status: HealthReportReply['status']; reasons: string[] } {
  const essential = opts.essential ?? ESSENTIAL_SERVICES;
  const critical: string[] = [];
  const minor: string[] = [];
  for (const s of services) {
    if (
      opts.now !== undefined &&
      opts.staleAfterMs !== undefined &&
      s.lastProbeAt &&
      opts.now - s.lastProbeAt.getTime() > opts.staleAfterMs
    )
      continue;
    const why = s.lastError ? ` (${s.lastError})` : '';
    if (s.status === 'down') (essential.has(s.service) ? critical : minor).push(`${s.service} is down${why}`);
    else if (s.status === 'degraded')
      minor.push(`${s.service} is degraded: ${s.reason === 'slow' ? 'slow responses' : `failing${why}`}`);
  }
  for (const s of opts.stale ?? [])
    minor.push(`monitor data is stale: ${s.service} not probed for ${Math.round(s.ageMs / 1000)} s`);
  for (const a of firing) {
    if (a.suppressedBy) continue;
    const on = a.labels['service'] ?? a.labels['mount'] ?? a.labels['cpu'];
    minor.push(`alert firing: ${a.name} (${a.severity})${on ? ` on ${on}` : ''}`);
  }
  const status = critical.length ? 'unhealthy' : minor.length ? 'degraded' : 'healthy';
  return { status, reasons: [...critical, ...minor] };
}
