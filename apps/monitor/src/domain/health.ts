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
 * A service listed but not runnable as configured (an MCP server without its credentials) is
 * `unconfigured`: it is not probed, and that is no outage (see MarkUnconfigured).
 */
export const healthPolicySchema = z.object({
  degradedResponseMs: z.number().int().positive().default(1_000),
  downAfterMs: z.number().int().min(0).default(10_000),
});
export type HealthPolicy = z.infer<typeof healthPolicySchema>;
export const defaultHealthPolicy: HealthPolicy = { degradedResponseMs: 1_000, downAfterMs: 10_000 };

export type ServiceStatus = 'unknown' | 'up' | 'degraded' | 'down' | 'unconfigured';
export type DegradedReason = 'slow' | 'failing';
/** How a time the monitor did not run counts in availability (see MarkUnmonitored). */
export type GapVerdict = 'down' | 'unknown';

export type ServiceHealth =
  | { readonly status: 'unknown' }
  | { readonly status: 'up'; readonly since: number }
  | {
      readonly status: 'degraded';
      readonly since: number;
      readonly reason: DegradedReason;
      readonly failingSince: number | null;
    }
  | { readonly status: 'down'; readonly since: number; readonly failingSince: number }
  | { readonly status: 'unconfigured'; readonly since: number; readonly reason: string };

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
/**
 * The monitor was not running from `from` (the service's last probe before it stopped) to `to`
 * (its start): nothing was probed in between, so that time is no evidence of `up`. `countsAs` is
 * what availability makes of it: `down` for a service that shares the monitor's process (the
 * launcher's own units, the gateway in it, the embedded PostgreSQL and NATS: the monitor not
 * running means they were not either), `unknown` (left out of the denominator) for one that may
 * have run on without it (an external database, MCP servers and agents in other processes).
 */
export type MarkUnmonitored = {
  readonly type: 'MarkUnmonitored';
  readonly data: { service: string; kind?: string; from: number; to: number; countsAs: GapVerdict };
  readonly metadata: Meta;
};
/** The service is no longer probed (an agent instance whose process ended): it leaves the report. */
export type RetireService = {
  readonly type: 'RetireService';
  readonly data: { service: string; kind?: string; lastProbeAt: number | null; reason: string };
  readonly metadata: Meta;
};
/**
 * The service is listed but cannot run as configured (`reason`: what is missing, e.g. a credential
 * not set): nothing probes it, and it counts neither as down nor as up (left out of the verdict,
 * the alerts and availability). Its first probe once configured decides its status as usual.
 */
export type MarkUnconfigured = {
  readonly type: 'MarkUnconfigured';
  readonly data: { service: string; kind?: string; reason: string };
  readonly metadata: Meta;
};
export type HealthCommand = RecordProbeResult | MarkUnmonitored | RetireService | MarkUnconfigured;

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
/**
 * The service is up: after being degraded or down, for the first time (`previous: 'unknown'`), or
 * restated after the wall clock stepped back behind its `up since` (`previous: 'up'`, see decideHealth).
 */
export type ServiceRecovered = { readonly type: 'ServiceRecovered'; readonly data: Base; readonly metadata: Meta };
/**
 * The schemas of the two events that are not a probe's verdict. A replay parses their data, so a
 * stored event of another shape fails the projection loudly instead of writing a wrong interval.
 */
const previousStatusSchema = z.enum(['unknown', 'up', 'degraded', 'down', 'unconfigured']);
export const serviceUnmonitoredDataSchema = z.object({
  service: z.string().min(1),
  kind: z.string().optional(),
  previous: previousStatusSchema,
  /** The service's last probe of the run that ended (epoch ms): its history as probed stops there. */
  from: z.number().int(),
  /** When the monitor started again (epoch ms). */
  to: z.number().int(),
  countsAs: z.enum(['down', 'unknown']),
});
export const serviceRetiredDataSchema = z.object({
  service: z.string().min(1),
  kind: z.string().optional(),
  previous: previousStatusSchema,
  /** Its last probe (epoch ms; null when it never had one): its availability history ends there. */
  lastProbeAt: z.number().int().nullable(),
  reason: z.string(),
});
export const serviceUnconfiguredDataSchema = z.object({
  service: z.string().min(1),
  kind: z.string().optional(),
  previous: previousStatusSchema,
  /** What keeps it from running, as its owner says (e.g. which credential is not set). */
  reason: z.string(),
});
/** From `from` to the service's next verdict the monitor has no evidence of it (MarkUnmonitored). */
export type ServiceUnmonitored = {
  readonly type: 'ServiceUnmonitored';
  readonly data: z.infer<typeof serviceUnmonitoredDataSchema>;
  readonly metadata: Meta;
};
/** The service is no longer probed: it leaves the services read model, its intervals stop at its last probe. */
export type ServiceRetired = {
  readonly type: 'ServiceRetired';
  readonly data: z.infer<typeof serviceRetiredDataSchema>;
  readonly metadata: Meta;
};
/** The service is listed but not runnable as configured: not probed, no outage (MarkUnconfigured). */
export type ServiceUnconfigured = {
  readonly type: 'ServiceUnconfigured';
  readonly data: z.infer<typeof serviceUnconfiguredDataSchema>;
  readonly metadata: Meta;
};
export type HealthEvent =
  ServiceWentDown | ServiceDegraded | ServiceRecovered | ServiceUnmonitored | ServiceRetired | ServiceUnconfigured;

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
      // The wall clock stepped back behind the current verdict (decided while it was ahead): its
      // interval starts after this probe, so no probe from now on would count towards it. The
      // verdict is restated at this probe (an event with `previous` equal to its status): the
      // interval stamped ahead gives way to one from now, and a failing run counts from this probe.
      const stale = verdictStart(state) > at;
      if (result.ok) {
        if (result.responseMs >= policy.degradedResponseMs) {
          if (!stale && state.status === 'degraded' && state.reason === 'slow') return [];
          return [
            {
              type: 'ServiceDegraded',
              data: { ...base, reason: 'slow', failingSince: null },
              metadata: command.metadata,
            },
          ];
        }
        if (!stale && state.status === 'up') return [];
        return [{ type: 'ServiceRecovered', data: base, metadata: command.metadata }];
      }
      // failed probe
      const sentAt = Math.min(command.data.sentAt ?? at, at);
      if (state.status === 'down')
        return stale
          ? [{ type: 'ServiceWentDown', data: { ...base, failingSince: sentAt }, metadata: command.metadata }]
          : [];
      const failingSince =
        !stale && state.status === 'degraded' && state.failingSince !== null ? state.failingSince : sentAt;
      if (at - failingSince >= policy.downAfterMs) {
        return [{ type: 'ServiceWentDown', data: { ...base, failingSince }, metadata: command.metadata }];
      }
      if (!stale && state.status === 'degraded' && state.reason === 'failing') return [];
      return [
        { type: 'ServiceDegraded', data: { ...base, reason: 'failing', failingSince }, metadata: command.metadata },
      ];
    }
    case 'MarkUnmonitored': {
      const { service, kind, from, to, countsAs } = command.data;
      // Never probed, already without evidence since an earlier gap, or not probed at all
      // (unconfigured): nothing is claimed to end.
      if (state.status === 'unknown' || state.status === 'unconfigured' || from >= to) return [];
      return [
        {
          type: 'ServiceUnmonitored',
          data: { service, ...(kind !== undefined ? { kind } : {}), previous: state.status, from, to, countsAs },
          metadata: command.metadata,
        },
      ];
    }
    case 'RetireService': {
      const { service, kind, lastProbeAt, reason } = command.data;
      return [
        {
          type: 'ServiceRetired',
          data: { service, ...(kind !== undefined ? { kind } : {}), previous: state.status, lastProbeAt, reason },
          metadata: command.metadata,
        },
      ];
    }
    case 'MarkUnconfigured': {
      const { service, kind, reason } = command.data;
      if (state.status === 'unconfigured' && state.reason === reason) return [];
      return [
        {
          type: 'ServiceUnconfigured',
          data: { service, ...(kind !== undefined ? { kind } : {}), previous: state.status, reason },
          metadata: command.metadata,
        },
      ];
    }
    default: {
      const never: never = command;
      throw new Error(`unknown command ${String((never as { type: string }).type)}`);
    }
  }
}

/**
 * Where the interval of the current verdict starts (as intervalStart places it: a failing run's at
 * its first failed probe); -Infinity without a verdict.
 */
export function verdictStart(state: ServiceHealth): number {
  if (state.status === 'unknown') return -Infinity;
  if (state.status === 'up' || state.status === 'unconfigured' || state.failingSince === null) return state.since;
  return Math.min(state.failingSince, state.since);
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
    case 'ServiceUnconfigured':
      return { status: 'unconfigured', since: at, reason: event.data.reason };
    // Without evidence until the next probe, whose verdict is then a new one (`up since` restarts).
    case 'ServiceUnmonitored':
    case 'ServiceRetired':
      return initialServiceHealth;
    default: {
      const never: never = event;
      void state;
      throw new Error(`unknown event ${(never as { type: string }).type}`);
    }
  }
}
