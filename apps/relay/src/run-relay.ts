import { z } from 'zod';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { EVENTS_STREAM, EVENTS_STREAM_MAX_BYTES, EVENTS_SUBJECT_PREFIX } from '@switchyard/contracts';
import { PostgresEventStore, type EventStore } from '@switchyard/event-store';
import { closeNats, connectNats, ensureEventsStream } from '@switchyard/messaging';
import { NATS_PASSWORD_PATTERN, natsUrlsSchema, parseConfig, type Logger } from '@switchyard/platform';
import { EventRelay } from './event-relay.js';
import { PgRelayCheckpointStore } from './checkpoint-store.js';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** Environment of a stand-alone relay process (see main.ts). */
export const relayConfigSchema = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  NATS_URL: natsUrlsSchema,
  NATS_TOKEN: z.string().min(1).optional(),
  /**
   * Connect as the `relay` user (events and their stream only) instead of with the token: its
   * password, or its nkey seed (the embedded server's, which is signed with and never sent).
   */
  NATS_PASSWORD_RELAY: z
    .string()
    .regex(NATS_PASSWORD_PATTERN, 'must start with a letter, then letters, digits, - or _ (16 or more)')
    .optional(),
  /** Replicas of the JetStream stream (3 on a 3-node cluster). */
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /** Bytes the stream keeps, the oldest dropped first (the event store keeps every event). */
  NATS_EVENTS_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024 * 1024)
    .default(EVENTS_STREAM_MAX_BYTES),
  RELAY_NAME: z.string().min(1).default('events'),
  RELAY_STREAM: z.string().min(1).default(EVENTS_STREAM),
  RELAY_SUBJECT_PREFIX: z.string().min(1).default(EVENTS_SUBJECT_PREFIX),
  RELAY_CHECKPOINT_EVERY: z.coerce.number().int().positive().default(100),
  RELAY_CHECKPOINT_INTERVAL_MS: z.coerce.number().int().positive().default(1_000),
  RELAY_DUPLICATE_WINDOW_MS: z.coerce
    .number()
    .int()
    .positive()
    .default(10 * 60_000),
  /** Skip what the JetStream stream already holds on start (see EventRelayOptions.jsm). */
  RELAY_RESUME_FROM_STREAM: bool.default(true),
  /** Schema of the event store tables (default of the adapter when unset). */
  EVENTSTORE_SCHEMA: z.string().min(1).optional(),
});
export type RelayConfig = z.infer<typeof relayConfigSchema>;

export interface RunningRelay {
  readonly relay: EventRelay;
  /**
   * Resolves with the reason when its NATS connection has closed for good (nats.js gives up after
   * repeated authorization errors, say from a stranger on the port while the server restarted):
   * the relay can publish nothing more, so whoever runs it must start it again.
   */
  readonly closed: Promise<Error>;
  /** Stop the relay and close everything it opened. */
  stop(): Promise<void>;
}

/**
 * Wire a relay from config: 1. event store, 2. checkpoint store, 3. NATS + the events
 * stream, 4. start. `store` may be passed in to share the app's store. `schemaManaged`:
 * DATABASE_URL is a role without DDL rights and the owner migrated the checkpoint table before.
 */
export async function runRelay(
  config: RelayConfig,
  logger: Logger,
  store?: EventStore,
  opts: { schemaManaged?: boolean } = {},
): Promise<RunningRelay> {
  const ownStore = !store;
  const es =
    store ??
    new PostgresEventStore({ connectionString: config.DATABASE_URL, logger, schema: config.EVENTSTORE_SCHEMA });
  await es.init();
  const checkpoints = new PgRelayCheckpointStore({
    connectionString: config.DATABASE_URL,
    logger,
    ...(opts.schemaManaged ? { schemaManaged: true } : {}),
  });
  await checkpoints.init();
  const nc = await connectNats({
    url: config.NATS_URL,
    name: `relay-${config.RELAY_NAME}`,
    logger,
    ...(config.NATS_PASSWORD_RELAY
      ? { user: { user: 'relay', pass: config.NATS_PASSWORD_RELAY } }
      : { token: config.NATS_TOKEN }),
  });
  const jsm = await jetstreamManager(nc);
  await ensureEventsStream(jsm, {
    name: config.RELAY_STREAM,
    subjects: [`${config.RELAY_SUBJECT_PREFIX}.>`],
    duplicateWindowMs: config.RELAY_DUPLICATE_WINDOW_MS,
    replicas: config.NATS_STREAM_REPLICAS,
    maxBytes: config.NATS_EVENTS_MAX_BYTES,
    logger,
    // The relay's own user may not create or change the stream (its config would run with the account's rights).
    manage: !config.NATS_PASSWORD_RELAY,
  });
  const relay = new EventRelay({
    store: es,
    js: jetstream(nc),
    connection: nc,
    jsm: config.RELAY_RESUME_FROM_STREAM ? jsm : undefined,
    stream: config.RELAY_STREAM,
    checkpoints,
    logger,
    name: config.RELAY_NAME,
    subjectPrefix: config.RELAY_SUBJECT_PREFIX,
    checkpointEvery: config.RELAY_CHECKPOINT_EVERY,
    checkpointIntervalMs: config.RELAY_CHECKPOINT_INTERVAL_MS,
  });
  relay.start();
  return {
    relay,
    closed: nc.closed().then((err) => err ?? new Error("the relay's NATS connection closed")),
    stop: async () => {
      await relay.stop();
      await checkpoints.close();
      await closeNats(nc, { logger });
      if (ownStore) await es.close();
    },
  };
}

/** Parse the relay config from the environment (throws ConfigError naming bad variables). */
export const relayConfigFromEnv = (env: Record<string, string | undefined> = process.env): RelayConfig =>
  parseConfig(env, relayConfigSchema);
