import type { Service } from '@switchyard/messaging';
import { ProjectionRunner } from '@switchyard/read-models';
import { Dispatcher, type DispatcherOptions } from './dispatcher.js';
import { performanceProjection, tasksProjection } from './projections.js';
import { startTasksService } from './service.js';

export type StartDispatcherOptions = DispatcherOptions & {
  /** Run the delegation projections here (default true). Set false when another process runs them. */
  readonly runProjections?: boolean;
};

export interface DispatcherHandle {
  readonly dispatcher: Dispatcher;
  readonly service: Service;
  readonly projections?: ProjectionRunner;
  stop(): Promise<void>;
}

/** The delegation projections (tasks table and per-agent performance) for a ProjectionRunner. */
export const delegationProjections = (schema = 'delegation') => [tasksProjection(schema), performanceProjection(schema)];

/**
 * Start the task dispatcher: 1. its projections (caught up to the head, so the queue can be
 * recovered), 2. the dispatcher (discovery, recovery, timers), 3. the `tasks` NATS service.
 * Stop in reverse order.
 */
export async function startDispatcher(opts: StartDispatcherOptions): Promise<DispatcherHandle> {
  let runner: ProjectionRunner | undefined;
  if (opts.runProjections !== false) {
    runner = new ProjectionRunner({ store: opts.store, db: { pool: opts.pool }, projections: delegationProjections(opts.schema), logger: opts.logger });
    await runner.start();
    await runner.waitFor();
  }
  const dispatcher = new Dispatcher(opts);
  let service: Service;
  try {
    await dispatcher.start();
    service = await startTasksService(opts.nats, dispatcher, opts.logger);
  } catch (err) {
    await dispatcher.stop();
    await runner?.stop();
    throw err;
  }
  return {
    dispatcher,
    service,
    ...(runner ? { projections: runner } : {}),
    async stop() {
      await service.stop().catch(() => undefined);
      await dispatcher.stop();
      await runner?.stop();
    },
  };
}
