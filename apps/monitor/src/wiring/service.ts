import { addService, type NatsConnection, type Service } from '@switchyard/messaging';
import type { Logger } from '@switchyard/platform';
import type { Monitor } from '../monitor.js';
import {
  addSilenceRequest,
  removeSilenceRequest,
  alertsRequest,
  availabilityRequest,
  deleteRuleRequest,
  healthReportRequest,
  metricsRequest,
  MONITOR_SERVICE_NAME,
  MONITOR_SERVICE_VERSION,
  monitorSubject,
  putRulesRequest,
  resolveAlertRequest,
  rulesRequest,
  silencesRequest,
  trendsRequest,
  type HealthReportReply,
} from '@switchyard/contracts';
import { overallHealth } from './overall.js';
import { withCommandScope } from './publisher.js';
import type { RuleManager } from './rule-manager.js';

/** The health report with the overall verdict (healthy / degraded / unhealthy) and its reasons. */
export async function healthReport(monitor: Monitor): Promise<HealthReportReply> {
  const [report, firing] = await Promise.all([monitor.getHealthReport(), monitor.listAlerts({ state: 'firing' })]);
  const { probeIntervalMs, probeTimeoutMs } = monitor.settings;
  const { stale, ...rest } = report;
  const { status, reasons } = overallHealth(report.services, firing, {
    now: report.at,
    staleAfterMs: Math.max(60_000, 10 * probeIntervalMs + probeTimeoutMs),
    stale,
  });
  // Dates become ISO strings on the wire; do it here so in-process callers see the same shape.
  return JSON.parse(
    JSON.stringify({ ...rest, status, reasons, at: new Date(report.at).toISOString() }),
  ) as HealthReportReply;
}

const json = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/**
 * The monitor's request-reply service `switchyard.svc.monitor.v1.<endpoint>` (queue group
 * `monitor`), so the gateway, possibly in another process, asks the monitor over NATS.
 * AppErrors (not_found, illegal_state, validation) travel back with their code.
 */
export function startMonitorService(opts: {
  nats: NatsConnection;
  monitor: Monitor;
  rules: RuleManager;
  logger: Logger;
  serviceName?: string;
}): Promise<Service> {
  const { monitor, rules } = opts;
  const name = opts.serviceName ?? MONITOR_SERVICE_NAME;
  const subject = (e: Parameters<typeof monitorSubject>[0]) => monitorSubject(e, name);
  return addService(opts.nats, {
    name,
    version: MONITOR_SERVICE_VERSION,
    description: 'Switchyard monitoring: health, trends, availability, alerts, silences, rules, metrics',
    logger: opts.logger,
    // A monitor stopped while active stays subscribed (NATS keeps handing it requests) after the
    // standby took over: the gateway then asks the live one by its instance subject.
    direct: true,
    endpoints: {
      health_report: {
        subject: subject('health_report'),
        schema: healthReportRequest,
        handler: () => healthReport(monitor),
      },
      trends: {
        subject: subject('trends'),
        schema: trendsRequest,
        handler: async (q) => ({
          metric: q.metric,
          window: q.window,
          series: await monitor.getPerformanceTrends(q.metric, q.window, {
            ...(q.labels ? { labels: q.labels } : {}),
            ...(q.limit !== undefined ? { limit: q.limit } : {}),
          }),
        }),
      },
      availability: {
        subject: subject('availability'),
        schema: availabilityRequest,
        handler: async (q) => {
          const names = q.service ? [q.service] : (await monitor.store.listServices()).map((s) => s.service);
          return { services: await Promise.all(names.map((s) => monitor.getAvailability(s))) };
        },
      },
      alerts: {
        subject: subject('alerts'),
        schema: alertsRequest,
        handler: async (q) =>
          json({
            alerts: await monitor.listAlerts({
              ...(q.state ? { state: q.state } : {}),
              ...(q.severity ? { severity: q.severity } : {}),
            }),
          }),
      },
      resolve_alert: {
        subject: subject('resolve_alert'),
        schema: resolveAlertRequest,
        handler: (q, ctx) =>
          withCommandScope({ correlationId: ctx.correlationId }, async () =>
            json({ alert: await monitor.resolveAlert(q.id, q.actor, q.reason) }),
          ),
      },
      silences: {
        subject: subject('silences'),
        schema: silencesRequest,
        handler: async () => ({ silences: await monitor.listSilences() }),
      },
      add_silence: {
        subject: subject('add_silence'),
        schema: addSilenceRequest,
        handler: (q, ctx) =>
          withCommandScope({ correlationId: ctx.correlationId }, async () => ({
            silence: await monitor.addSilence(q),
          })),
      },
      remove_silence: {
        subject: subject('remove_silence'),
        schema: removeSilenceRequest,
        handler: (q, ctx) =>
          withCommandScope({ correlationId: ctx.correlationId }, async () => {
            await monitor.expireSilence(q.id, q.actor);
            return { silence_id: q.id, expired: true as const };
          }),
      },
      rules: {
        subject: subject('rules'),
        schema: rulesRequest,
        handler: () => ({ rules: rules.list().map((r) => ({ ...r.rule, source: r.source })) }),
      },
      put_rules: {
        subject: subject('put_rules'),
        schema: putRulesRequest,
        handler: (q, ctx) =>
          withCommandScope({ correlationId: ctx.correlationId }, async () => ({
            rules: (await rules.put(monitor, q.rules, q.actor)).map((r) => ({ ...r.rule, source: r.source })),
          })),
      },
      delete_rule: {
        subject: subject('delete_rule'),
        schema: deleteRuleRequest,
        handler: (q, ctx) =>
          withCommandScope({ correlationId: ctx.correlationId }, async () => ({
            deleted: q.id,
            resolvedAlerts: await rules.delete(monitor, q.id, q.actor),
          })),
      },
      metrics: {
        subject: subject('metrics'),
        schema: metricsRequest,
        handler: async () => ({ contentType: monitor.prometheus.contentType, text: await monitor.renderPrometheus() }),
      },
    },
  });
}
