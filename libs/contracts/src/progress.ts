import { z } from 'zod';

/**
 * A worker's notice about a call it was sent with a `progress_subject`: the call waits for a slot
 * (`queued`), or has left the queue and runs (`started`). A caller that times the call (the
 * workflow engine) starts the clock of the call's own work at `started`. Only a call that had to
 * wait sends them: one that runs at once started when it arrived.
 */
export const callProgressSchema = z.object({
  idempotency_key: z.string().min(1).max(200),
  state: z.enum(['queued', 'started']),
  at: z.iso.datetime(),
});
export type CallProgress = z.infer<typeof callProgressSchema>;

/**
 * While a call waits in a worker's queue, the worker says `queued` again this often: its caller
 * then knows the worker still holds the call. A worker that dies takes its queue with it, and
 * nobody would tell the caller (who would wait out the whole queue budget, minutes for an agent).
 */
export const CALL_QUEUED_HEARTBEAT_MS = 5_000;
/**
 * A caller that heard `queued` and then nothing for this long sends the same call again under the
 * same idempotency key: a live worker joins the call it already holds (nothing runs twice), a
 * worker started in the dead one's place takes it up, and with no worker at all the caller gets
 * its usual `unavailable`. Three heartbeats, so one lost notice is not enough to re-send.
 */
export const CALL_QUEUED_SILENCE_MS = 3 * CALL_QUEUED_HEARTBEAT_MS;

/**
 * A subject a caller names for its notices: one of its inboxes (`_INBOX.` and plain tokens, no
 * wildcards). A worker publishes there with its own rights, so a caller must not be able to point
 * it at a service subject it may not publish to itself.
 */
export const progressSubjectSchema = z
  .string()
  .max(200)
  .regex(/^_INBOX(\.[A-Za-z0-9_-]+)+$/, 'must be an inbox: _INBOX.<token>[.<token>...]');
