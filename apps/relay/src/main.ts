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
  const shutdown = async (signal: string) => {
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
