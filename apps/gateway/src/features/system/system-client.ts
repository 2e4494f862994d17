import { Inject, Injectable, Optional } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { z } from 'zod';
import {
  addSilenceReply,
  removeSilenceReply,
  alertsReply,
  availabilityReply,
  deleteRuleReply,
  healthReportReply,
  metricsReply,
  monitorSubject,
  resolveAlertReply,
  rulesReply,
  silencesReply,
  trendsReply,
  type MonitorEndpoint,
} from '@switchyard/contracts';
import { request } from '@switchyard/messaging';
import { AppError } from '@switchyard/platform';
import { NATS_CONNECTION } from '../../tokens.js';

/** Options of the system feature (`SystemFeatureModule.forRoot`). */
export interface SystemFeatureOptions {
  /** NATS service name of the monitor (default `monitor`; tests run their own). */
  readonly serviceName?: string;
  /** How long to wait for the monitor (default 5 s). */
  readonly timeoutMs?: number;
}
export const SYSTEM_FEATURE_OPTIONS = Symbol.for('switchyard.gateway.systemFeatureOptions');

const replies = {
  health_report: healthReportReply,
  trends: trendsReply,
  availability: availabilityReply,
  alerts: alertsReply,
  resolve_alert: resolveAlertReply,
  silences: silencesReply,
  add_silence: addSilenceReply,
  remove_silence: removeSilenceReply,
  rules: rulesReply,
  put_rules: rulesReply,
  delete_rule: deleteRuleReply,
  metrics: metricsReply,
} as const satisfies Record<MonitorEndpoint, z.ZodType>;
export type Reply<E extends MonitorEndpoint> = z.infer<(typeof replies)[E]>;

/**
 * The gateway's side of the monitor service: every call is a NATS request to
 * `switchyard.svc.monitor.v1.<endpoint>`, answered by whichever monitor instance listens.
 * The monitor's own errors (404, 409, 400) pass through; no answer is 503.
 */
@Injectable()
export class SystemMonitorClient {
  private readonly serviceName: string | undefined;
  private readonly timeoutMs: number;

  constructor(
    @Inject(NATS_CONNECTION) private readonly nats: NatsConnection,
    @Optional() @Inject(SYSTEM_FEATURE_OPTIONS) options?: SystemFeatureOptions,
  ) {
    this.serviceName = options?.serviceName;
    this.timeoutMs = options?.timeoutMs ?? 5_000;
  }

  async call<E extends MonitorEndpoint>(endpoint: E, payload: unknown, correlationId: string): Promise<Reply<E>> {
    const subject = monitorSubject(endpoint, this.serviceName);
    try {
      return await request<Reply<E>>(this.nats, subject, payload, {
        schema: replies[endpoint] as unknown as z.ZodType<Reply<E>>,
        timeoutMs: this.timeoutMs,
        correlationId,
      });
    } catch (err) {
      // No monitor listening, or one too busy to answer in time: either way it is unavailable.
      if (err instanceof AppError && (err.code === 'timeout' || err.code === 'unavailable')) {
        throw new AppError('unavailable', 'the monitor did not answer', { subject, cause: err.message });
      }
      throw err;
    }
  }
}
