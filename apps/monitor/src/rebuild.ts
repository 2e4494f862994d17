/**
 * Rebuild the monitor's read models from the event log:
 *
 *   DATABASE_URL=postgres://... [EVENTSTORE_URL=esdb://...] node apps/monitor/dist/rebuild.js [--only monitor-alerts,monitor-services]
 *
 * Each projection's tables are emptied (the probe columns of `monitoring.services` are kept:
 * they are telemetry, not events), its checkpoint set back to the start, and the log replayed.
 * A monitor running meanwhile loses its checkpoint compare-and-set and follows the rebuild.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { z } from 'zod';
import { pino } from 'pino';
import { createEventStore, type EventStore } from '@switchyard/event-store';
import { rebuildProjections, type ProjectionStatus } from '@switchyard/read-models';
import { AppError, createPgPool, parseConfig, type Logger } from '@switchyard/platform';
import { MONITOR_PROJECTIONS_SCHEMA, monitorProjections } from './projections.js';

export interface RebuildMonitorReadModelsOptions {
  readonly store: EventStore;
  /** The monitoring database (schema `monitoring`). */
  readonly pool: pg.Pool;
  readonly logger?: Logger;
  /** Only these projections (default: all of the monitor's). */
  readonly names?: readonly string[];
  /** Longest the replay may go without moving before it fails (default 60 s); it waits as long as it moves. */
  readonly timeoutMs?: number;
}

/** Reset the monitor's projections and replay them to the head of the log; returns their status after. */
export async function rebuildMonitorReadModels(o: RebuildMonitorReadModelsOptions): Promise<ProjectionStatus[]> {
  const all = monitorProjections();
  const unknown = (o.names ?? []).filter((n) => !all.some((p) => p.name === n));
  if (unknown.length > 0)
    throw new AppError('validation', `no monitor projection named ${unknown.join(', ')}`, {
      unknown,
      valid: all.map((p) => p.name),
    });
  const projections = o.names ? all.filter((p) => o.names!.includes(p.name)) : all;
  return rebuildProjections({
    store: o.store,
    pool: o.pool,
    projections,
    schema: MONITOR_PROJECTIONS_SCHEMA,
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.timeoutMs ? { stallMs: o.timeoutMs } : {}),
  });
}

const envSchema = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  EVENTSTORE_URL: z.string().optional(),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('warn'),
});

export async function main(
  argv: string[],
  out: (s: string) => void = (s) => void process.stdout.write(s),
): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { only: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    out('usage: rebuild.js [--only <projection>,...]   (DATABASE_URL, EVENTSTORE_URL)\n');
    return 0;
  }
  const env = parseConfig(process.env, envSchema);
  const logger = pino({ level: env.LOG_LEVEL }) as unknown as Logger;
  const pool = createPgPool({ connectionString: env.DATABASE_URL, max: 4 }, { name: 'monitor-rebuild', logger });
  const store = createEventStore({
    databaseUrl: env.DATABASE_URL,
    ...(env.EVENTSTORE_URL ? { eventstoreUrl: env.EVENTSTORE_URL } : {}),
    logger,
  });
  try {
    await store.init();
    const names = values.only
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const started = Date.now();
    const status = await rebuildMonitorReadModels({ store, pool, logger, ...(names ? { names } : {}) });
    for (const s of status)
      out(`${JSON.stringify({ projection: s.name, position: s.position, head: s.head, lag: s.lag })}\n`);
    out(`rebuilt ${status.length} monitor read models in ${Date.now() - started} ms\n`);
    return 0;
  } finally {
    await store.close();
    await pool.end();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    },
  );
}
