import { Controller, Delete, Get, HttpCode, Inject, Optional, Post, Put, Req, Res } from '@nestjs/common';
import type { EdgeReply as Response, EdgeRequest as Request } from '../../http/edge.js';
import type { z } from 'zod';
import {
  addSilenceReply,
  removeSilenceReply,
  alertsReply,
  availabilityReply,
  deleteRuleReply,
  healthReportReply,
  resolveAlertReply,
  rulesReply,
  silencesReply,
  trendsReply,
} from '@switchyard/contracts';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { Logger } from '@switchyard/platform';
import { Actor, CorrelationId } from '../../http/context.js';
import { gatewayHttpMetricsOf } from '../../http/metrics.js';
import { LOGGER } from '../../tokens.js';
import { ZodBody, ZodParams, ZodQuery } from '../../http/validation.js';
import { ApiRoute } from '../../openapi/registry.js';
import {
  alertIdParams,
  silenceIdParams,
  alertsQuery,
  availabilityQuery,
  deleteRuleQuery,
  putRulesBody,
  resolveBody,
  silenceBody,
  trendsQuery,
} from './schemas.js';
import { AddAlertSilence, DeleteAlertRule, RemoveAlertSilence, PutAlertRules, ResolveAlert } from './commands/index.js';
import {
  GetAvailability,
  GetHealthReport,
  GetMonitorMetrics,
  GetPerformanceTrends,
  ListAlertRules,
  ListAlerts,
  ListAlertSilences,
} from './queries/index.js';

export const SYSTEM_PATH = 'api/v1/system';
const tags = ['system'];

/** The seed's monitoring endpoints, answered by the monitor over NATS. */
@Controller(SYSTEM_PATH)
export class SystemController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(QueryBus) private readonly queries: QueryBus,
  ) {}

  @Get('health-report')
  @ApiRoute({
    summary: 'Overall health (healthy / degraded / unhealthy) with reasons, current metrics and every service',
    tags,
    role: 'viewer',
    response: { status: 200, schema: healthReportReply },
    errors: [503],
  })
  healthReport(@CorrelationId() correlationId: string) {
    return this.queries.execute(new GetHealthReport(correlationId));
  }

  @Get('performance-trends')
  @ApiRoute({
    summary: 'Buckets (avg, p95, max), slope, direction and projection of a metric over 1h / 24h / 7d',
    tags,
    role: 'viewer',
    response: { status: 200, schema: trendsReply },
    errors: [503],
  })
  trends(@ZodQuery(trendsQuery) q: z.infer<typeof trendsQuery>, @CorrelationId() correlationId: string) {
    return this.queries.execute(new GetPerformanceTrends(q.metric, q.window, q.labels, correlationId));
  }

  @Get('availability')
  @ApiRoute({
    summary: 'Uptime %, incidents, MTTR and SLA per service over 1h / 24h / 7d / 30d',
    tags,
    role: 'viewer',
    response: { status: 200, schema: availabilityReply },
    errors: [404, 503],
  })
  availability(
    @ZodQuery(availabilityQuery) q: z.infer<typeof availabilityQuery>,
    @CorrelationId() correlationId: string,
  ) {
    return this.queries.execute(new GetAvailability(q.service, correlationId));
  }

  @Get('alerts')
  @ApiRoute({
    summary: 'Alerts, firing first; filter by state and severity',
    tags,
    role: 'viewer',
    response: { status: 200, schema: alertsReply },
    errors: [503],
  })
  alerts(@ZodQuery(alertsQuery) q: z.infer<typeof alertsQuery>, @CorrelationId() correlationId: string) {
    return this.queries.execute(new ListAlerts(q, correlationId));
  }

  @Get('alerts/silences')
  @ApiRoute({
    summary: 'Active silences',
    tags,
    role: 'viewer',
    response: { status: 200, schema: silencesReply },
    errors: [503],
  })
  silences(@CorrelationId() correlationId: string) {
    return this.queries.execute(new ListAlertSilences(correlationId));
  }

  @Post('alerts/silences')
  @ApiRoute({
    summary: 'Silence alerts matching all matchers until ends_at (or for duration_ms)',
    description: 'At most 1,000 silences are in force at once: past it, 409 until one ends or is expired.',
    tags,
    role: 'operator',
    response: { status: 201, schema: addSilenceReply },
    errors: [409, 503],
  })
  addSilence(
    @ZodBody(silenceBody) b: z.infer<typeof silenceBody>,
    @Actor() actor: string,
    @CorrelationId() correlationId: string,
  ) {
    // Times given are kept; a start not given, and a duration, are the monitor's to fix by its own
    // clock, so a gateway whose clock is off does not move the silence.
    const window = {
      ...(b.starts_at ? { startsAt: Date.parse(b.starts_at) } : {}),
      ...(b.ends_at ? { endsAt: Date.parse(b.ends_at) } : { durationMs: b.duration_ms! }),
    };
    return this.commands.execute(new AddAlertSilence(b.matchers, b.comment, actor, window, correlationId));
  }

  @Delete('alerts/silences/:silence_id')
  @ApiRoute({
    summary:
      'End a silence now; alerts it held notify again unless another silence matches them (who ended it is recorded)',
    tags,
    role: 'operator',
    response: { status: 200, schema: removeSilenceReply },
    errors: [404, 503],
  })
  removeSilence(
    @ZodParams(silenceIdParams) p: z.infer<typeof silenceIdParams>,
    @Actor() actor: string,
    @CorrelationId() correlationId: string,
  ) {
    return this.commands.execute(new RemoveAlertSilence(p.silence_id, actor, correlationId));
  }

  @Post('alerts/:alert_id/resolve')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Resolve an alert by hand; records who (the caller) and why (`reason` optional, the body too)',
    tags,
    role: 'operator',
    response: { status: 200, schema: resolveAlertReply },
    errors: [404, 409, 503],
  })
  resolve(
    @ZodParams(alertIdParams) p: z.infer<typeof alertIdParams>,
    @ZodBody(resolveBody) b: z.infer<typeof resolveBody>,
    @Actor() actor: string,
    @CorrelationId() correlationId: string,
  ) {
    return this.commands.execute(new ResolveAlert(p.alert_id, actor, b.reason, correlationId));
  }

  @Get('alert-rules')
  @ApiRoute({
    summary: 'Alert rules in force, with where each comes from (default, file, env, api)',
    tags,
    role: 'admin',
    response: { status: 200, schema: rulesReply },
    errors: [503],
  })
  rules(@CorrelationId() correlationId: string) {
    return this.queries.execute(new ListAlertRules(correlationId));
  }

  @Put('alert-rules')
  @ApiRoute({
    summary: 'Add or replace alert rules by id (one rule, a list, or { rules }); persisted',
    tags,
    role: 'admin',
    response: { status: 200, schema: rulesReply },
    errors: [503],
  })
  putRules(
    @ZodBody(putRulesBody) b: z.infer<typeof putRulesBody>,
    @Actor() actor: string,
    @CorrelationId() correlationId: string,
  ) {
    const rules = Array.isArray(b) ? b : 'rules' in b ? b.rules : [b];
    return this.commands.execute(new PutAlertRules(rules, actor, correlationId));
  }

  @Delete('alert-rules')
  @ApiRoute({
    summary: 'Delete an alert rule (?id=); its active alerts are resolved',
    tags,
    role: 'admin',
    response: { status: 200, schema: deleteRuleReply },
    errors: [404, 503],
  })
  deleteRule(
    @ZodQuery(deleteRuleQuery) q: z.infer<typeof deleteRuleQuery>,
    @Actor() actor: string,
    @CorrelationId() correlationId: string,
  ) {
    return this.commands.execute(new DeleteAlertRule(q.id, actor, correlationId));
  }
}

/**
 * Prometheus scrape endpoint (text exposition format 0.0.4): the monitor's registry (machine,
 * probes, alerts, MCP/agent call metrics; over NATS), then this gateway process's own
 * (`switchyard_http_*`). Without an answer from the monitor the gateway's part is still
 * served (200) after a comment saying so: a scrape should not lose what this process knows.
 */
@Controller('metrics')
export class MetricsController {
  constructor(
    @Inject(QueryBus) private readonly queries: QueryBus,
    @Optional() @Inject(LOGGER) private readonly logger?: Logger,
  ) {}

  @Get()
  @ApiRoute({
    summary:
      'Prometheus metrics of the monitor, then of this gateway process (HTTP requests); monitor unavailable: the gateway part with a comment',
    tags,
    role: 'viewer',
    response: { status: 200, contentType: 'text/plain; version=0.0.4' },
  })
  async metrics(
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
    @CorrelationId() correlationId: string,
  ): Promise<string> {
    const own = gatewayHttpMetricsOf(req);
    let monitorText: string;
    try {
      monitorText = (await this.queries.execute(new GetMonitorMetrics(correlationId))).text;
    } catch (err) {
      this.logger?.warn({ err, correlationId }, 'monitor metrics unavailable; serving the gateway metrics only');
      const why = (err instanceof Error ? err.message : String(err)).replace(/[\r\n]+/g, ' ');
      monitorText = `# switchyard monitor metrics unavailable: ${why}\n`;
    }
    res.setHeader('content-type', own?.contentType ?? 'text/plain; version=0.0.4; charset=utf-8');
    if (!own) return monitorText;
    const sep = monitorText === '' || monitorText.endsWith('\n') ? '' : '\n';
    return `${monitorText}${sep}${await own.metrics()}`;
  }
}
