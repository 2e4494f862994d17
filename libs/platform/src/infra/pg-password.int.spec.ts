import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { createPgClient, createPgPool, isConnectionError, PlainPasswordRefusedError } from './pg.js';
import { createLogger } from '../logger.js';
import { freePort } from './ports.js';
import { ensureDatabase, startEmbeddedPostgres } from './postgres.js';
import { provisionDatabaseRoles } from './roles.js';

const url = process.env.TEST_DATABASE_URL;

/** What a stand-in PostgreSQL on a port saw: each connection's startup, and every message after its password request. */
interface Seen {
  startups: number;
  /** Type bytes of the messages a client sent after the server asked for its password ('p' is a password). */
  afterAuthRequest: string[];
  /** Every byte the clients sent after the password request, to look for the password in. */
  bytes: Buffer;
}

/**
 * A stand-in PostgreSQL, as a local user could run on a free port: it refuses TLS, reads the
 * startup message, asks for the password in clear text (AuthenticationCleartextPassword, 3) or
 * as MD5 (5, with a salt), and records whatever comes back.
 */
async function standIn(ask: 'cleartext' | 'md5'): Promise<{ port: number; seen: Seen; server: Server }> {
  const seen: Seen = { startups: 0, afterAuthRequest: [], bytes: Buffer.alloc(0) };
  const server = createServer((socket: Socket) => {
    let buf = Buffer.alloc(0);
    let asked = false;
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (asked) {
        seen.bytes = Buffer.concat([seen.bytes, chunk]);
        while (buf.length >= 5) {
          const len = buf.readUInt32BE(1);
          if (buf.length < len + 1) break;
          seen.afterAuthRequest.push(String.fromCharCode(buf[0]!));
          buf = buf.subarray(len + 1);
        }
        return;
      }
      while (buf.length >= 8) {
        const len = buf.readUInt32BE(0);
        if (buf.length < len) return;
        const code = buf.readUInt32BE(4);
        buf = buf.subarray(len);
        if (code === 80877103) {
          socket.write('N'); // SSLRequest: no TLS here
          continue;
        }
        seen.startups++;
        asked = true;
        const request =
          ask === 'cleartext'
            ? Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])
            : Buffer.from([0x52, 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4]);
        socket.write(request);
        return;
      }
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port, seen, server };
}

const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
  });
const settle = () => new Promise((r) => setTimeout(r, 200));
const secret = 'not-for-a-stand-in-0123456789abcdef';

describe('no PostgreSQL password goes to a server that asks for it in clear text or MD5 without TLS', () => {
  it('a pool gets a clear error and the stand-in no password message', async () => {
    const fake = await standIn('cleartext');
    const pool = createPgPool(
      { connectionString: `postgres://switchyard:${secret}@127.0.0.1:${fake.port}/switchyard`, max: 1 },
      { name: 'plain-refused' },
    );
    try {
      const err = await pool.query('select 1').then(
        () => assert.fail('the query ran on a stand-in'),
        (e: unknown) => e as Error,
      );
      assert.ok(err instanceof PlainPasswordRefusedError, `not the refusal: ${String(err)}`);
      assert.match(
        err.message,
        new RegExp(
          `the server at 127\\.0\\.0\\.1:${fake.port} asked for the password in clear text; Switchyard sends it only by SCRAM or over TLS`,
        ),
      );
      assert.ok(isConnectionError(err), 'retryable as a lost connection (the real server may be back later)');
      await settle();
      assert.equal(fake.seen.startups, 1);
      assert.deepEqual(fake.seen.afterAuthRequest, [], 'the client sent nothing after the password request');
      assert.equal(fake.seen.bytes.includes(secret), false);
    } finally {
      await pool.end();
      await close(fake.server);
    }
  });

  it('a dedicated client refuses an MD5 request the same way', async () => {
    const fake = await standIn('md5');
    const client = createPgClient(
      { connectionString: `postgres://switchyard:${secret}@127.0.0.1:${fake.port}/switchyard` },
      { name: 'md5-refused' },
    );
    try {
      await assert.rejects(
        client.connect(),
        (e: Error) => e instanceof PlainPasswordRefusedError && /MD5/.test(e.message),
      );
      await settle();
      assert.deepEqual(fake.seen.afterAuthRequest, []);
    } finally {
      await client.end().catch(() => undefined);
      await close(fake.server);
    }
  });

  it('with the escape (DATABASE_ALLOW_PLAIN_PASSWORD) the password goes, for an external server that needs it', async () => {
    const fake = await standIn('cleartext');
    const client = createPgClient(
      {
        connectionString: `postgres://switchyard:${secret}@127.0.0.1:${fake.port}/switchyard`,
        connectionTimeoutMillis: 1000,
      },
      { name: 'plain-allowed', allowPlainPassword: true },
    );
    try {
      await assert.rejects(client.connect());
      assert.deepEqual(fake.seen.afterAuthRequest, ['p']);
      assert.ok(fake.seen.bytes.includes(secret));
    } finally {
      await client.end().catch(() => undefined);
      await close(fake.server);
    }
  });

  it("the embedded server's probe sends a stand-in on its port no password", async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    const scratch = mkdtempSync(path.resolve('.tmp', 'pg-standin-'));
    chmodSync(scratch, 0o755);
    const fake = await standIn('cleartext');
    try {
      // Not our cluster's server (no postmaster.pid of the data dir names the port): not even a login.
      await assert.rejects(
        startEmbeddedPostgres({ dataDir: path.join(scratch, 'postgres'), port: fake.port, fallback: 'off' }),
        /port \d+ is taken by something that is not our PostgreSQL/,
      );
      await settle();
      assert.equal(fake.seen.startups, 0, 'the probe presented no login to a listener that is not ours');
      // A caller that gives the password vouches for the server: the login goes by SCRAM only.
      await assert.rejects(
        startEmbeddedPostgres({
          dataDir: path.join(scratch, 'postgres'),
          port: fake.port,
          password: secret,
          fallback: 'off',
        }),
        /not our PostgreSQL/,
      );
      await settle();
      assert.ok(fake.seen.startups >= 1);
      assert.deepEqual(fake.seen.afterAuthRequest, [], 'no password message');
      assert.equal(fake.seen.bytes.includes(secret), false);
    } finally {
      await close(fake.server);
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe(
  'against the real embedded PostgreSQL',
  { skip: url ? false : 'TEST_DATABASE_URL is not set (run through scripts/run-tests.mjs)' },
  () => {
    let componentUrl: string;

    before(async () => {
      const db = await ensureDatabase(url!, `plain_password_${process.pid}`);
      const roles = await provisionDatabaseRoles(db, { logger: createLogger('pg-password-spec', 'warn') });
      assert.ok(roles, 'the roles were provisioned');
      componentUrl = roles.urls.components.relay;
    });

    it('the SCRAM login of the superuser and of a component role works', async () => {
      for (const target of [url!, componentUrl]) {
        const pool = createPgPool({ connectionString: target, max: 1 }, { name: 'scram' });
        try {
          assert.equal((await pool.query<{ one: number }>('select 1 as one')).rows[0]?.one, 1);
        } finally {
          await pool.end();
        }
      }
    });

    it("a component role can neither connect to nor make temporary tables in the cluster's postgres and template1 databases", async () => {
      // Its own database: no temporary tables (revoked from PUBLIC there by the provisioning).
      const own = createPgClient({ connectionString: componentUrl }, { name: 'own-db' });
      await own.connect();
      try {
        await assert.rejects(
          own.query('create temp table t_own (a int)'),
          (e: { code?: string }) => e.code === '42501',
        );
      } finally {
        await own.end();
      }
      for (const database of ['postgres', 'template1']) {
        const u = new URL(componentUrl);
        u.pathname = `/${database}`;
        const client = createPgClient({ connectionString: u.toString() }, { name: `into-${database}` });
        await assert.rejects(
          client.connect().then(() => client.query('create temp table t_other (a int)')),
          (e: { code?: string; message?: string }) => e.code === '42501',
          `${database}: a component role got in`,
        );
        await client.end().catch(() => undefined);
      }
      // The superuser still connects there (the launcher, the helpers that create databases).
      const admin = createPgClient({ connectionString: url! }, { name: 'admin-postgres' });
      await admin.connect();
      try {
        await admin.query('create temp table t_admin (a int)');
      } finally {
        await admin.end();
      }
    });
  },
);
