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
  MONITOR_SERVICE_NAME,
  monitorSubject,
  resolveAlertReply,
  rulesReply,
  silencesReply,
  trendsReply,
  type MonitorEndpoint,
} from '@switchyard/contracts';
import { instanceSubject, liveInstances, request } from '@switchyard/messaging';
import { AppError } from '@switchyard/platform';
import { NATS_CONNECTION } from '../../tokens.js';

/** Options of the system feature (`SystemFeatureModule.forRoot`). */
export interface SystemFeatureOptions {
  /** NATS service name of the monitor (default `monitor`; tests run their own). */
  readonly serviceName?: string;
  /** How long to wait for the monitor (default 5 s). */
  readonly timeoutMs?: number;
  /** How long a read waits on the shared subject before it asks the live instances by name (default half of timeoutMs, at most 2.5 s). */
  readonly firstTryMs?: number;
}

/** Reads: asking them twice changes nothing, so one that went to a stopped instance may be asked again elsewhere. */
const READS: ReadonlySet<MonitorEndpoint> = new Set([
  'health_report',
  'trends',
  'availability',
  'alerts',
  'silences',
  'rules',
  'metrics',
]);
/** How long an instance that answered when the shared subject did not is asked first. */
const PREFER_MS = 30_000;
/** How long the live instances have to answer `$SRV.PING`. */
const PING_WAIT_MS = 300;
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
 *
 * A monitor process stopped while it was active (SIGSTOP, a paused VM) stays subscribed: NATS
 * keeps handing it every other request after the standby took over, and those reads would wait
 * the whole timeout and answer 503. So a read not answered within `firstTryMs` asks the instances
 * that answer `$SRV.PING` (a stopped one does not) on their own subjects, and the one that answers
 * is asked first for the next 30 s. Writes are not asked twice: one may yet run on the stopped
 * instance when it wakes.
 */
@Injectable()
export class SystemMonitorClient {
  private readonly serviceName: string | undefined;
  private readonly timeoutMs: number;
  private readonly firstTryMs: number;
  private preferred: { readonly id: string; readonly until: number } | undefined;

  constructor(
    @Inject(NATS_CONNECTION) private readonly nats: NatsConnection,
    @Optional() @Inject(SYSTEM_FEATURE_OPTIONS) options?: SystemFeatureOptions,
  ) {
    this.serviceName = options?.serviceName;
    this.timeoutMs = options?.timeoutMs ?? 5_000;
    this.firstTryMs = options?.firstTryMs ?? Math.min(2_500, Math.floor(this.timeoutMs / 2));
  }

  async call<E extends MonitorEndpoint>(endpoint: E, payload: unknown, correlationId: string): Promise<Reply<E>> {
    const subject = monitorSubject(endpoint, this.serviceName);
    const ask = (to: string, timeoutMs: number) =>
      request<Reply<E>>(this.nats, to, payload, {
        schema: replies[endpoint] as unknown as z.ZodType<Reply<E>>,
        timeoutMs: Math.max(1, timeoutMs),
        correlationId,
      });
    try {
      return READS.has(endpoint) ? await this.read(subject, ask) : await ask(subject, this.timeoutMs);
    } catch (err) {
      // No monitor listening, or one too busy to answer in time: either way it is unavailable.
      if (err instanceof AppError && (err.code === 'timeout' || err.code === 'unavailable')) {
        throw new AppError('unavailable', 'the monitor did not answer', { subject, cause: err.message });
      }
      throw err;
    }
  }
  /** A read: the shared subject, then (no answer) the live instances by their own subjects. */
  private async read<T>(subject: string, ask: (to: string, timeoutMs: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    const left = () => deadline - Date.now();
    const p = this.preferred;
    if (p && p.until > Date.now()) {
      try {
        return await ask(instanceSubject(subject, p.id), Math.min(this.firstTryMs, left()));
      } catch (err) {
        if (!isNoAnswer(err)) throw err;
        this.preferred = undefined;
      }
    }
    try {
      return await ask(subject, Math.min(this.firstTryMs, left()));
    } catch (err) {
      if (!isNoAnswer(err) || left() <= PING_WAIT_MS) throw err;
    }
    const live = await liveInstances(this.nats, this.serviceName ?? MONITOR_SERVICE_NAME, PING_WAIT_MS);
    if (live.length === 0) throw new AppError('timeout', 'no monitor instance answered', {}, true);
    // Normally one is active; several (a takeover under way) are asked at once, the first answer wins.
    try {
      const { id, reply } = await Promise.any(
        live.map((id) => ask(instanceSubject(subject, id), left()).then((reply) => ({ id, reply }))),
      );
      this.preferred = { id, until: Date.now() + PREFER_MS };
      return reply;
    } catch (err) {
      throw err instanceof AggregateError ? (err.errors[0] as Error) : err;
    }
  }
}

const isNoAnswer = (err: unknown): boolean =>
  err instanceof AppError && (err.code === 'timeout' || err.code === 'unavailable');
