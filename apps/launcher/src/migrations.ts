import { loadDemoData } from '@switchyard/agents';
import { PostgresEventStore, type EventStore } from '@switchyard/event-store';
import { IDEMPOTENCY_SCHEMA_SQL, migrateA2a, RATE_LIMIT_SCHEMA_SQL, SECURITY_SCHEMA_SQL } from '@switchyard/gateway';
import { migrateAnalytics, migrateAutomation } from '@switchyard/mcp-servers';
import { MonitoringStore, monitorProjections } from '@switchyard/monitor';
import {
  delegationProjections,
  statusProjections,
  workflowDefinitionsProjection,
  workflowExecutionsProjection,
  ProjectionRunner,
} from '@switchyard/read-models';
import { ensureExternalAgentsTable } from '@switchyard/dispatcher';
import { ensureWorkflowSchema } from '@switchyard/workflow-executions';
import { PgRelayCheckpointStore } from '@switchyard/relay';
import {
  createPgClient,
  createPgPool,
  grantComponentAccess,
  grantDemoAccess,
  migrateUnderLock,
  provisionDatabaseRoles,
  SCHEMA_CHANGES_LOCK,
  type DatabaseLogin,
  type DatabaseRoles,
  type Logger,
} from '@switchyard/platform';
import type pg from 'pg';
import { buildVersion, checkDataFormat } from './data-format.js';

export interface MigrateOptions {
  /** A pool logged in as the schema owner (`<db>_app`), at least 2 connections (the demo loader holds one while it counts on another); ended by the caller. */
  readonly pool: pg.Pool;
  /** Its URL (the relay's checkpoint store makes its own connection). */
  readonly url: string;
  readonly roles: DatabaseRoles;
  readonly logger: Logger;
  /** EventStoreDB holds the events: no `eventstore` schema to migrate. */
  readonly externalEventStore: boolean;
  /** Load the demo business data (the agents and the database MCP servers need it). */
  readonly demoData: boolean;
}

/**
 * The launcher's migration phase, as the schema owner, before any component starts under its
 * own role (which may not run DDL). Every DDL a component would run at its start, in the order
 * their dependencies need (the status read model indexes the tasks and the workflow read model),
 * then the demo data, then the grants of every role. Each step is idempotent. The whole phase
 * runs under one session advisory lock (SCHEMA_CHANGES_LOCK, also the roles' provisioning lock):
 * launcher processes started together (one per role set) take turns, since concurrent GRANTs on
 * one object fail with "tuple concurrently updated".
 * The owner pool is ended by the caller right after: no component uses it.
 */
export async function migrateAsOwner(o: MigrateOptions): Promise<void> {
  const log = o.logger.child({ component: 'migrations' });
  // The lock on a connection of its own: the steps may use every connection of the pool.
  const lock = createPgClient(
    { connectionString: o.url, application_name: 'switchyard-migrations-lock' },
    { name: 'migrations-lock', logger: o.logger },
  );
  await lock.connect();
  try {
    const t0 = Date.now();
    await lock.query('select pg_advisory_lock(hashtext($1))', [SCHEMA_CHANGES_LOCK]);
    const t1 = Date.now();
    await migrate(o);
    log.info({ waitedMs: t1 - t0, tookMs: Date.now() - t1 }, 'migration phase done');
  } finally {
    // Ending the session releases the lock too.
    await lock.end().catch(() => undefined);
  }
}

async function migrate(o: MigrateOptions): Promise<void> {
  const { pool, logger } = o;
  // 0. Data a newer build wrote is refused before anything changes it.
  await checkDataFormat(pool, `switchyard ${buildVersion()}`);
  // 1. Event store (the append function and its table) and the relay's checkpoint.
  let store: EventStore | undefined;
  if (!o.externalEventStore) {
    const es = new PostgresEventStore({ pool, logger });
    await es.init();
    store = es;
  }
  try {
    await migrateWith(o, store);
  } finally {
    // The owner's store leaves the process's live feed with the migrations: no component's
    // LISTEN connection may log in as the owner.
    await store?.close();
  }
}

async function migrateWith(o: MigrateOptions, store: EventStore | undefined): Promise<void> {
  const { pool, logger } = o;
  const log = logger.child({ component: 'migrations' });
  const relay = new PgRelayCheckpointStore({ connectionString: o.url, logger });
  try {
    await relay.init();
  } finally {
    await relay.close();
  }
  // 2. Workflow engine tables, the dispatcher's external agents, then the read models in
  //    dependency order: workflow executions, delegation, status (indexes both), and the
  //    monitor's own checkpoints table.
  await ensureWorkflowSchema(pool);
  await ensureExternalAgentsTable(pool);
  if (store) {
    await new ProjectionRunner({
      store,
      db: { pool },
      projections: [
        workflowExecutionsProjection,
        workflowDefinitionsProjection,
        ...delegationProjections(),
        ...statusProjections(),
      ],
      logger,
    }).migrate();
    await new ProjectionRunner({
      store,
      db: { pool },
      projections: monitorProjections(),
      schema: 'monitoring',
      logger,
    }).migrate();
  }
  // 3. Monitor, gateway, automation and analytics servers.
  await new MonitoringStore(pool).migrate(); // alert_rules included
  await migrateUnderLock(pool, 'switchyard.security.schema', SECURITY_SCHEMA_SQL);
  await migrateUnderLock(pool, 'switchyard.gateway.idempotency.schema', IDEMPOTENCY_SCHEMA_SQL);
  await migrateA2a(pool);
  await migrateUnderLock(pool, 'switchyard.gateway.ratelimit.schema', RATE_LIMIT_SCHEMA_SQL);
  await migrateAutomation(pool);
  await migrateAnalytics(pool);
  // 4. The demo business data set (idempotent, locked); a load may recreate the schema, so the
  //    reader's and writer's grants follow it.
  if (o.demoData) {
    const demo = await loadDemoData(pool);
    log.info({ loaded: demo.loaded, counts: demo.counts }, 'demo business data ready');
    await grantDemoAccess(pool, o.roles.names);
  }
  // 5. Every component role's grants on what now exists.
  await grantComponentAccess(pool, o.roles.names);
  log.debug({ owner: o.roles.names.app }, 'grants applied; components get their own roles');
}

/**
 * Provision the least-privilege roles with the administrative login `adminUrl`, then run the
 * migration phase as the schema owner (its pool ended right after). Undefined, with a warning,
 * when that login may not create roles: the caller goes on with it.
 */
export async function provisionAndMigrate(
  adminUrl: string,
  o: {
    readonly logger: Logger;
    readonly passwords: Partial<Record<DatabaseLogin, string>>;
    readonly externalEventStore: boolean;
    readonly demoData: boolean;
  },
): Promise<DatabaseRoles | undefined> {
  const roles = await provisionDatabaseRoles(adminUrl, { logger: o.logger, passwords: o.passwords });
  if (!roles) return undefined;
  const owner = createPgPool(
    { connectionString: roles.urls.app, max: 2, application_name: 'switchyard-migrations' },
    { name: 'migrations', logger: o.logger },
  );
  try {
    await migrateAsOwner({
      pool: owner,
      url: roles.urls.app,
      roles,
      logger: o.logger,
      externalEventStore: o.externalEventStore,
      demoData: o.demoData,
    });
  } finally {
    await owner.end();
  }
  return roles;
}
