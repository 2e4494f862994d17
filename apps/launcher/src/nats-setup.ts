/**
 * Make the JetStream streams the roles use, then exit: the Docker Compose setup's one-shot
 * `nats-setup` container, whose NATS user (NATS_PASSWORD_SETUP) may do that and nothing else.
 * Without NATS_PASSWORD_SETUP it connects with NATS_TOKEN (or no credentials).
 *
 *   NATS_URL=nats://nats:4222 NATS_PASSWORD_SETUP=... node apps/launcher/dist/nats-setup.js
 *
 * `--print-nats-authorization` connects to nothing: it prints the `authorization` block the
 * embedded nats-server gets (the all-subjects user, `events`, each role's user with its subjects;
 * public nkeys only) for a nats-server of your own, a cluster's nodes. The seeds are NATS_TOKEN and
 * NATS_PASSWORD_<ROLE> when given (nkey seeds), else the files in DATA_DIR/nats, made when missing:
 * give them to the processes as NATS_TOKEN and NATS_PASSWORD_<ROLE>.
 *
 *   DATA_DIR=/srv/switchyard node apps/launcher/dist/nats-setup.js --print-nats-authorization > auth.conf
 */
import { NATS_SETUP_USER } from '@switchyard/contracts';
import { closeNats, connectNats } from '@switchyard/messaging';
import { createLogger, parseConfig } from '@switchyard/platform';
import { printedNatsAuthorization } from './nats-users.js';
import { setUpNatsStreams } from './nats-streams.js';

const logger = createLogger('nats-setup');
if (process.argv.includes('--print-nats-authorization')) {
  try {
    process.stdout.write(printedNatsAuthorization(parseConfig()));
    process.exit(0);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
}
try {
  const config = parseConfig();
  const password = config.NATS_PASSWORD_SETUP;
  const nc = await connectNats({
    url: config.NATS_URL ?? `nats://127.0.0.1:${config.EMBEDDED_NATS_PORT}`,
    name: 'switchyard-nats-setup',
    logger,
    ...(password ? { user: { user: NATS_SETUP_USER, pass: password } } : { token: config.NATS_TOKEN }),
  });
  try {
    await setUpNatsStreams(nc, {
      replicas: config.NATS_STREAM_REPLICAS,
      eventsMaxBytes: config.NATS_EVENTS_MAX_BYTES,
      logger,
    });
  } finally {
    await closeNats(nc, { logger });
  }
  logger.info({}, 'JetStream streams ready');
} catch (err) {
  logger.fatal({ err }, 'setting up the JetStream streams failed');
  process.exit(1);
}
