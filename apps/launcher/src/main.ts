/**
 * The Switchyard launcher: runs any set of the apps in this one process.
 *
 *   node apps/launcher/dist/main.js            everything (the embedded default of `npm start`)
 *   node apps/launcher/dist/main.js gateway    only the HTTP gateway (scale out over NATS)
 *   node apps/launcher/dist/main.js relay ...  any subset of the roles below
 *
 * With no DATABASE_URL / NATS_URL it first starts a real PostgreSQL and nats-server.
 */
import { ConfigError, createLogger, parseConfig, processLogFormat } from '@switchyard/platform';
import { startBanner } from './banner.js';
import { Supervisor } from './supervisor.js';
import { ROLES, startSystem, type Role } from './system.js';

const logger = createLogger('switchyard');

function parseRoles(argv: string[]): Role[] {
  const asked = argv.filter((a) => !a.startsWith('-'));
  if (asked.length === 0 || asked.includes('all')) return [...ROLES];
  const unknown = asked.filter((a) => !(ROLES as readonly string[]).includes(a));
  if (unknown.length) {
    console.error(`unknown role(s): ${unknown.join(', ')}; valid: all, ${ROLES.join(', ')}`);
    process.exit(2);
  }
  return asked as Role[];
}

// An error no component caught must not end the process once it is up: every connection, child
// and server has its own error listener, and the supervisor restarts a component that fails; this
// is the net under them, logged and reported (/readyz, health report) as the `process` unit.
// While starting, the old rule holds: fail fast, exit 1.
const supervisor = new Supervisor({ logger });
let up = false;
const onUnexpected = (origin: string) => (err: unknown) => {
  if (!up) {
    logger.fatal({ err, origin }, 'unexpected error while starting');
    process.exit(1);
  }
  supervisor.recordUnexpected(origin, err);
};
process.on('uncaughtException', onUnexpected('uncaughtException'));
process.on('unhandledRejection', onUnexpected('unhandledRejection'));

try {
  const config = parseConfig();
  const roles = parseRoles(process.argv.slice(2));
  const system = await startSystem(config, roles, logger, supervisor);
  up = true;
  // The banner is for a person: with readable logs it ends stdout; with JSON logs it goes to
  // stderr so stdout stays one JSON object a line for whatever reads it.
  const banner = startBanner(system.startInfo);
  if (processLogFormat() === 'pretty') process.stdout.write(`${banner}\n`);
  else process.stderr.write(`${banner}\n`);
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, 20_000);
    force.unref();
    await system.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
} catch (err) {
  if (err instanceof ConfigError) {
    for (const i of err.issues) logger.fatal({ variable: i.variable }, `bad configuration: ${i.variable}: ${i.message}`);
  } else {
    logger.fatal({ err }, 'start failed');
  }
  process.exit(1);
}
