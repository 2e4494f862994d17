import { createHash } from 'node:crypto';

/**
 * The task id for a submission with an idempotency key: the same key always names the same
 * task, so a repeated submission finds it, and whoever knows the key (the workflow engine, for
 * a step it dispatched) can ask about or cancel that task without being told its id.
 */
export const taskIdForIdempotencyKey = (key: string): string =>
  createHash('sha256').update(`task:${key}`).digest('hex').slice(0, 32);
