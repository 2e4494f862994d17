import { createHash } from 'node:crypto';

/** Actor recorded in the events of executions started from `automation.triggers` rows. */
export const AUTOMATION_TRIGGER_ACTOR = 'automation:trigger';

/**
 * The execution id a workflow trigger starts, derived from the trigger id alone (a UUID built
 * from sha256). The automation server answers it when the trigger is recorded, and the engine's
 * starter appends StartWorkflow to exactly this stream with `no_stream` expected: a starter that
 * crashed after the append and before marking the row cannot start the workflow a second time.
 */
export function triggerExecutionId(triggerId: string): string {
  const h = createHash('sha256').update(`automation-trigger:${triggerId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
