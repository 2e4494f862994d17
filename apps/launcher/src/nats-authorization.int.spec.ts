/**
 * A self-run 3-node nats-server cluster given the block `nats-setup.js --print-nats-authorization`
 * prints (docs/scale-out.md): the same users as the embedded server. A client without credentials
 * is refused; `nats-setup.js` with the all-subjects seed makes the streams R3; each role's user
 * may use its subjects and is refused the others.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { EVENTS_STREAM, MCP_CALLS_BUCKET } from '@switchyard/contracts';
import { closeNats, connectNats, ensureKvBucket, type NatsConnection } from '@switchyard/messaging';
import {
  createLogger,
  natsRolePasswordFile,
  natsUserCredentials,
  NATS_TOKEN_FILE,
  type Logger,
} from '@switchyard/platform';
import { scratchDataDir, startNatsCluster, type NatsCluster } from '@switchyard/testing';

const logger = createLogger('nats-authorization-int', 'silent');
const setupScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'nats-setup.js');

describe('a self-run 3-node cluster with the printed authorization block', () => {
  let dataDir: string;
  let cluster: NatsCluster;
  let block: string;
  const seed = (file: string) => readFileSync(path.join(dataDir, 'nats', file), 'utf8').trim();
  const open: NatsConnection[] = [];
  const as = async (role: string): Promise<NatsConnection> => {
    const nc = await connectNats({
      url: cluster.url,
      name: `auth-${role}`,
      logger,
      user: natsUserCredentials(role, seed(natsRolePasswordFile(role))),
    });
    open.push(nc);
    return nc;
  };
  const asks = async (nc: NatsConnection, subject: string): Promise<boolean> => {
    try {
      return (await nc.request(subject, '{}', { timeout: 1_000 })).json<{ ok: boolean }>().ok;
    } catch {
      return false;
    }
  };

  before(async () => {
    dataDir = scratchDataDir('nats-authorization-');
    const printed = spawnSync(process.execPath, [setupScript, '--print-nats-authorization'], {
      env: { PATH: process.env.PATH, DATA_DIR: dataDir },
      encoding: 'utf8',
    });
    assert.equal(printed.status, 0, printed.stderr);
    block = printed.stdout;
    // As the docs say: the block in a file of its own, included by every node's config.
    const auth = path.join(dataDir, 'auth.conf');
    writeFileSync(auth, block);
    cluster = await startNatsCluster({
      dir: path.join(dataDir, 'cluster'),
      nodes: 3,
      // Relative to the including file (nats-server joins an include to the file's folder): <dir>/cluster/nN/nats.conf.
      extraConfig: 'include ../../auth.conf',
    });
  });
  after(async () => {
    for (const nc of open) await closeNats(nc).catch(() => undefined);
    await cluster?.stop();
  });

  it('prints public nkeys only, every user the embedded server has', () => {
    assert.match(block, /^authorization \{$/m);
    assert.doesNotMatch(block, /SU[A-Z2-7]{56}/, 'no seed in the block');
    for (const user of ['gateway', 'connectors', 'agents', 'dispatcher', 'workflows', 'monitor', 'relay'])
      assert.ok(block.includes(`_INBOX.${user}.>`), user);
    assert.equal(block.match(/nkey: "U[A-Z2-7]{55}"/g)?.length, 9, 'all-subjects, events and seven roles');
  });

  it('refuses a client without credentials', async () => {
    await assert.rejects(connectNats({ url: cluster.nodes[0]!.url, name: 'anonymous', logger }));
  });

  it('nats-setup.js with the all-subjects seed makes the events stream and the call bucket R3', async () => {
    const setup = spawnSync(process.execPath, [setupScript], {
      env: {
        PATH: process.env.PATH,
        DATA_DIR: dataDir,
        NATS_URL: cluster.url,
        NATS_TOKEN: seed(NATS_TOKEN_FILE),
        NATS_STREAM_REPLICAS: '3',
        LOG_LEVEL: 'warn',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(setup.status, 0, setup.stdout + setup.stderr);
    const nc = await connectNats({ url: cluster.url, name: 'auth-token', logger, token: seed(NATS_TOKEN_FILE) });
    open.push(nc);
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(EVENTS_STREAM)).config.num_replicas, 3);
    assert.equal((await jsm.streams.info(`KV_${MCP_CALLS_BUCKET}`)).config.num_replicas, 3);
  });

  it("each role's user may use its subjects and is refused the others", async () => {
    const system = await connectNats({ url: cluster.url, name: 'auth-system', logger, token: seed(NATS_TOKEN_FILE) });
    open.push(system);
    const tool = 'switchyard.svc.mcp.v1.analytics.call_tool';
    const register = 'switchyard.svc.tasks.v1.register_agent';
    const monitorPing = '$SRV.PING.monitor';
    const anyPing = '$SRV.PING';
    const monitorInfo = '$SRV.INFO.monitor';
    for (const subject of [tool, register, monitorPing, anyPing, monitorInfo])
      system.subscribe(subject, {
        callback: (_e, m) => {
          m.respond('{"ok":true}');
        },
      });
    await system.flush();
    const workflows = await as('workflows');
    const agents = await as('agents');
    const connectors = await as('connectors');
    const relay = await as('relay');
    assert.equal(await asks(workflows, tool), true, 'the engine calls MCP tools');
    assert.equal(await asks(agents, tool), false, 'an agents process may not call a tool');
    assert.equal(await asks(relay, tool), false, 'the relay calls nothing');
    assert.equal(await asks(workflows, register), false, 'the engine may not register agents');
    // The gateway finds the live monitor instances (a read a stopped one left unanswered is asked
    // again of a live one), and nothing else of discovery.
    const gateway = await as('gateway');
    assert.equal(await asks(gateway, monitorPing), true, 'the gateway pings the monitor service');
    assert.equal(await asks(gateway, anyPing), false, 'not every service');
    assert.equal(await asks(gateway, monitorInfo), false, 'nor asks their details');
    // The connectors share keyed calls through the bucket nats-setup.js made, and may not make another.
    const kv = await new Kvm(connectors).open(MCP_CALLS_BUCKET);
    await kv.put('c.authorization-test', '{"state":"done"}');
    assert.equal((await kv.get('c.authorization-test'))?.string(), '{"state":"done"}');
    await assert.rejects(new Kvm(connectors).create('NOT_OURS', { history: 1 }));
    // A connectors process told to manage the bucket, whose config differs (a smaller max_bytes),
    // is refused the change and uses the bucket as it is, rather than running every call unshared.
    const warned: unknown[] = [];
    const asIs = await ensureKvBucket(connectors, {
      name: MCP_CALLS_BUCKET,
      ttlMs: 600_000,
      maxBytes: 1024 * 1024,
      replicas: 3,
      manage: true,
      logger: { info: () => undefined, warn: (o: unknown) => void warned.push(o) } as unknown as Logger,
    });
    await asIs.put('c.as-it-is', '{"state":"done"}');
    assert.equal((await asIs.get('c.as-it-is'))?.string(), '{"state":"done"}');
    assert.equal(warned.length, 1, 'the refused change is logged');
  });
});
