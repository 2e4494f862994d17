/**
 * Three dispatcher processes sharing the delegations by partition leases, one SIGKILLed mid-run.
 *
 * Processes (one PostgreSQL and one nats-server, owned by A):
 *   A = `relay gateway` (owns the infrastructure)
 *   O = `agents mcp-servers connectors workflows monitor` (the other roles, once)
 *   D1, D2, D3 = `dispatcher` each
 * SCALE_DELEGATIONS delegations (default 300 here; `npm run scale:dispatchers` runs 2,000) of a
 * cheap task type go through the gateway with an Idempotency-Key each (asked again with the same
 * key on a refusal); when a third of them are submitted, D2 is SIGKILLed and not restarted: its
 * partitions are taken over by D1 and D3 once its leases expire (DISPATCHER_LEASE_TTL_MS).
 *
 * Checked in the event store afterwards: one task per key; every task completed exactly once
 * (one TaskCompleted, nothing after it, dense revisions); assignment numbers 1..n without a
 * repeat, a second assignment only after a TaskRetryScheduled; no slot row left in
 * `delegation.assignments`; the partitions were held by 3 dispatchers before the kill and by the
 * 2 survivors after it, with higher epochs for the ones taken over.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import pg from 'pg';
import { freePort, natsUserSeed } from '@switchyard/platform';
import { gatewayRequest } from './support.js';
import { embeddedDatabaseUrl, newAdminKey, Proc, sleep, systemEnv, waitReady } from './launcher.js';
import { scratchDataDir } from '@switchyard/testing';

const DELEGATIONS = Number(process.env.SCALE_DELEGATIONS ?? 300);
const PARTITIONS = 12;
const LEASE_TTL_MS = 4_000;

describe(`scale-out: 3 dispatchers, ${DELEGATIONS} delegations, one dispatcher SIGKILLed`, () => {
  const adminKey = newAdminKey();
  const auth = { authorization: `Bearer ${adminKey}` };
  let dataDir: string;
  let base: string;
  let databaseUrl: string;
  let a: Proc;
  let o: Proc;
  let dispatchers: Proc[] = [];

  const http = (method: string, url: string, body?: unknown, headers: Record<string, string> = {}) =>
    gatewayRequest(base, { ...auth, ...headers }, method, url, body).catch((e: unknown) => ({
      status: 0,
      body: String(e),
    }));

  before(async () => {
    const t0 = Date.now();
    dataDir = scratchDataDir('e2e-scale-');
    const gatewayPort = await freePort();
    const pgPort = await freePort();
    const natsPort = await freePort();
    base = `http://127.0.0.1:${gatewayPort}`;
    databaseUrl = embeddedDatabaseUrl(dataDir, pgPort);
    const common = await systemEnv(dataDir, adminKey, {
      RATE_LIMIT_ENABLED: 'false',
      MCP_AUTH_TOKEN: randomBytes(24).toString('hex'),
      AI_AGENT_AUTH_TOKEN: randomBytes(24).toString('hex'),
      // The processes that join the owner's nats-server need its token: the owner uses this one.
      // An nkey seed: every process presents it to the one embedded nats-server by signing, never in clear.
      NATS_TOKEN: natsUserSeed(randomBytes(32).toString('base64url')),
      DISPATCHER_PARTITIONS: String(PARTITIONS),
      DISPATCHER_LEASE_TTL_MS: String(LEASE_TTL_MS),
      DISPATCHER_LEASE_TICK_MS: '500',
    });
    a = new Proc('A (relay gateway)', ['relay', 'gateway'], {
      ...common,
      GATEWAY_PORT: String(gatewayPort),
      EMBEDDED_PG_PORT: String(pgPort),
      EMBEDDED_NATS_PORT: String(natsPort),
    });
    const joined = { ...common, DATABASE_URL: databaseUrl, NATS_URL: `nats://127.0.0.1:${natsPort}` };
    o = new Proc(
      'O (agents mcp-servers connectors workflows monitor)',
      ['agents', 'mcp-servers', 'connectors', 'workflows', 'monitor'],
      joined,
    );
    dispatchers = [1, 2, 3].map((i) => new Proc(`D${i} (dispatcher)`, ['dispatcher'], joined));
    a.start();
    await a.waitUp(120_000);
    o.start();
    for (const d of dispatchers) d.start();
    await Promise.all([o, ...dispatchers].map((p) => p.waitUp(150_000)));
    await waitReady(base, a);
    console.log(`# scale-dispatchers: system up in ${Date.now() - t0} ms`);
  });

  after(async () => {
    await Promise.all(dispatchers.map((p) => p.stop()));
    await o?.stop();
    await a?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('every task completes exactly once; partitions move to the survivors; no assignment twice', async () => {
    const db = new pg.Client({ connectionString: databaseUrl });
    db.on('error', () => undefined);
    await db.connect();
    const owners = async () =>
      (
        await db.query<{ owner: string | null; partition: number; epoch: string }>(
          `select owner, partition, epoch from delegation.dispatcher_leases where expires_at > now() order by partition`,
        )
      ).rows;
    try {
      // 1. The three dispatchers share the partitions (each gets its share within a few ticks).
      for (let i = 0; ; i++) {
        const held = new Set((await owners()).map((r) => r.owner));
        if (held.size === 3 && (await owners()).length === PARTITIONS) break;
        if (i > 120) assert.fail(`partitions not shared by 3 dispatchers: ${JSON.stringify(await owners())}`);
        await sleep(250);
      }
      const before = await owners();

      // 2. Submit in waves of 25 through the gateway; kill D2 after a third.
      const tag = randomBytes(3).toString('hex');
      const taskOfKey = new Map<string, string>();
      let refusals = 0;
      const delegate = async (key: string) => {
        for (let attempt = 0; ; attempt++) {
          const r = await http(
            'POST',
            '/api/v1/integration/agents/delegate',
            {
              task_type: 'support_response',
              context: { query: `where is my order ${key}` },
              priority: 'normal',
              timeout_ms: 20_000,
            },
            { 'idempotency-key': key },
          );
          if (r.status === 202 || r.status === 200) {
            const seen = taskOfKey.get(key);
            assert.ok(seen === undefined || seen === r.body.task_id, `${key} named two tasks`);
            return void taskOfKey.set(key, r.body.task_id);
          }
          refusals++;
          if (attempt > 200) assert.fail(`delegate ${key}: ${r.status} ${JSON.stringify(r.body)}`);
          await sleep(200);
        }
      };
      const t0 = Date.now();
      let killedAt = 0;
      const wave = 25;
      for (let i = 0; i * wave < DELEGATIONS; i++) {
        const jobs = Array.from({ length: Math.min(wave, DELEGATIONS - i * wave) }, (_, k) =>
          delegate(`scale-${tag}-${i * wave + k}`),
        );
        if (!killedAt && (i + 1) * wave >= DELEGATIONS / 3) {
          // Mid-wave: the victim has submissions and attempts in flight.
          await sleep(150);
          await dispatchers[1]!.kill('SIGKILL');
          killedAt = Date.now();
        }
        await Promise.all(jobs);
      }
      const submittedMs = Date.now() - t0;
      assert.equal(taskOfKey.size, DELEGATIONS);
      assert.equal(new Set(taskOfKey.values()).size, DELEGATIONS, 'one task per idempotency key');

      // 3. Wait for every task to end (failing only when nothing moves for 60 s).
      const ids = [...taskOfKey.values()].map((id) => `task-${id}`);
      const endedCount = async () =>
        Number(
          (
            await db.query<{ n: string }>(
              `select count(distinct stream_id) as n from eventstore.events where type in ('TaskCompleted','TaskFailed','TaskTimedOut','TaskCanceled') and stream_id = any($1::text[])`,
              [ids],
            )
          ).rows[0]!.n,
        );
      for (let last = -1, lastMoved = Date.now(); ;) {
        const n = await endedCount();
        if (n >= DELEGATIONS) break;
        if (n !== last) [last, lastMoved] = [n, Date.now()];
        if (Date.now() - lastMoved > 60_000) assert.fail(`${n}/${DELEGATIONS} tasks ended, none for 60 s`);
        await sleep(500);
      }
      const doneMs = Date.now() - t0;
      await sleep(1_000); // anything wrongly appended after an end would show up now

      // 4. The events: exactly one completion each, nothing after it, assignments never repeated.
      const rows = await db.query<{ stream_id: string; revision: string; type: string; data: any }>(
        `select stream_id, revision, type, data from eventstore.events where stream_id = any($1::text[]) order by stream_id, revision`,
        [ids],
      );
      const by = new Map<string, { revision: number; type: string; data: any }[]>();
      for (const r of rows.rows)
        by.set(r.stream_id, [
          ...(by.get(r.stream_id) ?? []),
          { revision: Number(r.revision), type: r.type, data: r.data },
        ]);
      let retried = 0;
      for (const id of ids) {
        const ev = by.get(id) ?? [];
        assert.deepEqual(
          ev.map((e) => e.revision),
          ev.map((_, k) => k),
          `dense revisions for ${id}`,
        );
        assert.equal(
          ev.filter((e) => e.type === 'TaskCompleted').length,
          1,
          `one completion for ${id}: ${ev.map((e) => e.type)}`,
        );
        assert.equal(ev.at(-1)!.type, 'TaskCompleted', `nothing after the completion of ${id}`);
        const assigned = ev.filter((e) => e.type === 'TaskAssigned').map((e) => e.data.assignment as number);
        assert.deepEqual(
          assigned,
          assigned.map((_, k) => k + 1),
          `assignments 1..n, none repeated, for ${id}`,
        );
        const retries = ev.filter((e) => e.type === 'TaskRetryScheduled').length;
        assert.equal(assigned.length, retries + 1, `a second assignment only after a retry was scheduled for ${id}`);
        const started = ev.filter((e) => e.type === 'TaskStarted').map((e) => e.data.assignment as number);
        assert.equal(new Set(started).size, started.length, `each assignment started at most once for ${id}`);
        if (retries > 0) retried++;
      }
      const slots = await db.query<{ n: string }>(`select count(*) as n from delegation.assignments`);
      assert.equal(Number(slots.rows[0]!.n), 0, 'no agent slot left behind');

      // 5. The partitions: D2's went to the survivors, with a higher epoch.
      const afterKill = await owners();
      assert.equal(afterKill.length, PARTITIONS);
      assert.equal(
        new Set(afterKill.map((r) => r.owner)).size,
        2,
        `held by the 2 survivors: ${JSON.stringify(afterKill)}`,
      );
      const victim = new Set(before.filter((r) => !afterKill.some((x) => x.owner === r.owner)).map((r) => r.owner));
      assert.equal(victim.size, 1);
      const moved = before.filter((r) => victim.has(r.owner));
      for (const m of moved)
        assert.ok(
          Number(afterKill.find((r) => r.partition === m.partition)!.epoch) > Number(m.epoch),
          `partition ${m.partition} taken over with a new epoch`,
        );
      console.log(
        `# scale-dispatchers: ${DELEGATIONS} delegations over 3 dispatchers, D2 SIGKILLed after ${Math.round((killedAt - t0) / 1000)} s; ` +
          `submitted in ${submittedMs} ms (${refusals} refusals asked again), all completed once in ${doneMs} ms; ` +
          `${retried} retried after the kill; ${moved.length} partitions taken over; 0 slots left`,
      );
    } finally {
      await db.end().catch(() => undefined);
    }
  });
});
