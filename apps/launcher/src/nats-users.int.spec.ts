import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { Kvm } from '@nats-io/kv';
import {
  EVENTS_STREAM,
  EVENTS_STREAM_MAX_BYTES,
  MCP_CALLS_BUCKET,
  MCP_CALLS_MAX_BYTES,
  natsPasswordEnv,
  natsRoleUsers,
  progressSubjectSchema,
  taskExecuteInput,
  type NatsRoleUser,
} from '@switchyard/contracts';
import {
  closeNats,
  connectNats,
  newInbox,
  noticeBody,
  serviceClient,
  addService,
  type NatsConnection,
} from '@switchyard/messaging';
import {
  createLogger,
  findNatsServer,
  freePort,
  isNatsUserSeed,
  natsRolePasswordFile,
  natsUserSeed,
  parseConfig,
  probeNatsAuth,
  waitForPort,
} from '@switchyard/platform';
import { z } from 'zod';
import { startFakeNatsServer } from '@switchyard/testing';
import { startInfrastructure, type Infrastructure } from './infra.js';
import { COMPOSE_NATS_CONFIG } from './nats-users.js';
import { setUpNatsStreams } from './nats-streams.js';
import { Supervisor } from './supervisor.js';

const logger = createLogger('nats-users-int', 'silent');

/**
 * The embedded nats-server as the launcher starts it, with a user per role: each role's user may
 * do its role's part and nothing else. Every check pairs a refused call with the same call allowed
 * to the role that needs it, so a permission list that is too wide or too narrow fails here.
 */
describe('the roles’ own NATS users on the embedded nats-server', () => {
  let scratch: string;
  let supervisor: Supervisor;
  let infra: Infrastructure;
  const nc = {} as Record<NatsRoleUser, NatsConnection>;

  before(async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'nats-users-'));
    supervisor = new Supervisor({ logger });
    // A DATABASE_URL nobody connects to here: the infrastructure then starts nats-server only.
    const config = parseConfig({
      DATA_DIR: scratch,
      DATABASE_URL: 'postgres://unused@127.0.0.1:1/unused',
      EMBEDDED_NATS_PORT: String(await freePort()),
    });
    infra = await startInfrastructure(config, logger, supervisor);
    for (const user of natsRoleUsers)
      nc[user] = await connectNats({
        url: infra.natsUrl,
        name: `test-${user}`,
        logger,
        user: { user, pass: infra.natsRolePasswords[user]! },
      });
  });

  after(async () => {
    await Promise.all(Object.values(nc).map((c) => closeNats(c)));
    await supervisor?.stopAll();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** Answers `{}` on the subject from `server`'s connection; counts what reached it. */
  const serve = async (server: NatsConnection, subject: string) => {
    const seen = { n: 0 };
    const sub = server.subscribe(subject, {
      callback: (_err, m) => {
        seen.n++;
        m.respond('{"ok":true}');
      },
    });
    await server.flush();
    return { seen, stop: () => sub.unsubscribe() };
  };
  const asks = async (client: NatsConnection, subject: string): Promise<boolean> => {
    try {
      return (await client.request(subject, '{}', { timeout: 1_000 })).json<{ ok: boolean }>().ok;
    } catch {
      return false;
    }
  };

  /** How a subscription of `client` to `subject` ends: `PermissionViolationError` when the server refuses it. */
  const subscriptionEnd = async (client: NatsConnection, subject: string): Promise<string> => {
    const sub = client.subscribe(subject, { max: 1 });
    const ended = (async () => {
      try {
        for await (const _ of sub) return 'message';
        return 'ended';
      } catch (err) {
        return (err as Error).name;
      }
    })();
    await client.flush().catch(() => undefined);
    return ended;
  };

  it('makes an nkey seed per role once per data dir (0600) and the server takes each, and no other, nor one sent in clear', async () => {
    const port = Number(new URL(infra.natsUrl).port);
    for (const user of natsRoleUsers) {
      const file = path.join(scratch, 'nats', natsRolePasswordFile(user));
      assert.equal(statSync(file).mode & 0o777, 0o600, file);
      const seed = infra.natsRolePasswords[user]!;
      assert.ok(isNatsUserSeed(seed), user);
      assert.equal(readFileSync(file, 'utf8').trim(), seed, user);
      assert.equal(await probeNatsAuth(port, { seed }), 'accepted', user);
      assert.equal(await probeNatsAuth(port, { seed: natsUserSeed(`${seed}x`) }), 'refused', user);
      assert.equal(await probeNatsAuth(port, { user, pass: seed }), 'refused', user);
    }
  });

  it('an MCP tool: the gateway and the workflow engine may call it; agents, dispatcher, monitor and relay may not', async () => {
    const tool = await serve(nc.connectors, 'switchyard.svc.mcp.v1.database_writer.call_tool');
    try {
      assert.equal(await asks(nc.gateway, 'switchyard.svc.mcp.v1.database_writer.call_tool'), true);
      assert.equal(await asks(nc.workflows, 'switchyard.svc.mcp.v1.database_writer.call_tool'), true);
      for (const user of ['agents', 'dispatcher', 'monitor', 'relay'] as const)
        assert.equal(await asks(nc[user], 'switchyard.svc.mcp.v1.database_writer.call_tool'), false, user);
      assert.equal(tool.seen.n, 2, 'only the two allowed calls reached the tool');
      // The monitor probes the servers' health, and nothing else of theirs.
      const health = await serve(nc.connectors, 'switchyard.svc.mcp.v1.database.health');
      assert.equal(await asks(nc.monitor, 'switchyard.svc.mcp.v1.database.health'), true);
      health.stop();
    } finally {
      tool.stop();
    }
  });

  it('an agent: the dispatcher may send it a task and hear it started; the gateway and the engine go through the dispatcher', async () => {
    const agent = await serve(nc.agents, 'switchyard.svc.agent.v1.data_analyst.execute');
    const started = nc.dispatcher.subscribe('switchyard.svc.tasks.v1.started.t1', { max: 1 });
    await nc.dispatcher.flush();
    try {
      assert.equal(await asks(nc.dispatcher, 'switchyard.svc.agent.v1.data_analyst.execute'), true);
      for (const user of ['gateway', 'workflows', 'connectors', 'monitor'] as const)
        assert.equal(await asks(nc[user], 'switchyard.svc.agent.v1.data_analyst.execute'), false, user);
      assert.equal(agent.seen.n, 1);
      nc.agents.publish('switchyard.svc.tasks.v1.started.t1', '{"task_id":"t1"}');
      for await (const m of started) assert.equal(m.json<{ task_id: string }>().task_id, 't1');
      // Tasks go to the dispatcher from the gateway and the engine; an agent may not submit one.
      const tasks = await serve(nc.dispatcher, 'switchyard.svc.tasks.v1.execute');
      assert.equal(await asks(nc.gateway, 'switchyard.svc.tasks.v1.execute'), true);
      assert.equal(await asks(nc.workflows, 'switchyard.svc.tasks.v1.execute'), true);
      assert.equal(await asks(nc.agents, 'switchyard.svc.tasks.v1.execute'), false);
      assert.equal(await asks(nc.connectors, 'switchyard.svc.tasks.v1.execute'), false);
      tasks.stop();
      // Registering an external agent (its URL gets tasks) is the gateway's; the engine runs steps only.
      const register = await serve(nc.dispatcher, 'switchyard.svc.tasks.v1.register_agent');
      assert.equal(await asks(nc.gateway, 'switchyard.svc.tasks.v1.register_agent'), true);
      assert.equal(await asks(nc.workflows, 'switchyard.svc.tasks.v1.register_agent'), false);
      assert.equal(register.seen.n, 1);
      register.stop();
      // Only agents say a task started.
      const heard = nc.dispatcher.subscribe('switchyard.svc.tasks.v1.started.t2', { max: 1 });
      await nc.dispatcher.flush();
      nc.gateway.publish('switchyard.svc.tasks.v1.started.t2', '{"task_id":"forged"}');
      nc.agents.publish('switchyard.svc.tasks.v1.started.t2', '{"task_id":"t2"}');
      for await (const m of heard) assert.equal(m.json<{ task_id: string }>().task_id, 't2');
    } finally {
      agent.stop();
    }
  });

  it("serving is a role's own: nobody else may take the MCP, agent or tasks subjects", async () => {
    for (const [user, subject] of [
      ['gateway', 'switchyard.svc.mcp.v1.database.call_tool'],
      ['agents', 'switchyard.svc.mcp.v1.database.call_tool'],
      ['connectors', 'switchyard.svc.agent.v1.data_analyst.execute'],
      ['workflows', 'switchyard.svc.tasks.v1.execute'],
      ['relay', 'switchyard.svc.monitor.v1.health_report'],
    ] as const) {
      assert.equal(await subscriptionEnd(nc[user], subject), 'PermissionViolationError', `${user} on ${subject}`);
    }
  });

  it("answers come to the caller's own inboxes, which no other role may read; progress notices reach them", async () => {
    const inbox = newInbox(nc.gateway);
    assert.match(inbox, /^_INBOX\.gateway\./);
    assert.equal(progressSubjectSchema.safeParse(inbox).success, true);
    const notices = nc.gateway.subscribe(inbox, { max: 1 });
    await nc.gateway.flush();
    nc.dispatcher.publish(inbox, '{"state":"started"}');
    for await (const m of notices) assert.equal(m.json<{ state: string }>().state, 'started');
    assert.equal(await subscriptionEnd(nc.connectors, '_INBOX.gateway.>'), 'PermissionViolationError');
    // A caller may not have a worker publish its notices on a service subject.
    assert.equal(progressSubjectSchema.safeParse('switchyard.svc.mcp.v1.database_writer.call_tool').success, false);
    assert.equal(
      taskExecuteInput.safeParse({ task_type: 'x', idempotency_key: 'k', progress_subject: 'switchyard.alerts.X' })
        .success,
      false,
    );
  });

  it("JetStream: the connectors' call bucket is theirs, the events stream the relay's; no role may make or change a stream", async () => {
    // Made by the process holding the token before any role starts (setUpNatsStreams).
    const kv = await new Kvm(nc.connectors).create(MCP_CALLS_BUCKET, { ttl: 600_000, history: 1 });
    await kv.put('k1', '{"state":"done"}');
    assert.equal((await kv.get('k1'))?.string(), '{"state":"done"}');
    await assert.rejects(new Kvm(nc.gateway).open(MCP_CALLS_BUCKET).then((b) => b.get('k1')));
    const ack = await jetstream(nc.relay).publish('switchyard.events.task.TaskCompleted', '{}', { msgID: 'e1' });
    assert.equal(ack.stream, EVENTS_STREAM);
    assert.equal(await asks(nc.relay, 'switchyard.svc.tasks.v1.execute'), false);
    // Only the relay writes events.
    await assert.rejects(
      jetstream(nc.gateway).publish('switchyard.events.task.TaskCompleted', '{}', { timeout: 1_000 }),
    );
    // A stream's config runs with the account's rights: a relay that could widen its stream to
    // another role's inbox would read its answers; one that could republish would call a tool.
    const jsm = await jetstreamManager(nc.relay);
    await assert.rejects(
      jsm.streams.update(EVENTS_STREAM, { subjects: ['switchyard.events.>', '_INBOX.gateway.>'] }),
      /permission/i,
    );
    await assert.rejects(
      jsm.streams.add({
        name: 'REPUBLISH',
        subjects: ['switchyard.events.x.>'],
        republish: { src: '>', dest: 'switchyard.svc.mcp.v1.database_writer.call_tool' },
      }),
      /permission/i,
    );
    const kvm = await jetstreamManager(nc.connectors);
    await assert.rejects(kvm.streams.update(`KV_${MCP_CALLS_BUCKET}`, { max_msgs_per_subject: 5 }), /permission/i);
    await assert.rejects(new Kvm(nc.connectors).create('ANOTHER_BUCKET'), /permission/i);
    // Nor a consumer (its delivery subject, too, would run with the account's rights).
    await assert.rejects(
      kvm.consumers.add(`KV_${MCP_CALLS_BUCKET}`, { deliver_subject: 'switchyard.svc.mcp.v1.database.call_tool' }),
      /permission/i,
    );
  });

  it('the events stream and the call bucket have a size cap, set on streams made before it too', async () => {
    const own = await connectNats({ url: infra.natsUrl, name: 'caps-check', logger, token: infra.natsToken });
    try {
      const jsm = await jetstreamManager(own);
      assert.equal((await jsm.streams.info(EVENTS_STREAM)).config.max_bytes, EVENTS_STREAM_MAX_BYTES);
      const bucket = `KV_${MCP_CALLS_BUCKET}`;
      assert.equal((await jsm.streams.info(bucket)).config.max_bytes, MCP_CALLS_MAX_BYTES);
      // A writer of the bucket may not empty it with one rollup message.
      const kv = await new Kvm(nc.connectors).open(MCP_CALLS_BUCKET);
      await kv.put('keep-1', '{"state":"done"}');
      await assert.rejects(
        jetstream(nc.connectors).publish(`$KV.${MCP_CALLS_BUCKET}.wipe`, '', {
          headers: (() => {
            const h = natsHeaders();
            h.set('Nats-Rollup', 'all');
            return h;
          })(),
        }),
        /rollup/i,
      );
      assert.equal((await kv.get('keep-1'))?.string(), '{"state":"done"}');
      // A deployment from before the caps: its streams hold no limit until the next start sets them.
      await jsm.streams.update(bucket, { ...(await jsm.streams.info(bucket)).config, max_bytes: -1 });
      await jsm.streams.update(EVENTS_STREAM, { ...(await jsm.streams.info(EVENTS_STREAM)).config, max_bytes: -1 });
      await setUpNatsStreams(own, { replicas: 1, logger, eventsMaxBytes: 64 * 1024 * 1024 });
      assert.equal((await jsm.streams.info(bucket)).config.max_bytes, MCP_CALLS_MAX_BYTES);
      assert.equal((await jsm.streams.info(EVENTS_STREAM)).config.max_bytes, 64 * 1024 * 1024);
    } finally {
      await closeNats(own);
    }
  });

  it('a role cannot have JetStream deliver its stored message as a request or a notice where it may not publish', async () => {
    // JetStream answers a direct get to any reply subject, unchecked against the asker's rights:
    // the connectors may write their bucket and read it back directly, so they could have their
    // message delivered on the tasks service's subjects. The receiving side drops it.
    const subject = 'switchyard.svc.tasks.v1.register_agent';
    const startedSubject = 'switchyard.svc.tasks.v1.started.forged-test';
    assert.equal(await asks(nc.connectors, subject), false, 'the connectors may not publish there themselves');
    const reached: unknown[] = [];
    const tasks = await addService(nc.dispatcher, {
      name: 'tasks-forgery-test',
      version: '1.0.0',
      logger,
      endpoints: {
        register_agent: {
          subject,
          schema: z.unknown(),
          handler: (input) => {
            reached.push(input);
            return { ok: true };
          },
        },
      },
    });
    // What arrives on each subject, seen beside the endpoint; and what the notice reader makes of it.
    const arrived = { endpoint: 0 };
    const notices: unknown[] = [];
    const watch = nc.dispatcher.subscribe(subject, { callback: () => void arrived.endpoint++ });
    const started = nc.dispatcher.subscribe(startedSubject, { callback: (_e, m) => void notices.push(noticeBody(m)) });
    await nc.dispatcher.flush();
    try {
      const kv = await new Kvm(nc.connectors).open(MCP_CALLS_BUCKET);
      const forged = { name: 'evil', url: 'https://attacker.example/agent', task_id: 't', attempt: 1 };
      await kv.put('forged', JSON.stringify(forged));
      const directGet = `$JS.API.DIRECT.GET.KV_${MCP_CALLS_BUCKET}.$KV.${MCP_CALLS_BUCKET}.forged`;
      for (const reply of [subject, startedSubject]) nc.connectors.publish(directGet, '', { reply });
      // A JetStream acknowledgement sent there (a reply-less message of JetStream's own making), too.
      nc.connectors.publish(`$KV.${MCP_CALLS_BUCKET}.forged2`, JSON.stringify(forged), { reply: subject });
      for (let i = 0; i < 100 && (arrived.endpoint < 2 || notices.length < 1); i++) await nc.connectors.flush();
      await new Promise((r) => setTimeout(r, 100));
      await nc.dispatcher.flush();
      assert.equal(arrived.endpoint, 2, 'JetStream delivered the stored message and the acknowledgement there');
      assert.deepEqual(reached, [], 'the endpoint acted on neither');
      assert.deepEqual(notices, [undefined], 'the notice reader took the stored message for no notice');
      // The same endpoint still answers a real request.
      assert.equal(await asks(nc.gateway, subject), true);
      assert.deepEqual(reached, [{}]);
    } finally {
      watch.unsubscribe();
      started.unsubscribe();
      await tasks.stop();
    }
  });

  it('the monitor discovers the services (the agents’ among them) and pings them; it publishes alerts', async () => {
    // Two services on one connection (an agents process has six): each answers the one discovery request.
    const services = await Promise.all(
      ['one', 'two'].map((n) =>
        addService(nc.agents, {
          name: `agent-test-${n}`,
          version: '1.0.0',
          logger,
          endpoints: {
            execute: { subject: `switchyard.svc.agent.v1.test_${n}.execute`, schema: z.unknown(), handler: () => ({}) },
          },
        }),
      ),
    );
    try {
      const pings = await serviceClient(nc.monitor, { timeoutMs: 1_000 }).ping();
      const found: string[] = [];
      for await (const p of pings) found.push(p.name);
      assert.deepEqual(found.sort(), ['agent-test-one', 'agent-test-two']);
      // And the dispatcher finds them the same way.
      const infos = await serviceClient(nc.dispatcher, { timeoutMs: 1_000 }).info();
      const seen: string[] = [];
      for await (const i of infos) seen.push(i.name);
      assert.deepEqual(seen.sort(), ['agent-test-one', 'agent-test-two']);
      assert.equal(
        await subscriptionEnd(nc.gateway, 'switchyard.alerts.>'),
        'PermissionViolationError',
        'the gateway does not follow alerts on NATS',
      );
      const own = await connectNats({ url: infra.natsUrl, name: 'alerts-reader', logger, token: infra.natsToken });
      const got = own.subscribe('switchyard.alerts.>', { max: 1 });
      await own.flush();
      nc.monitor.publish('switchyard.alerts.AlertFiring', '{"rule":"cpu"}');
      for await (const m of got) assert.equal(m.subject, 'switchyard.alerts.AlertFiring');
      await closeNats(own);
    } finally {
      await Promise.all(services.map((svc) => svc.stop()));
    }
  });
});

/**
 * A local user who took the embedded server's port while it was free: the launcher's check of the
 * server on the port signs that stranger's nonce with each of its nkeys and sends no secret, then
 * refuses to adopt it.
 */
describe('a stranger on the embedded nats-server port', () => {
  it('gets only public keys and signatures from the launcher, which does not adopt it', async () => {
    const scratch = mkdtempSync(path.resolve('.tmp', 'nats-squat-'));
    const port = await freePort();
    const fake = await startFakeNatsServer(port, { accept: false });
    const supervisor = new Supervisor({ logger });
    try {
      const config = parseConfig({
        DATA_DIR: scratch,
        DATABASE_URL: 'postgres://unused@127.0.0.1:1/unused',
        EMBEDDED_NATS_PORT: String(port),
      });
      await assert.rejects(startInfrastructure(config, logger, supervisor), /refuses this data dir's nkey/);
      assert.ok(fake.connects.length > 0, 'the launcher asked');
      const sent = JSON.stringify(fake.connects);
      const dir = path.join(scratch, 'nats');
      for (const f of ['token', 'events-password', ...natsRoleUsers.map((u) => natsRolePasswordFile(u))]) {
        const secret = readFileSync(path.join(dir, f), 'utf8').trim();
        assert.ok(isNatsUserSeed(secret), f);
        assert.ok(!sent.includes(secret.slice(2, 20)), `${f} reached the stranger`);
      }
      for (const c of fake.connects) {
        assert.deepEqual(Object.keys(c).sort(), ['name', 'nkey', 'pedantic', 'sig', 'verbose']);
      }
    } finally {
      await supervisor.stopAll();
      await fake.close();
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

/**
 * The Docker Compose setup's nats-server config, as committed, run by the real nats-server (its
 * port, monitoring port and store dir moved to free ones): it parses, takes each role's password
 * from the environment, and applies the roles' subjects.
 */
describe('the Docker Compose nats-server config', () => {
  it('runs, and lets each role in with its password from the environment and its subjects only', async () => {
    const scratch = mkdtempSync(path.resolve('.tmp', 'nats-compose-'));
    const port = await freePort();
    // As .env.example says to make them: a letter first (nats-server reads them unquoted).
    const passwords = Object.fromEntries(
      natsRoleUsers.map((u) => [u, `p${randomBytes(24).toString('hex')}`]),
    ) as Record<NatsRoleUser, string>;
    const setupPassword = `p${randomBytes(24).toString('hex')}`;
    const env = {
      ...Object.fromEntries(natsRoleUsers.map((u) => [natsPasswordEnv(u), passwords[u]])),
      NATS_PASSWORD_SETUP: setupPassword,
    };
    const root = path.resolve(import.meta.dirname, '..', '..', '..');
    // The file as committed, its JetStream store moved from the container's /data to a scratch dir.
    const committed = readFileSync(path.join(root, COMPOSE_NATS_CONFIG), 'utf8');
    assert.equal(committed.split('store_dir: "/data"').length, 2, 'one store dir, /data');
    const config = path.join(scratch, 'nats-server.conf');
    writeFileSync(config, committed.replace('store_dir: "/data"', `store_dir: ${JSON.stringify(scratch)}`));
    const server = spawn(findNatsServer()!, ['-c', config, '-p', String(port), '-m', String(await freePort())], {
      env: { PATH: process.env.PATH, ...env },
      stdio: 'ignore',
    });
    const connections: NatsConnection[] = [];
    try {
      await waitForPort(port, 15_000);
      const url = `nats://127.0.0.1:${port}`;
      for (const user of natsRoleUsers) {
        assert.equal(await probeNatsAuth(port, { user, pass: passwords[user] }), 'accepted', user);
        assert.equal(await probeNatsAuth(port, { user, pass: passwords.gateway + 'x' }), 'refused', user);
      }
      const as = async (user: NatsRoleUser) => {
        const c = await connectNats({ url, name: `compose-${user}`, logger, user: { user, pass: passwords[user] } });
        connections.push(c);
        return c;
      };
      // The one-shot nats-setup container's work: the streams, made as the setup user.
      const setup = spawnSync(process.execPath, [path.join(root, 'apps/launcher/dist/nats-setup.js')], {
        env: { PATH: process.env.PATH, NATS_URL: url, NATS_PASSWORD_SETUP: setupPassword, LOG_LEVEL: 'warn' },
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(setup.status, 0, setup.stderr + setup.stdout);
      const relay = await as('relay');
      const ack = await jetstream(relay).publish('switchyard.events.task.TaskCompleted', '{}', { msgID: 'c1' });
      assert.equal(ack.stream, EVENTS_STREAM);
      const [connectors, gateway, agents] = [await as('connectors'), await as('gateway'), await as('agents')];
      await (await new Kvm(connectors).create(MCP_CALLS_BUCKET, { ttl: 600_000, history: 1 })).put('k', '1');
      const sub = connectors.subscribe('switchyard.svc.mcp.v1.database.call_tool', {
        callback: (_e, m) => void m.respond('{"ok":true}'),
      });
      await connectors.flush();
      assert.equal(
        (await gateway.request('switchyard.svc.mcp.v1.database.call_tool', '{}', { timeout: 2_000 })).json<{
          ok: boolean;
        }>().ok,
        true,
      );
      await assert.rejects(agents.request('switchyard.svc.mcp.v1.database.call_tool', '{}', { timeout: 1_000 }));
      sub.unsubscribe();
    } finally {
      await Promise.all(connections.map((c) => closeNats(c)));
      // Its JetStream files are written until it has exited: removed after.
      const exited = new Promise((r) => (server.exitCode !== null ? r(undefined) : server.once('exit', r)));
      server.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      rmSync(scratch, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    }
  });
});
