/**
 * The Switchyard launcher: runs any set of the apps in this one process.
 *
 *   node apps/launcher/dist/main.js            everything (the embedded default of `npm start`)
 *   node apps/launcher/dist/main.js gateway    only the HTTP gateway (scale out over NATS)
 *   node apps/launcher/dist/main.js relay ...  any subset of the roles below
 *   node apps/launcher/dist/main.js mcp-servers:database agents:data_analyst
 *                                              one MCP server, one agent (a container each)
 * Without arguments SWITCHYARD_ROLES (commas) says the same; see roles.ts.
 *
 * With no DATABASE_URL / NATS_URL it first starts a real PostgreSQL and nats-server.
 */
import { mkdirSync } from 'node:fs';
import {
  ConfigError,
  createLogger,
  DataDirInUseError,
  lockDataDir,
  parseConfig,
  processLogFormat,
} from '@switchyard/platform';
import { startBanner } from './banner.js';
import { logFatal } from './fatal.js';
import { startHealthFile } from './health-file.js';
import { agentPortsFromEnv, embeddedServers, listeningPorts, plannedListeners, portClashes } from './ports.js';
import { DATABASE_WRITER, parseRoleSelection, RoleSelectionError, type RoleSelection } from './roles.js';
import { Supervisor } from './supervisor.js';
import { startSystem } from './system.js';

const logger = createLogger('switchyard');

function parseRoles(argv: string[]): RoleSelection {
  try {
    return parseRoleSelection(argv, process.env);
  } catch (err) {
    if (!(err instanceof RoleSelectionError)) throw err;
    console.error(err.message);
    process.exit(2);
  }
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
  const { roles, ...only } = parseRoles(process.argv.slice(2));
  // Checked before anything starts, not when the agents do (after PostgreSQL, NATS and the servers).
  agentPortsFromEnv();
  // Every port this process will listen on, once: two variables naming the same port failed late
  // (after PostgreSQL, NATS and the migrations) with an EADDRINUSE naming neither.
  const clashes = portClashes(listeningPorts({ roles, ...only }, config));
  if (clashes.length > 0) throw new ConfigError(clashes);
  // A launcher that runs embedded servers owns its data dir: a second one on it would adopt the
  // first one's servers as if left by a killed run (and stop them when its own start failed).
  const embedded = embeddedServers(config);
  if (embedded.postgres || embedded.nats) {
    mkdirSync(config.DATA_DIR, { recursive: true, mode: 0o700 });
    try {
      lockDataDir(config.DATA_DIR);
    } catch (err) {
      if (!(err instanceof DataDirInUseError)) throw err;
      logger.fatal({ dataDir: err.dataDir, holderPid: err.holder.pid }, err.message);
      process.exit(1);
    }
  }
  const system = await startSystem(config, roles, logger, supervisor, only);
  up = true;
  // The banner is for a person: with readable logs it ends stdout; with JSON logs it goes to
  // stderr so stdout stays one JSON object a line for whatever reads it.
  const banner = startBanner(system.startInfo);
  if (processLogFormat() === 'pretty') process.stdout.write(`${banner}\n`);
  else process.stderr.write(`${banner}\n`);
  // A container's healthcheck (healthcheck.js) reads this: the units' states and this process's listeners.
  const stopHealthFile = process.env.SWITCHYARD_HEALTH_FILE
    ? startHealthFile(process.env.SWITCHYARD_HEALTH_FILE, supervisor, {
        roles,
        probes: plannedListeners({ roles, ...only })
          // Without the database roles the writer is not started (the launcher warns and goes on): nothing to probe.
          .filter(
            (l) => l.name !== DATABASE_WRITER || supervisor.status().some((u) => u.name === 'mcp-database-writer'),
          )
          .map((l) => `http://127.0.0.1:${l.port}${l.healthPath}`),
      })
    : () => undefined;
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
    stopHealthFile();
    await system.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
} catch (err) {
  logFatal(logger, err, 'start failed');
  process.exit(1);
}
