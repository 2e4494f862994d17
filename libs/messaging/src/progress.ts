import type { NatsConnection } from '@nats-io/nats-core';
import { CALL_HEARTBEAT_MS, type CallProgress } from '@switchyard/contracts';

/** What a worker holds for one call whose caller follows it (see callProgressSchema). */
export interface CallProgressNotifier {
  /** The call's state now (`queued`, `started`): published when it changes. */
  tell(state: 'queued' | 'started'): void;
  /** The call is over (answered or failed): no more notices. */
  close(): void;
}

/**
 * Notices of a keyed call to the subject its caller named, from the moment the worker got it:
 * each change of state, and every heartbeat while it holds the call (`queued` again while it
 * waits, `running` once it runs), so the caller can tell a worker that died with the call from a
 * long one. Fire and forget: a lost notice only leaves the caller's older deadline, and a caller
 * that hears nothing for CALL_SILENCE_MS sends the call again. `firstOnly`: the caller listens for
 * one notice (it closed its subscription after it), so there is no heartbeat.
 */
export function callProgressNotifier(
  nc: NatsConnection,
  subject: string,
  idempotencyKey: string,
  heartbeatMs = CALL_HEARTBEAT_MS,
  firstOnly = false,
): CallProgressNotifier {
  let last: 'queued' | 'started' | undefined;
  let closed = false;
  const publish = (state: CallProgress['state']) => {
    const notice: CallProgress = { idempotency_key: idempotencyKey, state, at: new Date().toISOString() };
    try {
      nc.publish(subject, JSON.stringify(notice));
    } catch {
      // The connection is closing: the caller's deadline covers the lost notice.
    }
  };
  const heartbeat = firstOnly
    ? undefined
    : setInterval(() => {
        if (!closed) publish(last === 'queued' ? 'queued' : 'running');
      }, heartbeatMs);
  heartbeat?.unref();
  return {
    tell(state) {
      if (closed || state === last) return;
      last = state;
      publish(state);
      if (firstOnly) closed = true;
    },
    close() {
      closed = true;
      if (heartbeat) clearInterval(heartbeat);
    },
  };
}
