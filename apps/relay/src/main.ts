/**
 * Stand-alone relay process: `node apps/relay/dist/main.js` with
 * DATABASE_URL and NATS_URL set (see relayConfigSchema for the rest). Stops cleanly
 * on SIGTERM/SIGINT (checkpoint saved); a SIGKILL loses nothing either (see EventRelay).
 */
import { createLogger } from '@switchyard/platform';
import { relayConfigFromEnv, runRelay } from './run-relay.js';

const logger = createLogger('relay');
try {
  const running = await runRelay(relayConfigFromEnv(), logger);
  let stopping = false;
  // Closed for good (not by a shutdown), it can publish nothing more: exit so its supervisor starts it again.
  void running.closed.then((err) => {
    if (stopping) return;
    logger.fatal({ err }, 'relay NATS connection closed for good');
    process.exit(1);
  });
  const shutdown = async (signal: string) => {
    stopping = true;
    logger.info({ signal }, 'relay shutting down');
    await running.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.send?.({ type: 'relay-started' });
} catch (err) {
  logger.fatal({ err }, 'relay failed to start');
  process.exit(1);
}
