/**
 * Rebuild read models from the event log, any or all of them:
 *
 *   npm run rebuild -- --list
 *   npm run rebuild -- workflow_executions delegation.tasks
 *   npm run rebuild -- all
 *
 * The database is DATABASE_URL, else the embedded PostgreSQL of DATA_DIR on EMBEDDED_PG_PORT
 * (the one `npm start` runs: run this beside it). Each named projection's tables are emptied,
 * its checkpoint set back to the start under a lock on its row, and the log replayed to its head;
 * a system running meanwhile loses its checkpoint compare-and-set and follows the rebuild, so the
 * read model is whole again when this ends. What to run when a read model was emptied or edited
 * by hand (a restore that left one behind the log, a careless `truncate`): a projection resumes
 * from its checkpoint and cannot tell its rows went.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type pg from 'pg';
import { z } from 'zod';
import { pino } from 'pino';
import { createEventStore, type EventStore } from '@switchyard/event-store';
import {
  AUTOMATION_CHECKPOINT_SCHEMA,
  adminActorsProjection,
  revokedActorsProjection,
  schedulesProjection,
  webhooksProjection,
} from '@switchyard/mcp-servers';
import { MONITOR_PROJECTIONS_SCHEMA, monitorProjections } from '@switchyard/monitor';
import { revokedStartersProjection } from '@switchyard/workflows';
import {
  delegationProjections,
  rebuildProjections,
  statusProjections,
  workflowDefinitionsProjection,
  workflowExecutionsProjection,
  type Projection,
} from '@switchyard/read-models';
import { AppError, createPgPool, parseConfig, type Logger } from '@switchyard/platform';
import { operatorDatabaseUrl } from './admin-url.js';
import { provisionAndMigrate } from './migrations.js';

/** The read models by the schema of their checkpoints, in the order a rebuild of all goes. */
function groups(): { schema: string; projections: Projection[] }[] {
  return [
    {
      schema: 'read_models',
      projections: [
        workflowExecutionsProjection,
        workflowDefinitionsProjection,
        ...delegationProjections(),
        ...statusProjections(),
        // The engines' list of persons whose key was revoked (their executions are canceled).
        revokedStartersProjection,
      ],
    },
    {
      schema: AUTOMATION_CHECKPOINT_SCHEMA,
      projections: [webhooksProjection, schedulesProjection, revokedActorsProjection, adminActorsProjection],
    },
    // The monitor's keep their telemetry columns (their reset does).
    { schema: MONITOR_PROJECTIONS_SCHEMA, projections: monitorProjections() },
  ];
}

/** Every read model a rebuild can name. */
export const rebuildableReadModels = (): string[] => groups().flatMap((g) => g.projections.map((p) => p.name));

export interface RebuiltReadModel {
  readonly name: string;
  readonly position: number;
  readonly head: number;
}

/**
 * Reset the named read models (every one for `all`) and replay them to the head of the log.
 * Unknown names are refused (`validation`, listing the valid ones) before anything is reset.
 */
export async function rebuildReadModels(o: {
  readonly store: EventStore;
  readonly pool: pg.Pool;
  readonly names: readonly string[];
  readonly logger?: Logger;
  /** Longest the replay may go without moving before it fails (default 60 s). */
  readonly stallMs?: number;
}): Promise<RebuiltReadModel[]> {
  const all = rebuildableReadModels();
  const wanted = o.names.includes('all') ? all : [...new Set(o.names)];
  const unknown = wanted.filter((n) => !all.includes(n));
  if (unknown.length > 0 || wanted.length === 0)
    throw new AppError(
      'validation',
      unknown.length ? `no read model named ${unknown.join(', ')}` : 'name the read models to rebuild, or all',
      { unknown, valid: all },
    );
  const out: RebuiltReadModel[] = [];
  for (const g of groups()) {
    const projections = g.projections.filter((p) => wanted.includes(p.name));
    if (projections.length === 0) continue;
    for (const st of await rebuildProjections({
      store: o.store,
      pool: o.pool,
      projections,
      schema: g.schema,
      ...(o.logger ? { logger: o.logger } : {}),
      ...(o.stallMs ? { stallMs: o.stallMs } : {}),
    }))
      out.push({ name: st.name, position: st.position, head: st.head });
  }
  return out;
}

const envSchema = z.object({
  EVENTSTORE_URL: z.string().optional(),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('warn'),
});

export async function main(argv: string[], out: (s: string) => void = (s) => void process.stdout.write(s)) {
  if (argv.includes('--help') || argv.includes('-h') || argv.length === 0) {
    out(
      'usage: npm run rebuild -- <read model>... | all | --list   (DATABASE_URL, or DATA_DIR and EMBEDDED_PG_PORT)\n',
    );
    return argv.length === 0 ? 2 : 0;
  }
  if (argv.includes('--list')) {
    for (const n of rebuildableReadModels()) out(`${n}\n`);
    return 0;
  }
  const env = parseConfig(process.env, envSchema);
  const logger = pino({ level: env.LOG_LEVEL }) as unknown as Logger;
  const adminUrl = operatorDatabaseUrl(parseConfig());
  // The migrations a start runs first (as the schema owner, then the grants): a read model's table
  // dropped by hand comes back owned by the owner with every component's rights, not by this
  // login without them. Undefined when the login may not create roles (a database of one's own).
  const roles = await provisionAndMigrate(adminUrl, {
    logger,
    passwords: {},
    externalEventStore: Boolean(env.EVENTSTORE_URL),
    demoData: false,
  });
  const url = roles?.urls.app ?? adminUrl;
  const pool = createPgPool({ connectionString: url, max: 4 }, { name: 'rebuild', logger });
  const store = createEventStore({
    databaseUrl: url,
    ...(env.EVENTSTORE_URL ? { eventstoreUrl: env.EVENTSTORE_URL } : {}),
    logger,
  });
  try {
    await store.init();
    const t0 = Date.now();
    const rebuilt = await rebuildReadModels({ store, pool, names: argv, logger });
    for (const r of rebuilt) out(`${JSON.stringify({ read_model: r.name, position: r.position, head: r.head })}\n`);
    out(`rebuilt ${rebuilt.length} read models from the log in ${Date.now() - t0} ms\n`);
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
