import type { EventMetadata, RecordedEvent } from '@switchyard/event-store';
import type { AlertingEvent } from './domain/alerts.js';
import {
  serviceRetiredDataSchema,
  serviceUnconfiguredDataSchema,
  serviceUnmonitoredDataSchema,
  type HealthEvent,
} from './domain/health.js';

/** Events the Monitor decides: appended to the event store, then handed to `publish`. */
export type MonitorEvent = AlertingEvent | HealthEvent;

/** The actor of everything the monitor decides by itself. */
export const MONITOR_ACTOR = 'system:monitor';

export const alertingEventTypes: readonly AlertingEvent['type'][] = [
  'AlertPending',
  'AlertFiring',
  'AlertPendingCleared',
  'AlertResolved',
  'AlertSilenced',
  'AlertUnsilenced',
  'SilenceAdded',
  'SilenceExpired',
];
export const alertEventTypes: readonly AlertingEvent['type'][] = [
  'AlertPending',
  'AlertFiring',
  'AlertPendingCleared',
  'AlertResolved',
  'AlertSilenced',
  'AlertUnsilenced',
];
export const silenceEventTypes: readonly AlertingEvent['type'][] = ['SilenceAdded', 'SilenceExpired'];
export const healthEventTypes: readonly HealthEvent['type'][] = [
  'ServiceWentDown',
  'ServiceDegraded',
  'ServiceRecovered',
  'ServiceUnmonitored',
  'ServiceRetired',
  'ServiceUnconfigured',
];

/** Stream of an event: `alert-<fingerprint>`, `silence-<id>` or `service-<name>`. */
export function streamOf(e: MonitorEvent): string {
  switch (e.type) {
    case 'SilenceAdded':
      return `silence-${e.data.silence.id}`;
    case 'SilenceExpired':
      return `silence-${e.data.silenceId}`;
    case 'ServiceWentDown':
    case 'ServiceDegraded':
    case 'ServiceRecovered':
    case 'ServiceUnmonitored':
    case 'ServiceRetired':
    case 'ServiceUnconfigured':
      return `service-${e.data.service}`;
    default:
      return `alert-${e.data.fingerprint}`;
  }
}

/** The person behind a manual resolve or a silence; the monitor itself otherwise. */
export function actorOf(e: MonitorEvent): string {
  switch (e.type) {
    case 'AlertResolved':
      return e.data.how === 'manual' && e.data.actor ? e.data.actor : MONITOR_ACTOR;
    case 'SilenceAdded':
      return e.data.silence.createdBy;
    // The Monitor's maintenance expires due silences as `monitor`.
    case 'SilenceExpired':
      return e.data.actor === 'monitor' ? MONITOR_ACTOR : e.data.actor;
    default:
      return MONITOR_ACTOR;
  }
}

/** Where an appended event landed (revision and position are null when the append failed). */
export interface MonitorEventRecord {
  readonly id: string;
  readonly streamId: string;
  readonly metadata: EventMetadata;
  readonly revision: number | null;
  readonly position: number | null;
}

/**
 * A stored event back as the deciders' value: `at` (epoch ms) comes from the metadata's
 * `timestamp`, which the Monitor writes from the command's `at`, so the fold is exact.
 */
export function monitorEventOf<
  E extends { type: string; data: unknown; metadata: { at: number; correlationId?: string } },
>(r: RecordedEvent): E {
  return {
    type: r.type,
    data: r.data,
    metadata: { at: Date.parse(r.metadata.timestamp), correlationId: r.metadata.correlationId },
  } as E;
}

/** A stored health event back as the decider's value; the data of the gap, retirement and unconfigured events is parsed. */
export function healthEventOf(r: RecordedEvent): HealthEvent {
  const e = monitorEventOf<HealthEvent>(r);
  if (e.type === 'ServiceUnmonitored') return { ...e, data: serviceUnmonitoredDataSchema.parse(e.data) };
  if (e.type === 'ServiceRetired') return { ...e, data: serviceRetiredDataSchema.parse(e.data) };
  if (e.type === 'ServiceUnconfigured') return { ...e, data: serviceUnconfiguredDataSchema.parse(e.data) };
  return e;
}
