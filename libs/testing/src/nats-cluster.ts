import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findNatsServer, freePort, NATS_INSTALL_HINT, waitForPort, type Logger } from '@switchyard/platform';

export interface NatsClusterNode {
  readonly name: string;
  /** Client port; `nats://127.0.0.1:<port>`. */
  readonly port: number;
  readonly url: string;
  /** Cluster (route) port. */
  readonly clusterPort: number;
  /** HTTP monitoring port (`/healthz`, `/jsz`). */
  readonly monitorPort: number;
  readonly storeDir: string;
  /** The running process's pid, undefined while the node is down. */
  pid(): number | undefined;
  /** SIGKILL, no goodbye; resolves when the process is gone. */
  kill(): Promise<void>;
  /** Start it again on the same ports and store (after kill); resolves when it answers /healthz. */
  restart(): Promise<void>;
}

export interface NatsCluster {
  /** Every node's client URL, comma-separated: a NATS_URL for the whole cluster. */
  readonly url: string;
  readonly nodes: readonly NatsClusterNode[];
  stop(): Promise<void>;
}

export interface StartNatsClusterOptions {
  /** Where the nodes keep their config and JetStream stores (one folder each); removed by stop(). */
  readonly dir: string;
  /** Default 3. */
  readonly nodes?: number;
  readonly name?: string;
  readonly logger?: Logger;
  /** Config text added to every node's file (e.g. an `authorization` block). */
  readonly extraConfig?: string;
}

/**
 * A real nats-server cluster with JetStream on 127.0.0.1, for tests: every node on free ports
 * (client, cluster routes, monitoring), a store folder of its own, routes to every other node.
 * Resolves once every node reports healthy (`/healthz`: JetStream up, meta leader known).
 */
export async function startNatsCluster(o: StartNatsClusterOptions): Promise<NatsCluster> {
  const bin = findNatsServer();
  if (!bin) throw new Error(NATS_INSTALL_HINT);
  const count = o.nodes ?? 3;
  const clusterName = o.name ?? 'switchyard-test';
  const ports: { port: number; clusterPort: number; monitorPort: number }[] = [];
  for (let i = 0; i < count; i++)
    ports.push({ port: await freePort(), clusterPort: await freePort(), monitorPort: await freePort() });
  const nodes: (NatsClusterNode & { start(): Promise<void> })[] = ports.map((p, i) => {
    const name = `n${i + 1}`;
    const dir = path.resolve(o.dir, name);
    const storeDir = path.join(dir, 'js');
    mkdirSync(storeDir, { recursive: true });
    const conf = path.join(dir, 'nats.conf');
    const routes = ports.filter((_, j) => j !== i).map((q) => `nats-route://127.0.0.1:${q.clusterPort}`);
    writeFileSync(
      conf,
      [
        `server_name: ${name}`,
        `listen: 127.0.0.1:${p.port}`,
        `http: 127.0.0.1:${p.monitorPort}`,
        `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
        `cluster {`,
        `  name: ${clusterName}`,
        `  listen: 127.0.0.1:${p.clusterPort}`,
        `  routes: [${routes.map((r) => JSON.stringify(r)).join(', ')}]`,
        `}`,
        ...(o.extraConfig ? [o.extraConfig] : []),
        '',
      ].join('\n'),
    );
    let child: ChildProcess | undefined;
    const log = o.logger?.child({ component: 'nats-cluster', node: name });
    const start = async () => {
      const c = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
      const relay = (b: Buffer) => log?.debug({ nats: b.toString().trim() }, 'nats-server');
      c.stdout?.on('data', relay);
      c.stderr?.on('data', relay);
      c.on('error', (err) => log?.error({ err }, 'nats-server process error'));
      child = c;
      await waitForPort(p.port, 15_000);
    };
    return {
      name,
      ...p,
      url: `nats://127.0.0.1:${p.port}`,
      storeDir,
      pid: () => (child && child.exitCode === null && child.signalCode === null ? child.pid : undefined),
      start,
      kill: async () => {
        const c = child;
        if (!c || c.exitCode !== null || c.signalCode !== null) return;
        const gone = new Promise<void>((r) => c.once('exit', () => r()));
        c.kill('SIGKILL');
        await gone;
      },
      restart: async () => {
        await start();
        await healthy(p.monitorPort);
      },
    };
  });
  const stop = async () => {
    await Promise.all(
      nodes.map(async (n) => {
        const pid = n.pid();
        if (pid === undefined) return;
        await n.kill();
      }),
    );
    rmSync(o.dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
    await Promise.all(nodes.map((n) => healthy(n.monitorPort)));
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: nodes.map((n) => n.url).join(','), nodes, stop };
}

/** Wait until the node's `/healthz` says ok (JetStream enabled and current with the cluster). */
async function healthy(monitorPort: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${monitorPort}/healthz`, { signal: AbortSignal.timeout(2_000) });
      last = await res.text();
      if (res.ok) return;
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`nats-server on monitor port ${monitorPort} not healthy after ${timeoutMs} ms: ${last}`);
}
