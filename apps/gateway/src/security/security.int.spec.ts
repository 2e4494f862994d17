import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Controller, Get, Module } from '@nestjs/common';
import { pino } from 'pino';
import type { Logger } from '@switchyard/platform';
import { freshDatabase, stopOwnInfra, testNatsUrl } from '@switchyard/testing';
import { currentActor } from '../http/context.js';
import { ApiRoute } from '../openapi/registry.js';
import { generateKey, parseKey } from './keys.js';
import { bearer, startSecuredGateway, type SecuredGateway } from './test-support.js';

const run = promisify(execFile);
const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cli.js');

// A feature route to see the actor inside a handler and a handler that takes too long.
@Controller('test-security')
class ProbeController {
  @Get('whoami')
  @ApiRoute({ role: 'viewer' })
  whoami() {
    return { actor: currentActor() };
  }

  @Get('slow')
  @ApiRoute({ role: 'viewer' })
  async slow() {
    await new Promise((r) => setTimeout(r, 3_000));
    return { late: true };
  }
}
@Module({ controllers: [ProbeController] })
class ProbeModule {}

const PROBLEM = 'application/problem+json';
const json = (body: unknown) => ({ 'content-type': 'application/json', body: JSON.stringify(body) });

describe('gateway security over real Postgres and NATS', () => {
  let g: SecuredGateway;
  let adminId: string;

  before(async () => {
    g = await startSecuredGateway('gw_security', {
      modules: [ProbeModule],
      requestTimeoutMs: 500,
      auth: { enabled: true, keyCacheTtlMs: 100 },
    });
    adminId = parseKey(g.adminKey)!.id;
  });
  after(async () => {
    await g?.close();
    await stopOwnInfra();
  });

  describe('first admin key', () => {
    it('is generated once, handed to the printer, and stored only as a hash', async () => {
      assert.equal(g.printed.length, 1);
      const events = await g.store.readAll({ streamPrefixes: ['apikey-'] });
      assert.equal(events.length, 1);
      assert.equal(events[0]!.type, 'ApiKeyCreated');
      assert.equal(events[0]!.metadata.actor, 'system:bootstrap');
      const secret = parseKey(g.adminKey)!.secret;
      assert.ok(!JSON.stringify(events).includes(secret), 'the secret must not be in the event log');
      const { rows } = await g.pool.query('select * from security.api_keys');
      assert.equal(rows.length, 1);
      assert.ok(!JSON.stringify(rows).includes(secret), 'the secret must not be in the table');
    });

    it('a second start on the same database makes no new key and prints nothing', async () => {
      const again = await startSecuredGateway('unused', {}, g.databaseUrl);
      try {
        assert.deepEqual(again.printed, []);
        assert.equal((await g.store.readAll({ streamPrefixes: ['apikey-'] })).length, 1);
      } finally {
        await again.close();
      }
    });
  });

  describe('first admin key on stdout', () => {
    it('the default printer shows it once in a banner on stdout; the info log never carries it', async () => {
      // A separate process, as a launcher runs it: pino logs (info) and the banner share stdout.
      const script = `
        import pg from 'pg';
        import { connect } from '@nats-io/transport-node';
        import { createLogger } from '@switchyard/platform';
        import { PostgresEventStore } from '@switchyard/event-store';
        import { createGateway } from '@switchyard/gateway';
        const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
        const store = new PostgresEventStore({ pool });
        await store.init();
        const nats = await connect({ servers: process.env.NATS_URL });
        const logger = createLogger('banner-test', 'info');
        const gw = await createGateway({ eventStore: store, pgPool: pool, nats, logger, config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' } }, { auth: { enabled: true } });
        await gw.listen(0, '127.0.0.1');
        await gw.close(); await nats.close(); await store.close(); await pool.end();
      `;
      const env = { ...process.env, DATABASE_URL: await freshDatabase('gw_banner'), NATS_URL: await testNatsUrl() };
      const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
      const out = await run(process.execPath, ['--input-type=module', '-e', script], { env, cwd: repoRoot });
      const keys = out.stdout.match(/sy_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/g) ?? [];
      assert.equal(keys.length, 1, `the key must appear exactly once, found ${keys.length}`);
      assert.match(out.stdout, /first admin API key \(shown once/);
      const logLines = out.stdout.split('\n').filter((l) => l.startsWith('{'));
      assert.ok(
        logLines.some((l) => l.includes('API key created')),
        'the creation is logged (without the key)',
      );
      // The secret is everything after `sy_<16 hex>_` (base64url: it may itself contain `_`).
      const secret = keys[0].slice('sy_'.length + 16 + 1);
      assert.equal(secret.length, 43);
      assert.ok(
        logLines.every((l) => !l.includes(secret)),
        'no log line carries the secret',
      );
    });
  });

  describe('authentication', () => {
    it('public routes answer without a key', async () => {
      for (const p of ['/livez', '/readyz', '/docs/openapi.json', '/docs']) {
        const res = await fetch(g.url + p);
        assert.equal(res.status, 200, p);
      }
    });

    it('no key: 401 problem with WWW-Authenticate: Bearer', async () => {
      const res = await fetch(`${g.url}/api/v1/events`);
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal(res.headers.get('content-type')?.split(';')[0], PROBLEM);
      const body = (await res.json()) as { code: string };
      assert.equal(body.code, 'unauthorized');
    });

    it('no key with a body (large, not JSON): the same 401, and the connection serves the next request', async () => {
      const big = JSON.stringify({ name: 'x', role: 'viewer', pad: 'p'.repeat(900_000) });
      for (const body of [big, '{"name": not json', big.replaceAll('p', '\\u0000')]) {
        const res = await fetch(`${g.url}/api/v1/admin/api-keys`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        assert.equal(res.status, 401);
        assert.equal(((await res.json()) as { code: string }).code, 'unauthorized');
      }
      // With a key, a body is read and checked as before: its fault is named.
      const bad = await fetch(`${g.url}/api/v1/admin/api-keys`, {
        method: 'POST',
        headers: { ...bearer(g.adminKey), 'content-type': 'application/json' },
        body: '{"name": not json',
      });
      assert.equal(bad.status, 400);
      const made = await fetch(`${g.url}/api/v1/admin/api-keys`, {
        method: 'POST',
        headers: { ...bearer(g.adminKey), 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'after-keyless-bodies', role: 'viewer' }),
      });
      assert.equal(made.status, 201);
    });

    it('HEAD on a streaming route is 405 at once: it opens no stream that would hold a place of the share', async () => {
      for (let i = 0; i < 30; i++) {
        const res = await fetch(`${g.url}/api/v1/events/stream`, { method: 'HEAD', headers: bearer(g.adminKey) });
        assert.equal(res.status, 405);
        assert.equal(res.headers.get('allow'), 'GET');
      }
      // Past the share's 20 (had each held a stream): a GET still gets its stream.
      const ctl = new AbortController();
      const live = await fetch(`${g.url}/api/v1/events/stream`, { headers: bearer(g.adminKey), signal: ctl.signal });
      assert.equal(live.status, 200);
      ctl.abort();
      await live.body?.cancel().catch(() => undefined);
    });

    it('a wrong, malformed or unknown key: 401 invalid_token', async () => {
      const wrongSecret = g.adminKey.slice(0, -3) + (g.adminKey.endsWith('AAA') ? 'BBB' : 'AAA');
      for (const key of [wrongSecret, 'nonsense', generateKey().key]) {
        const res = await fetch(`${g.url}/api/v1/events`, { headers: bearer(key) });
        assert.equal(res.status, 401, key);
        assert.match(res.headers.get('www-authenticate') ?? '', /invalid_token/);
      }
    });

    it('x-api-key works like Authorization: Bearer, and the handler sees the actor', async () => {
      const res = await fetch(`${g.url}/test-security/whoami`, { headers: { 'x-api-key': g.adminKey } });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { actor: `apikey:${adminId}` });
    });
  });

  describe('roles', () => {
    it('a viewer reads but cannot use admin routes (403 problem)', async () => {
      const viewer = await g.makeKey('viewer');
      assert.equal((await fetch(`${g.url}/api/v1/events?limit=1`, { headers: bearer(viewer.key) })).status, 200);
      const res = await fetch(`${g.url}/api/v1/admin/api-keys`, { headers: bearer(viewer.key) });
      assert.equal(res.status, 403);
      assert.equal(res.headers.get('content-type')?.split(';')[0], PROBLEM);
      assert.equal(((await res.json()) as { code: string }).code, 'forbidden');
      assert.equal((await fetch(`${g.url}/api/v1/audit`, { headers: bearer(viewer.key) })).status, 403);
    });

    it('an operator cannot make keys', async () => {
      const op = await g.makeKey('operator');
      const res = await fetch(`${g.url}/api/v1/admin/api-keys`, {
        method: 'POST',
        headers: { ...bearer(op.key), ...json({}) },
        body: json({ name: 'x', role: 'admin' }).body,
      });
      assert.equal(res.status, 403);
    });
  });

  describe('admin API', () => {
    it('creates a key (shown once), lists it without secret or hash, revokes it with the actor in the events', async () => {
      const res = await fetch(`${g.url}/api/v1/admin/api-keys`, {
        method: 'POST',
        headers: { ...bearer(g.adminKey), 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'ci', role: 'operator' }),
      });
      assert.equal(res.status, 201);
      const created = (await res.json()) as { id: string; key: string; role: string; createdBy: string };
      assert.equal(created.role, 'operator');
      assert.equal(created.createdBy, `apikey:${adminId}`);
      assert.equal(parseKey(created.key)?.id, created.id);

      const list = (await (await fetch(`${g.url}/api/v1/admin/api-keys`, { headers: bearer(g.adminKey) })).json()) as {
        keys: Record<string, unknown>[];
      };
      const listed = list.keys.find((k) => k.id === created.id);
      assert.ok(listed);
      assert.equal('key' in listed || 'hash' in listed, false);

      assert.equal((await fetch(`${g.url}/test-security/whoami`, { headers: bearer(created.key) })).status, 200);
      const del = await fetch(`${g.url}/api/v1/admin/api-keys/${created.id}`, {
        method: 'DELETE',
        headers: bearer(g.adminKey),
      });
      assert.equal(del.status, 200);
      assert.equal(((await del.json()) as { revokedBy: string }).revokedBy, `apikey:${adminId}`);
      // Revoked on this instance: refused at once.
      assert.equal((await fetch(`${g.url}/test-security/whoami`, { headers: bearer(created.key) })).status, 401);
      assert.equal(
        (await fetch(`${g.url}/api/v1/admin/api-keys/${created.id}`, { method: 'DELETE', headers: bearer(g.adminKey) }))
          .status,
        409,
      );
      assert.equal(
        (
          await fetch(`${g.url}/api/v1/admin/api-keys/0000000000000000`, {
            method: 'DELETE',
            headers: bearer(g.adminKey),
          })
        ).status,
        404,
      );

      const events = await g.store.readStream(`apikey-${created.id}`);
      assert.deepEqual(
        events.map((e) => [e.type, e.metadata.actor]),
        [
          ['ApiKeyCreated', `apikey:${adminId}`],
          ['ApiKeyRevoked', `apikey:${adminId}`],
        ],
      );
      assert.ok(!JSON.stringify(events).includes(parseKey(created.key)!.secret));
      const all = (await (
        await fetch(`${g.url}/api/v1/admin/api-keys?include_revoked=true`, { headers: bearer(g.adminKey) })
      ).json()) as { keys: { id: string }[] };
      assert.ok(all.keys.some((k) => k.id === created.id));
    });

    it('refuses to revoke the last active admin key (409)', async () => {
      const res = await fetch(`${g.url}/api/v1/admin/api-keys/${adminId}`, {
        method: 'DELETE',
        headers: bearer(g.adminKey),
      });
      assert.equal(res.status, 409);
      assert.equal((await fetch(`${g.url}/livez`)).status, 200);
    });

    it('validates the body (400 naming the field)', async () => {
      const res = await fetch(`${g.url}/api/v1/admin/api-keys`, {
        method: 'POST',
        headers: { ...bearer(g.adminKey), 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'x', role: 'root' }),
      });
      assert.equal(res.status, 400);
      assert.ok(((await res.json()) as { errors: { path: string }[] }).errors.some((e) => e.path === 'role'));
    });

    it('lists keys in pages, oldest first: every key once across the pages, a bad cursor or limit is 400', async () => {
      for (let i = 0; i < 7; i++) await g.makeKey('viewer', `paged-${i}`);
      const list = async (query: string) => {
        const res = await fetch(`${g.url}/api/v1/admin/api-keys?${query}`, { headers: bearer(g.adminKey) });
        return { status: res.status, body: (await res.json()) as any };
      };
      const whole = await list('include_revoked=true');
      assert.equal(whole.status, 200);
      assert.equal(whole.body.next_cursor, null, 'the default page holds them all here');
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page = await list(`include_revoked=true&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(page.status, 200);
        assert.ok(page.body.keys.length <= 3);
        seen.push(...page.body.keys.map((k: { id: string }) => k.id));
        cursor = page.body.next_cursor;
        pages++;
      } while (cursor && pages < 100);
      assert.deepEqual(
        seen,
        whole.body.keys.map((k: { id: string }) => k.id),
        'the pages together are the whole list, in its order',
      );
      assert.equal(pages, Math.ceil(seen.length / 3));
      assert.equal((await list('cursor=0123456789abcdef')).status, 400, 'a cursor naming no key');
      assert.equal((await list('cursor=nope')).status, 400);
      assert.equal((await list('limit=0')).status, 400);
      assert.equal((await list('limit=1001')).status, 400);
    });
  });

  describe('what a key holds open', () => {
    /** `p`, or a failure after `ms` (a stream the gateway never ends would hold the file to its deadline). */
    const within = <T>(p: Promise<T>, ms: number): Promise<T> =>
      Promise.race([
        p,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms).unref()),
      ]);
    /** An open event stream of `key`; `ended` resolves, with the time, when the gateway ends it. */
    const openStream = async (key: string) => {
      const res = await fetch(`${g.url}/api/v1/events/stream`, { headers: bearer(key) });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      assert.equal((await reader.read()).done, false, 'the stream is open');
      const ended = (async () => {
        for (;;) if ((await reader.read().catch(() => ({ done: true }) as const)).done) return Date.now();
      })();
      return { ended };
    };

    it('an event stream ends when its key is revoked: through this gateway at once, by another process within the key TTL', async () => {
      const here = await g.makeKey('viewer', 'stream-here');
      const other = await g.makeKey('viewer', 'stream-other');
      const untouched = await g.makeKey('viewer', 'stream-untouched');
      const { ended: endedHere } = await openStream(here.key);
      const { ended: endedOther } = await openStream(other.key);
      const stillOpen = await fetch(`${g.url}/api/v1/events/stream`, { headers: bearer(untouched.key) });
      const t0 = Date.now();
      const del = await fetch(`${g.url}/api/v1/admin/api-keys/${here.id}`, {
        method: 'DELETE',
        headers: bearer(g.adminKey),
      });
      assert.equal(del.status, 200);
      assert.ok((await within(endedHere, 5_000)) - t0 < 2_000, 'ended by the revocation');
      // The CLI revokes the other key in its own process: the gateway finds it on its next check.
      const env = { ...process.env, DATABASE_URL: g.databaseUrl, LOG_LEVEL: 'silent' };
      await run(process.execPath, [cli, 'revoke', other.id], { env });
      const t1 = Date.now();
      assert.ok((await within(endedOther, 10_000)) - t1 < 5_000, 'ended after the other process revoked it');
      // Another key's stream is not touched.
      const reader = stillOpen.body!.getReader();
      const next = await Promise.race([
        reader.read().then((r) => (r.done ? 'ended' : 'data')),
        new Promise((r) => setTimeout(() => r('open'), 300)),
      ]);
      assert.notEqual(next, 'ended');
      await reader.cancel();
    });
  });

  describe('revocations reach every gateway as they commit', () => {
    it('a key revoked through another gateway or the CLI is refused here at once, not after this gateway caches it for a minute; also after its listener lost its connection', async () => {
      const slow = await startSecuredGateway(
        'unused',
        { modules: [ProbeModule], auth: { enabled: true, keyCacheTtlMs: 60_000 } },
        g.databaseUrl,
      );
      try {
        const whoami = (key: string) =>
          fetch(`${slow.url}/test-security/whoami`, { headers: bearer(key) }).then((r) => r.status);
        /** Milliseconds until the slow gateway refuses `key` (it would take 60 s by its cache alone). */
        const refusedWithin = async (key: string) => {
          const t0 = Date.now();
          while (Date.now() - t0 < 3_000) {
            if ((await whoami(key)) === 401) return Date.now() - t0;
            await new Promise((r) => setTimeout(r, 20));
          }
          return Infinity;
        };
        const viaGateway = await g.makeKey('viewer', 'revoked-elsewhere');
        assert.equal(await whoami(viaGateway.key), 200, 'cached by the slow gateway');
        /** Revoke through the other gateway (`g`). */
        const revokeThere = async (id: string) =>
          assert.equal(
            (await fetch(`${g.url}/api/v1/admin/api-keys/${id}`, { method: 'DELETE', headers: bearer(g.adminKey) }))
              .status,
            200,
          );
        await revokeThere(viaGateway.id);
        const a = await refusedWithin(viaGateway.key);
        assert.ok(a < 1_000, `refused ${a} ms after the other gateway revoked it`);

        const viaCli = await g.makeKey('viewer', 'revoked-by-cli');
        assert.equal(await whoami(viaCli.key), 200);
        const env = { ...process.env, DATABASE_URL: g.databaseUrl, LOG_LEVEL: 'silent' };
        await run(process.execPath, [cli, 'revoke', viaCli.id], { env });
        const b = await refusedWithin(viaCli.key);
        assert.ok(b < 1_000, `refused ${b} ms after the CLI revoked it`);

        // The listener's connection is cut: it listens again, and a revocation after that arrives as well.
        const cut = await g.pool.query(
          `select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'switchyard-gateway-key-revocations' and datname = current_database()`,
        );
        assert.ok((cut.rowCount ?? 0) >= 1, 'the listeners were found');
        const later = await g.makeKey('viewer', 'revoked-after-reconnect');
        assert.equal(await whoami(later.key), 200);
        await new Promise((r) => setTimeout(r, 1_500));
        const again = await g.pool.query(
          `select count(*)::int as n from pg_stat_activity where application_name = 'switchyard-gateway-key-revocations' and datname = current_database()`,
        );
        assert.ok(again.rows[0].n >= 2, `both gateways listen again (${again.rows[0].n})`);
        assert.equal(await whoami(later.key), 200, 'cached again after the reconnect');
        await revokeThere(later.id);
        const c = await refusedWithin(later.key);
        assert.ok(c < 1_000, `refused ${c} ms after a revocation made once it listened again`);
      } finally {
        await slow.close();
      }
      const left = await g.pool.query(
        `select count(*)::int as n from pg_stat_activity where application_name = 'switchyard-gateway-key-revocations' and datname = current_database()`,
      );
      assert.equal(left.rows[0].n, 1, 'a closed gateway lets its listener go');
    });
  });

  describe('CLI', () => {
    it('creates a key that works at once and revokes it; actor cli:<user>', async () => {
      const env = { ...process.env, DATABASE_URL: g.databaseUrl, LOG_LEVEL: 'silent' };
      const made = await run(process.execPath, [cli, 'create', '--role', 'operator', '--name', 'cli-test'], { env });
      const key = made.stdout.trim();
      const parsed = parseKey(key);
      assert.ok(parsed, `stdout carries only the key, got ${JSON.stringify(made.stdout)}`);
      assert.equal((await fetch(`${g.url}/test-security/whoami`, { headers: bearer(key) })).status, 200);
      const [created] = await g.store.readStream(`apikey-${parsed.id}`);
      assert.match(String(created!.metadata.actor), /^cli:/);

      await run(process.execPath, [cli, 'revoke', parsed.id], { env });
      // Another process revoked it: this gateway notices within its cache TTL (100 ms here).
      let status = 0;
      for (let i = 0; i < 50 && status !== 401; i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = (await fetch(`${g.url}/test-security/whoami`, { headers: bearer(key) })).status;
      }
      assert.equal(status, 401);
      const listed = await run(process.execPath, [cli, 'list', '--all'], { env });
      assert.match(listed.stdout, new RegExp(`${parsed.id}\\toperator\\t.*revoked`));
      await assert.rejects(
        run(process.execPath, [cli, 'create', '--role', 'root', '--name', 'x'], { env }),
        (e: { code?: number }) => e.code === 2,
      );
    });
  });

  describe('audit', () => {
    it('lists who did what, filtered by actor and type, paged', async () => {
      const mine = (await (
        await fetch(`${g.url}/api/v1/audit?actor=${encodeURIComponent(`apikey:${adminId}`)}`, {
          headers: bearer(g.adminKey),
        })
      ).json()) as {
        entries: { actor: string; type: string; position: number }[];
      };
      assert.ok(mine.entries.length >= 4);
      assert.ok(mine.entries.every((e) => e.actor === `apikey:${adminId}`));
      // Newest first by default.
      assert.deepEqual(
        [...mine.entries].sort((a, b) => b.position - a.position),
        mine.entries,
      );

      const boot = (await (
        await fetch(`${g.url}/api/v1/audit?actor=system:bootstrap&type=ApiKeyCreated`, { headers: bearer(g.adminKey) })
      ).json()) as { entries: unknown[] };
      assert.equal(boot.entries.length, 1);

      const p1 = (await (
        await fetch(`${g.url}/api/v1/audit?limit=2&type=ApiKeyRevoked,ApiKeyCreated`, { headers: bearer(g.adminKey) })
      ).json()) as {
        entries: { position: number }[];
        next: { href: string } | null;
      };
      assert.equal(p1.entries.length, 2);
      assert.ok(p1.next);
      const p2 = (await (await fetch(g.url + p1.next.href, { headers: bearer(g.adminKey) })).json()) as {
        entries: { position: number }[];
      };
      assert.ok(p2.entries.length > 0 && p2.entries[0]!.position < p1.entries[1]!.position);

      const future = (await (
        await fetch(`${g.url}/api/v1/audit?since=2999-01-01T00:00:00Z`, { headers: bearer(g.adminKey) })
      ).json()) as { entries: unknown[] };
      assert.deepEqual(future.entries, []);
    });

    it("finds what the system did for a key under that key (onBehalfOf), and one correlation id's story", async () => {
      const person = `apikey:${'ab'.repeat(8)}`;
      const corr = `audit-story-${Date.now()}`;
      const meta = (actor: string, extra: Record<string, unknown> = {}) => ({
        correlationId: corr,
        actor,
        timestamp: new Date().toISOString(),
        ...extra,
      });
      // As the engine records a schedule's start, the connectors a step's call, the dispatcher a step's task.
      await g.store.append(`workflow_execution-${corr}`, [
        {
          type: 'WorkflowStarted',
          data: { definitionId: 'd', onBehalfOf: person },
          metadata: meta('automation:trigger'),
        },
      ]);
      await g.store.append(`mcpserver-audit-${corr}`, [
        {
          type: 'McpToolCalled',
          data: { server: 's', tool: 't', on_behalf_of: person },
          metadata: meta('system:orchestrator'),
        },
      ]);
      await g.store.append(`task-${corr}`, [
        {
          type: 'TaskSubmitted',
          data: { task_type: 'x' },
          metadata: meta('system:orchestrator', { onBehalfOf: person }),
        },
        { type: 'TaskQueued', data: {}, metadata: meta('system:dispatcher') },
      ]);
      const get = async (q: string) => {
        const res = await fetch(`${g.url}/api/v1/audit?${q}`, { headers: bearer(g.adminKey) });
        assert.equal(res.status, 200);
        return ((await res.json()) as { entries: { type: string; actor: string; onBehalfOf: string | null }[] })
          .entries;
      };
      const forPerson = await get(`actor=${encodeURIComponent(person)}`);
      assert.deepEqual(forPerson.map((e) => [e.type, e.actor, e.onBehalfOf]).reverse(), [
        ['WorkflowStarted', 'automation:trigger', person],
        ['McpToolCalled', 'system:orchestrator', person],
        ['TaskSubmitted', 'system:orchestrator', person],
      ]);
      const story = await get(`correlation_id=${corr}&direction=forwards`);
      assert.deepEqual(
        story.map((e) => e.type),
        ['WorkflowStarted', 'McpToolCalled', 'TaskSubmitted', 'TaskQueued'],
      );
      assert.equal(story[3]!.onBehalfOf, null);
      // The filter is kept on the next page's link.
      const res = await fetch(`${g.url}/api/v1/audit?correlation_id=${corr}&limit=1`, {
        headers: bearer(g.adminKey),
      });
      const page = (await res.json()) as { next: { href: string } | null };
      assert.match(page.next!.href, new RegExp(`correlation_id=${corr}`));
    });
  });

  describe('request timeout', () => {
    it('a handler slower than the timeout gets a 504 problem, and the gateway keeps serving', async () => {
      const res = await fetch(`${g.url}/test-security/slow`, { headers: bearer(g.adminKey) });
      assert.equal(res.status, 504);
      assert.equal(res.headers.get('content-type')?.split(';')[0], PROBLEM);
      assert.equal(((await res.json()) as { code: string }).code, 'timeout');
      assert.equal((await fetch(`${g.url}/livez`)).status, 200);
    });

    it('slow requests started together each get their 504, and the quick ones among them their answer', async () => {
      // One deadline queue serves every request: the quick ones leave it when answered, the
      // slow ones behind and before them still time out.
      const slow = () => fetch(`${g.url}/test-security/slow`, { headers: bearer(g.adminKey) }).then((r) => r.status);
      const quick = () => fetch(`${g.url}/test-security/whoami`, { headers: bearer(g.adminKey) }).then((r) => r.status);
      const statuses = await Promise.all([slow(), quick(), slow(), quick(), slow()]);
      assert.deepEqual(statuses, [504, 200, 504, 200, 504]);
      // The queue is empty again and re-arms for the next slow request.
      assert.equal(await slow(), 504);
    });
  });
});

describe('SWITCHYARD_ADMIN_KEY and rate limits', () => {
  const envKey = generateKey().key;
  let g: SecuredGateway;

  before(async () => {
    g = await startSecuredGateway('gw_ratelimit', {
      auth: { enabled: true, adminKey: envKey },
      rateLimit: {
        perKey: { points: 3, durationSec: 60 },
        perIp: { points: 1000, durationSec: 60 },
        authFailuresPerIp: { points: 2, durationSec: 60 },
      },
    });
  });
  after(async () => {
    await g?.close();
  });

  it('the env key is the admin key; nothing is generated or printed', async () => {
    assert.deepEqual(g.printed, []);
    const events = await g.store.readAll({ streamPrefixes: ['apikey-'] });
    assert.deepEqual(
      events.map((e) => [e.type, e.data && (e.data as { id: string }).id]),
      [['ApiKeyCreated', parseKey(envKey)!.id]],
    );
  });

  it('per key: the request over the limit gets 429 with Retry-After; another key is not affected', async () => {
    const a = await g.makeKey('viewer'); // uses the admin key once
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await fetch(`${g.url}/api/v1/events?limit=1`, { headers: bearer(a.key) })).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    const res = await fetch(`${g.url}/api/v1/events?limit=1`, { headers: bearer(a.key) });
    assert.equal(res.status, 429);
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    assert.equal(res.headers.get('content-type')?.split(';')[0], PROBLEM);
    assert.equal(((await res.json()) as { code: string }).code, 'rate_limited');
    assert.equal((await fetch(`${g.url}/api/v1/events?limit=1`, { headers: bearer(envKey) })).status, 200);
  });

  it('guessing one key from one address is throttled (429); probes, other keys and valid keys from that address are not', async () => {
    const target = parseKey(envKey)!;
    const wrong = `sy_${target.id}_${generateKey().key.slice(-43)}`;
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push((await fetch(`${g.url}/api/v1/events`, { headers: bearer(wrong) })).status);
    assert.deepEqual(statuses, [401, 401, 429]);
    const res = await fetch(`${g.url}/api/v1/events`, { headers: bearer(wrong) });
    assert.equal(res.status, 429);
    assert.ok(res.headers.get('retry-after'));
    for (const p of ['/livez', '/readyz'])
      assert.equal((await fetch(g.url + p, { headers: bearer(wrong) })).status, 200, p);
    // Another key id from the same address is its own bucket; the valid key is never blocked.
    assert.equal((await fetch(`${g.url}/api/v1/events`, { headers: bearer(generateKey().key) })).status, 401);
    assert.equal((await fetch(`${g.url}/api/v1/events?limit=1`, { headers: bearer(envKey) })).status, 200);
  });
});

describe('invalid API keys in the log', () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) }) as unknown as Logger;
  let g: SecuredGateway;

  before(async () => {
    g = await startSecuredGateway(
      'gw_badkey_log',
      { rateLimit: { perIp: { points: 10_000, durationSec: 60 }, authFailuresPerIp: { points: 5, durationSec: 60 } } },
      undefined,
      undefined,
      logger,
    );
  });
  after(async () => {
    await g?.close();
  });

  it('a flood of wrong keys: one warning with the count per interval, its 429s logged at info and never as an invalid key', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 120; i++)
      statuses.push((await fetch(`${g.url}/api/v1/events`, { headers: bearer(generateKey().key) })).status);
    assert.ok(statuses.includes(401) && statuses.includes(429), `both answers: ${[...new Set(statuses)].join(',')}`);
    const warned = lines.filter((l) => l['msg'] === 'request with an invalid API key');
    assert.equal(warned.length, 1, 'one line within the interval');
    assert.equal(warned[0]!['invalidKeys'], 1);
    const requests = lines.filter((l) => l['msg'] === 'request completed' && l['path'] === '/api/v1/events');
    assert.equal(requests.length, 120, 'every request keeps its one request line');
    for (const r of requests) assert.equal(r['level'], r['status'] === 429 ? 30 : 40, JSON.stringify(r));
  });

  it("a request its key's role does not allow: the request line names the key and the address", async () => {
    const viewer = await g.makeKey('viewer', 'log-viewer');
    const res = await fetch(`${g.url}/api/v1/admin/api-keys`, {
      method: 'POST',
      headers: { ...bearer(viewer.key), 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'escalate', role: 'admin' }),
    });
    assert.equal(res.status, 403);
    const refused = lines.find(
      (l) => l['msg'] === 'request completed' && l['path'] === '/api/v1/admin/api-keys' && l['status'] === 403,
    );
    assert.ok(refused, 'the refusal is logged');
    assert.equal(refused['actor'], `apikey:${viewer.id}`);
    assert.match(String(refused['ip']), /127\.0\.0\.1/);
    assert.ok(!JSON.stringify(refused).includes(viewer.key), 'the key itself is not logged');
    const allowed = lines.find((l) => l['msg'] === 'request completed' && l['status'] === 201);
    assert.ok(allowed && !('ip' in allowed), 'an answered request carries no address');
  });
});
