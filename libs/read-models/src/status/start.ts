import type pg from 'pg';
import type { EventStore } from '@switchyard/event-store';
import type { Logger } from '@switchyard/platform';
import { ProjectionRunner } from '../projection-runner.js';
import { statusProjections } from './mcp-projection.js';

export interface StartStatusProjectionsOptions {
  readonly store: EventStore;
  readonly pool: pg.Pool;
  readonly logger?: Logger;
  readonly schema?: string;
  readonly delegationSchema?: string;
  /**
   * How long a small batch waits for more events (default 50 ms). Each MCP call or task moves
   * these counters with several statements; gathering what arrives in 50 ms into one
   * transaction keeps that from growing with every call, for a lag nobody reading a status sees.
   */
  readonly gatherMs?: number;
}

/**
 * Run the status projections in their own ProjectionRunner, caught up to the head before it
 * resolves. `stop()` the runner on shutdown. (A host that already runs a ProjectionRunner can
 * add `statusProjections()` to it instead.)
 */
export async function startStatusProjections(opts: StartStatusProjectionsOptions): Promise<ProjectionRunner> {
  const runner = new ProjectionRunner({
    store: opts.store,
    db: { pool: opts.pool },
    projections: statusProjections({
      ...(opts.schema ? { schema: opts.schema } : {}),
      ...(opts.delegationSchema ? { delegationSchema: opts.delegationSchema } : {}),
    }),
    gatherMs: opts.gatherMs ?? 50,
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
  await runner.start();
  await runner.waitFor();
  return runner;
}
