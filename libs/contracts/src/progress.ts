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

/** A subject a caller names for its notices: dot-separated plain tokens (no wildcards). */
export const progressSubjectSchema = z.string().max(200).regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/);
