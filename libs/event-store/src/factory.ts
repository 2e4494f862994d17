import type pg from 'pg';
import type { Logger } from '@switchyard/platform';
import { AppError } from '@switchyard/platform';
import type { EventStore } from './port.js';
import { PostgresEventStore } from './postgres/postgres-event-store.js';
import type { FedByPort } from './postgres/live-feed.js';
import { EventStoreDbEventStore } from './eventstoredb/eventstoredb-event-store.js';

export interface CreateEventStoreOptions {
  /** PostgreSQL URL; used when no `eventstoreUrl` is given. */
  readonly databaseUrl?: string;
  /** `esdb://` URL: when set, the store is EventStoreDB. */
  readonly eventstoreUrl?: string;
  /** An existing pool for the Postgres store (instead of `databaseUrl`). */
  readonly pool?: pg.Pool;
  readonly logger: Logger;
  /** A PostgreSQL store on a worker thread: its process's feed hands it commits and wake-ups (see forwardLiveFeed). */
  readonly fedBy?: FedByPort;
}

/** EventStoreDB when `eventstoreUrl` is set, otherwise PostgreSQL. Call `init()` on the result. */
export function createEventStore(o: CreateEventStoreOptions): EventStore {
  if (o.eventstoreUrl) return new EventStoreDbEventStore({ connectionString: o.eventstoreUrl, logger: o.logger });
  const liveFeed = o.fedBy ? { liveFeed: { fedBy: o.fedBy } } : {};
  if (o.pool) return new PostgresEventStore({ pool: o.pool, logger: o.logger, ...liveFeed });
  if (o.databaseUrl) return new PostgresEventStore({ connectionString: o.databaseUrl, logger: o.logger, ...liveFeed });
  throw new AppError('validation', 'createEventStore needs eventstoreUrl, pool or databaseUrl');
}
