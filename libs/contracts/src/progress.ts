import { z } from 'zod';

/**
 * A worker's notice about a call it was sent with a `progress_subject`: the call waits for a slot
 * (`queued`), has left the queue and runs (`started`), or still runs (`running`, the heartbeat of
 * a call that runs). A caller that times the call (the workflow engine) starts the clock of the
 * call's own work at `started`; `running` changes nothing but tells it the worker is alive. A
 * call that runs at once sends no `started` (it started when it arrived).
 */
export const callProgressSchema = z.object({
  idempotency_key: z.string().min(1).max(200),
  state: z.enum(['queued', 'started', 'running']),
  at: z.iso.datetime(),
});
export type CallProgress = z.infer<typeof callProgressSchema>;

/**
 * While a worker holds a call, queued or running, it tells the caller this often (`queued` again,
 * or `running`). A worker that dies takes its calls with it, and nobody would tell the caller, who
 * would wait out the whole queue budget (minutes for an agent) or the step's whole timeout.
 */
export const CALL_HEARTBEAT_MS = 2_000;
/**
 * A caller that heard nothing of a call for this long (since it sent it, or since the last
 * notice) sends the same call again under the same idempotency key, if the call is still wanted
 * (its attempt not ended, its execution not canceled), well within a step's usual 15 s timeout: a live worker joins the call
 * it already holds (nothing runs twice), a worker started in the dead one's place takes it up, and
 * with no worker at all the caller gets its usual `unavailable`. Three heartbeats, so one lost
 * notice is not enough to re-send.
 */
export const CALL_SILENCE_MS = 3 * CALL_HEARTBEAT_MS;

/**
 * A subject a caller names for its notices: one of its inboxes (`_INBOX.` and plain tokens, no
 * wildcards). A worker publishes there with its own rights, so a caller must not be able to point
 * it at a service subject it may not publish to itself.
 */
export const progressSubjectSchema = z
  .string()
  .max(200)
  .regex(/^_INBOX(\.[A-Za-z0-9_-]+)+$/, 'must be an inbox: _INBOX.<token>[.<token>...]');
