/**
 * The thread of definition-checks.ts: checks one workflow definition at a time against the
 * catalog it is given, and answers the whole verdict (the normalised definition, or every problem).
 */
import { parentPort } from 'node:worker_threads';
import { z } from 'zod';
import { configureWorkflowLimits, validateDefinition } from '@switchyard/domain';

const port = parentPort;
if (!port) throw new Error('definition-check.worker runs only as a worker thread');
const jobSchema = z.object({
  id: z.number().int(),
  definition: z.unknown(),
  catalog: z.object({
    servers: z.array(z.object({ name: z.string(), tools: z.array(z.string()).optional() })),
    taskTypes: z.array(z.string()),
    definitions: z.array(z.string()),
  }),
  /** The limits of the asking process (WORKFLOW_MAX_*), which the thread does not read itself. */
  limits: z.record(z.string(), z.number()),
});
port.on('message', (raw: unknown) => {
  const job = jobSchema.safeParse(raw);
  if (!job.success) return;
  const { id, definition, catalog, limits } = job.data;
  try {
    configureWorkflowLimits(limits);
    port.postMessage({ id, ok: true, validation: validateDefinition(definition, catalog) });
  } catch (e) {
    // A check that throws (a bug on some input) is that definition's answer, not the thread's end.
    port.postMessage({ id, ok: false, message: e instanceof Error ? e.message : String(e) });
  }
});
port.postMessage({ ready: true });
