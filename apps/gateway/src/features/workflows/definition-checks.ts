import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { z } from 'zod';
import { workflowLimits, type DefinitionValidation, type ToolCatalog } from '@switchyard/domain';
import { AppError, ThreadJobs } from '@switchyard/platform';
import { callerShareQuota } from '../../http/connection-quota.js';
import { currentActor } from '../../http/context.js';

/** Longest one definition's check may take; past it the thread is ended and a new one started. */
const CHECK_TIMEOUT_MS = 10_000;
/** Checks waiting for the thread; one more is refused at once (503). */
const MAX_QUEUED = 32;
/** Definitions one caller may have validated at once (waiting or running). */
export const CHECKS_PER_CALLER = 4;

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
  /**
   * Two threads, each with its queue: a viewer's validate route, and operators' runs. One queue
   * for both let a viewer's 33 large definitions refuse every ad-hoc run.
   */
  private readonly lanes = { validate: checkThread('validate'), run: checkThread('run') };

  /**
   * Validations one caller may have waiting or running at once: the rest of the queue is the
   * others'. (Runs have none: an operator's burst of ad-hoc runs waits its turn in the queue.)
   */
  private readonly validationsPerCaller = callerShareQuota('definition checks', CHECKS_PER_CALLER);

  /** The verdict on `definition` against `catalog`, as validateDefinition gives it, on `lane`'s thread. */
  async check(definition: unknown, catalog: ToolCatalog, lane: 'validate' | 'run'): Promise<DefinitionValidation> {
    const release = lane === 'validate' ? this.validationsPerCaller.take(currentActor() ?? 'anonymous') : undefined;
    try {
      // The numbers only: a clock (a function) does not cross to a thread, and a check needs none.
      const limits = Object.fromEntries(Object.entries(workflowLimits()).filter(([, v]) => typeof v === 'number'));
      return await this.lanes[lane].run({ definition, catalog, limits });
    } finally {
      release?.();
    }
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all([this.lanes.validate.close(), this.lanes.run.close()]);
  }
}

function checkThread(lane: string): ThreadJobs<DefinitionValidation> {
  return new ThreadJobs<DefinitionValidation>({
    script: new URL('./definition-check.worker.js', import.meta.url),
    name: `definition-check-${lane}`,
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
}
