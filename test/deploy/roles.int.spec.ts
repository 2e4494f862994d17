/**
 * One launcher process per container: SWITCHYARD_ROLES picks one MCP server and one agent, the
 * process opens exactly their listeners, writes its health file, and healthcheck.js says healthy
 * while it runs and unhealthy once it is gone. Real PostgreSQL and nats-server (the runner's).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import pg from 'pg';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  DATABASE_LOGINS,
  databaseLoginEnv,
  freePort,
  loginRoleName,
  roleNamesFor,
  type DatabaseLogin,
} from '@switchyard/platform';
import { freshDatabase, testNatsUrl } from '@switchyard/testing';
import { root } from './dockerfile.js';

const main = path.join(root, 'apps', 'launcher', 'dist', 'main.js');
const healthcheck = path.join(root, 'apps', 'launcher', 'dist', 'healthcheck.js');

function run(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): { proc: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [file, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  proc.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  return { proc, output: () => out, exited: new Promise((r) => proc.once('exit', (code) => r(code))) };
}

describe('a launcher process with one MCP server and one agent (SWITCHYARD_ROLES)', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let fetchPort: number;
  let agentPort: number;
  let launcher: ReturnType<typeof run> | undefined;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-roles-'));
    fetchPort = await freePort();
    agentPort = await freePort();
    const base = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !/^(DATABASE_URL|NATS_URL|TEST_|MCP_|AGENT_)/.test(k)),
    );
    env = {
      ...base,
      DATABASE_URL: await freshDatabase('roles_split'),
      NATS_URL: await testNatsUrl(),
      DATA_DIR: dir,
      FILESYSTEM_ROOT: path.join(dir, 'files'),
      LOG_LEVEL: 'info',
      MCP_AUTH_TOKEN: 'test-mcp-token',
      AI_AGENT_AUTH_TOKEN: 'test-agent-token',
      MCP_FETCH_PORT: String(fetchPort),
      AGENT_DATA_ANALYST_PORT: String(agentPort),
      SWITCHYARD_HEALTH_FILE: path.join(dir, 'health.json'),
    };
  });
  after(async () => {
    if (launcher && launcher.proc.exitCode === null && launcher.proc.signalCode === null) {
      launcher.proc.kill('SIGKILL');
      await launcher.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an unknown MCP server by name, exit 2', async () => {
    const bad = run(main, [], { ...env, SWITCHYARD_ROLES: 'mcp-servers:postgres' });
    assert.equal(await bad.exited, 2);
    assert.match(bad.output(), /unknown MCP server "postgres"; valid: .*database/);
  });

  it("given its roles' own logins: refuses a missing one, and the administrative DATABASE_URL beside them, before starting anything (exit 1)", async () => {
    const { DATABASE_URL: adminUrl, ...withoutAdmin } = env;
    const missing = run(main, ['gateway'], {
      ...withoutAdmin,
      DATABASE_URL_SINK: 'postgres://switchyard_sink:x@127.0.0.1:1/s',
    });
    assert.equal(await missing.exited, 1, missing.output());
    assert.match(
      missing.output(),
      /DATABASE_URL_GATEWAY: this process logs in to PostgreSQL with its roles' own logins/,
    );
    assert.match(missing.output(), /DATABASE_URL_PROJECTIONS/);
    const both = run(main, ['connectors'], {
      ...withoutAdmin,
      DATABASE_URL: adminUrl!,
      DATABASE_URL_SINK: 'postgres://switchyard_sink:x@127.0.0.1:1/s',
    });
    assert.equal(await both.exited, 1, both.output());
    assert.match(both.output(), /DATABASE_URL: DATABASE_URL_<LOGIN> are given: leave DATABASE_URL unset/);
  });

  it('opens only the chosen listeners, and its healthcheck follows the process', { timeout: 240_000 }, async () => {
    launcher = run(main, [], { ...env, SWITCHYARD_ROLES: 'mcp-servers:fetch,agents:data_analyst' });
    const l = launcher;
    const up = await Promise.race([
      new Promise<string>((resolve) => {
        const tick = setInterval(() => {
          if (l.output().includes('switchyard is up')) {
            clearInterval(tick);
            resolve('up');
          }
        }, 200);
        void l.exited.then(() => {
          clearInterval(tick);
          resolve('exited');
        });
      }),
      new Promise<string>((r) => setTimeout(() => r('timeout'), 180_000).unref()),
    ]);
    assert.equal(up, 'up', l.output().slice(-3000));

    const fetchHealth = await fetch(`http://127.0.0.1:${fetchPort}/health`);
    assert.equal(fetchHealth.status, 200);
    const agentHealth = await fetch(`http://127.0.0.1:${agentPort}/health`);
    assert.equal(agentHealth.status, 200);
    assert.equal(((await agentHealth.json()) as { agent: string }).agent, 'data_analyst');

    const file = JSON.parse(readFileSync(env.SWITCHYARD_HEALTH_FILE!, 'utf8')) as {
      roles: string[];
      units: { name: string }[];
      probes: string[];
    };
    assert.deepEqual(file.roles, ['mcp-servers', 'agents']);
    const units = file.units.map((u) => u.name);
    assert.ok(units.includes('mcp-fetch') && units.includes('agents'), `units: ${units.join(', ')}`);
    for (const other of [
      'mcp-database',
      'mcp-automation',
      'mcp-analytics',
      'mcp-filesystem-bridge',
      'mcp-database-writer',
      'connectors',
      'gateway',
      'relay',
    ]) {
      assert.ok(!units.includes(other), `${other} does not run here (units: ${units.join(', ')})`);
    }
    assert.deepEqual(
      file.probes.sort(),
      [`http://127.0.0.1:${fetchPort}/health`, `http://127.0.0.1:${agentPort}/health`].sort(),
    );

    const healthy = run(healthcheck, [], env);
    assert.equal(await healthy.exited, 0, healthy.output());
    assert.match(healthy.output(), /^healthy: \d+ units, 2 listeners/);

    l.proc.kill('SIGTERM');
    assert.equal(await l.exited, 0, l.output().slice(-3000));
    const gone = run(healthcheck, [], env);
    assert.equal(await gone.exited, 1, gone.output());
    assert.match(gone.output(), /^unhealthy: http:\/\/127\.0\.0\.1:\d+\/health/);
  });
});

describe("a split deployment's one-shot db-setup, then processes given their roles' own logins only", () => {
  let dir: string;
  const procs: ReturnType<typeof run>[] = [];
  after(async () => {
    for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    'db-setup provisions with the given passwords and exits 0; the relay and the monitor then start with DATABASE_URL_<LOGIN> alone',
    { timeout: 180_000 },
    async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'switchyard-logins-'));
      const adminUrl = await freshDatabase('roles_logins');
      const base: NodeJS.ProcessEnv = Object.fromEntries(
        Object.entries(process.env).filter(([k]) => !/^(DATABASE_|NATS_URL|TEST_|MCP_|AGENT_)/.test(k)),
      );
      const passwords = Object.fromEntries(
        DATABASE_LOGINS.map((l) => [databaseLoginEnv(l, 'PASSWORD'), randomBytes(20).toString('hex')]),
      );
      const setup = run(path.join(root, 'apps', 'launcher', 'dist', 'db-setup.js'), [], {
        ...base,
        ...passwords,
        DATABASE_URL: adminUrl,
        LOG_LEVEL: 'info',
      });
      procs.push(setup);
      assert.equal(await setup.exited, 0, setup.output());
      assert.match(setup.output(), /database roles and schemas ready/);
      assert.ok(!setup.output().includes(passwords.DATABASE_PASSWORD_SINK!), 'the setup logs no password');

      const names = roleNamesFor(new URL(adminUrl).pathname.slice(1));
      const url = (l: DatabaseLogin) => {
        const u = new URL(adminUrl);
        u.username = loginRoleName(names, l);
        u.password = passwords[databaseLoginEnv(l, 'PASSWORD')]!;
        return u.toString();
      };
      const processEnv = {
        ...base,
        NATS_URL: await testNatsUrl(),
        DATA_DIR: dir,
        LOG_LEVEL: 'info',
        [databaseLoginEnv('sink', 'URL')]: url('sink'),
        [databaseLoginEnv('relay', 'URL')]: url('relay'),
        [databaseLoginEnv('monitor', 'URL')]: url('monitor'),
      };
      // The doctor tries each login it is given, and names one that does not log in.
      const doctor = run(path.join(root, 'apps', 'launcher', 'dist', 'doctor.js'), [], processEnv);
      await doctor.exited;
      assert.match(
        doctor.output(),
        /ok +postgres +DATABASE_URL_RELAY, DATABASE_URL_MONITOR, DATABASE_URL_SINK log in/i,
        doctor.output(),
      );
      const wrong = run(path.join(root, 'apps', 'launcher', 'dist', 'doctor.js'), [], {
        ...processEnv,
        [databaseLoginEnv('relay', 'URL')]: url('relay').replace(/:[0-9a-f]{40}@/, ':wrong-password-0000@'),
      });
      assert.equal(await wrong.exited, 1);
      assert.match(
        wrong.output(),
        /FAIL +postgres +DATABASE_URL_RELAY: .*password authentication failed/i,
        wrong.output(),
      );
      const launcher = run(main, ['relay', 'monitor'], processEnv);
      procs.push(launcher);
      const up = await Promise.race([
        new Promise<boolean>((resolve) => {
          const t = setInterval(() => {
            if (launcher.output().includes('switchyard is up')) {
              clearInterval(t);
              resolve(true);
            }
          }, 200);
          void launcher.exited.then(() => {
            clearInterval(t);
            resolve(false);
          });
        }),
      ]);
      assert.ok(up, launcher.output().slice(-4000));
      assert.doesNotMatch(launcher.output(), /"level":(50|60)/, 'no error while starting');
      // It logged in as its logins: no backend of this database is the admin or the schema owner.
      const db = new pg.Client({ connectionString: adminUrl });
      await db.connect();
      try {
        const users = (
          await db.query<{ usename: string }>(
            `select distinct usename from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`,
          )
        ).rows.map((r) => r.usename);
        // The sink's pool connects on its first append: it may have no backend yet.
        const mine = (['monitor', 'relay', 'sink'] as const).map((l) => loginRoleName(names, l));
        for (const u of users) assert.ok(mine.includes(u), `a backend logged in as ${u}`);
        assert.ok(users.includes(mine[0]!) && users.includes(mine[1]!), users.join());
      } finally {
        await db.end();
      }
    },
  );
});
