import { z } from 'zod';

/**
 * Service health as a decider: probe results move a service between up, degraded and down,
 * and an event is produced only when the status (or the reason of a degradation) changes.
 * - a successful probe slower than `degradedResponseMs` -> degraded (reason `slow`)
 * - a failed probe -> degraded (reason `failing`) and, once failures have lasted
 *   `downAfterMs` without a success, down. With `downAfterMs` 0 the first failure is down.
 * A failure dates from when its probe was sent (`sentAt`), not from when the monitor learnt of
 * it: a probe that timed out after 15 s got no answer from the moment it went out, so
 * `failingSince` is the first failed probe's `sentAt`, and the time to `down` counts from it.
 */
export const healthPolicySchema = z.object({
  degradedResponseMs: z.number().int().positive().default(1_000),
  downAfterMs: z.number().int().min(0).default(10_000),
});
export type HealthPolicy = z.infer<typeof healthPolicySchema>;
export const defaultHealthPolicy: HealthPolicy = { degradedResponseMs: 1_000, downAfterMs: 10_000 };

export type ServiceStatus = 'unknown' | 'up' | 'degraded' | 'down';
export type DegradedReason = 'slow' | 'failing';

export type ServiceHealth =
  | { readonly status: 'unknown' }
  | { readonly status: 'up'; readonly since: number }
  | {
      readonly status: 'degraded';
      readonly since: number;
      readonly reason: DegradedReason;
      readonly failingSince: number | null;
    }
  | { readonly status: 'down'; readonly since: number; readonly failingSince: number };

export const initialServiceHealth: ServiceHealth = { status: 'unknown' };

type Meta = { readonly at: number; readonly correlationId?: string };

export interface ProbeOutcome {
  readonly ok: boolean;
  readonly responseMs: number;
  readonly error?: string;
}
/**
 * `kind` (mcp, agent, ...) rides on the events, so the services read model can be rebuilt from them.
 * `sentAt`: when the probe was sent (epoch ms; `metadata.at` is when its outcome was known, and
 * stands in for it when absent).
 */
export type RecordProbeResult = {
  readonly type: 'RecordProbeResult';
  readonly data: { service: string; kind?: string; result: ProbeOutcome; policy: HealthPolicy; sentAt?: number };
  readonly metadata: Meta;
};
export type HealthCommand = RecordProbeResult;

type Base = { service: string; kind?: string; previous: ServiceStatus; responseMs: number; error: string | null };
export type ServiceWentDown = {
  readonly type: 'ServiceWentDown';
  readonly data: Base & { failingSince: number };
  readonly metadata: Meta;
};
export type ServiceDegraded = {
  readonly type: 'ServiceDegraded';
  readonly data: Base & { reason: DegradedReason; failingSince: number | null };
  readonly metadata: Meta;
};
/** The service is up: after being degraded or down, or for the first time (`previous: 'unknown'`). */
export type ServiceRecovered = { readonly type: 'ServiceRecovered'; readonly data: Base; readonly metadata: Meta };
export type HealthEvent = ServiceWentDown | ServiceDegraded | ServiceRecovered;

export function decideHealth(command: HealthCommand, state: ServiceHealth): HealthEvent[] {
  switch (command.type) {
    case 'RecordProbeResult': {
      const { service, kind, result, policy } = command.data;
      const at = command.metadata.at;
      const base: Base = {
        service,
        ...(kind !== undefined ? { kind } : {}),
        previous: state.status,
        responseMs: result.responseMs,
        error: result.error ?? null,
      };
      if (result.ok) {
        if (result.responseMs >= policy.degradedResponseMs) {
          if (state.status === 'degraded' && state.reason === 'slow') return [];
          return [
            {
              type: 'ServiceDegraded',
              data: { ...base, reason: 'slow', failingSince: null },
              metadata: command.metadata,
            },
          ];
        }
        if (state.status === 'up') return [];
        return [{ type: 'ServiceRecovered', data: base, metadata: command.metadata }];
      }
      // failed probe
      if (state.status === 'down') return [];
      const sentAt = Math.min(command.data.sentAt ?? at, at);
      const failingSince = state.status === 'degraded' && state.failingSince !== null ? state.failingSince : sentAt;
      if (at - failingSince >= policy.downAfterMs) {
        return [{ type: 'ServiceWentDown', data: { ...base, failingSince }, metadata: command.metadata }];
      }
      if (state.status === 'degraded' && state.reason === 'failing') return [];
      return [
        { type: 'ServiceDegraded', data: { ...base, reason: 'failing', failingSince }, metadata: command.metadata },
      ];
    }
    default: {
      const never: never = command.type;
      throw new Error(`unknown command ${String(never)}`);
    }
  }
}

export function evolveHealth(state: ServiceHealth, event: HealthEvent): ServiceHealth {
  const at = event.metadata.at;
  switch (event.type) {
    case 'ServiceWentDown':
      return { status: 'down', since: at, failingSince: event.data.failingSince };
    case 'ServiceDegraded':
      return { status: 'degraded', since: at, reason: event.data.reason, failingSince: event.data.failingSince };
    case 'ServiceRecovered':
      return { status: 'up', since: at };
    default: {
      const never: never = event;
      void state;
      throw new Error(`unknown event ${(never as { type: string }).type}`);
    }
  }
}
