import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { z } from 'zod';
import { workflowLimits, type DefinitionValidation, type ToolCatalog } from '@switchyard/domain';
import { AppError, ThreadJobs } from '@switchyard/platform';

/** Longest one definition's check may take; past it the thread is ended and a new one started. */
const CHECK_TIMEOUT_MS = 10_000;
/** Checks waiting for the thread; one more is refused at once (503). */
const MAX_QUEUED = 32;

const answerSchema = z.union([
  z.object({ id: z.number(), ok: z.literal(true), validation: z.custom<DefinitionValidation>((v) => !!v) }),
  z.object({ id: z.number(), ok: z.literal(false), message: z.string() }),
]);

/**
 * Checks of workflow definitions the gateway is sent (`POST /definitions/validate`, a viewer's
 * route, and an ad-hoc run's inline definition) on a thread of their own, one at a time: a
 * definition of 500 steps took half a second of the gateway's one thread, and fifty of them at
 * once held every other request (`/livez` 2 s). Past MAX_QUEUED waiting, a check is refused 503.
 */
@Injectable()
export class DefinitionChecks implements OnModuleDestroy {
  private readonly jobs = new ThreadJobs<DefinitionValidation>({
    script: new URL('./definition-check.worker.js', import.meta.url),
    name: 'definition-check',
    timeoutMs: CHECK_TIMEOUT_MS,
    maxQueued: MAX_QUEUED,
    answer: (raw) => {
      const a = answerSchema.safeParse(raw);
      if (!a.success) return undefined;
      return {
        id: a.data.id,
        outcome: a.data.ok
          ? { ok: true, value: a.data.validation }
          : {
              ok: false,
              error: new AppError('internal', `the definition check failed: ${a.data.message}`),
              endThread: false,
            },
      };
    },
    errors: {
      timedOut: () =>
        new AppError('validation', `the definition could not be checked within ${CHECK_TIMEOUT_MS} ms (too complex)`),
      threadEnded: (why) => new AppError('validation', `the definition could not be checked (${why})`),
      notStarted: (why) => new AppError('unavailable', `the definition checker did not start (${why})`, {}, true),
      full: () =>
        new AppError(
          'unavailable',
          `${MAX_QUEUED} definitions wait to be checked already; try again shortly`,
          { retry_after_ms: 1_000 },
          true,
        ),
      closed: () => new AppError('unavailable', 'the definition checker is closed', {}, true),
    },
  });

  /** The verdict on `definition` against `catalog`, as validateDefinition gives it. */
  check(definition: unknown, catalog: ToolCatalog): Promise<DefinitionValidation> {
    // The numbers only: a clock (a function) does not cross to a thread, and a check needs none.
    const limits = Object.fromEntries(Object.entries(workflowLimits()).filter(([, v]) => typeof v === 'number'));
    return this.jobs.run({ definition, catalog, limits });
  }

  onModuleDestroy(): Promise<void> {
    return this.jobs.close();
  }
}
