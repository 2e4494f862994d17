import type { NatsConnection } from '@nats-io/nats-core';
import { CALL_QUEUED_HEARTBEAT_MS, type CallProgress } from '@switchyard/contracts';

/** What a worker holds for one call whose caller follows it (see callProgressSchema). */
export interface CallProgressNotifier {
  /** The call's state now: published when it changes; `queued` is repeated every heartbeat until it changes. */
  tell(state: CallProgress['state']): void;
  /** The call is over (answered or failed): no more notices. */
  close(): void;
}

/**
 * Notices of a keyed call to the subject its caller named. Fire and forget: a lost one only leaves
 * the caller's older deadline, and a caller that hears nothing for CALL_QUEUED_SILENCE_MS after
 * `queued` sends the call again (the worker may have died with its queue).
 */
export function callProgressNotifier(
  nc: NatsConnection,
  subject: string,
  idempotencyKey: string,
  heartbeatMs = CALL_QUEUED_HEARTBEAT_MS,
  firstOnly = false,
): CallProgressNotifier {
  let last: CallProgress['state'] | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let closed = false;
  const publish = (state: CallProgress['state']) => {
    const notice: CallProgress = { idempotency_key: idempotencyKey, state, at: new Date().toISOString() };
    try {
      nc.publish(subject, JSON.stringify(notice));
    } catch {
      // The connection is closing: the caller's deadline covers the lost notice.
    }
  };
  const stopHeartbeat = () => {
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = undefined;
  };
  return {
    tell(state) {
      if (closed || state === last) return;
      last = state;
      publish(state);
      stopHeartbeat();
      // The caller listens for one notice only (it closed its subscription): nothing more to send it.
      if (firstOnly) closed = true;
      else if (state === 'queued') {
        heartbeat = setInterval(() => publish('queued'), heartbeatMs);
        heartbeat.unref();
      }
    },
    close() {
      closed = true;
      stopHeartbeat();
    },
  };
}
