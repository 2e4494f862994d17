/**
 * Cost as processes are added: the whole system as launcher processes on this machine (one per
 * role, each on its own ports, one embedded PostgreSQL and nats-server owned by the first), then,
 * for each scaled role, 1, 2 and 4 processes of it while the rest stays at one, under a closed-loop
 * load through the gateway(s) that the role serves:
 *
 *   workflows   2-step workflow, POST start?wait=true: by default two MCP steps
 *               (mcp:analytics/record_metric -> mcp:analytics/record_metric), so the engines are
 *               what is measured; BENCH_WORKFLOW=agent makes the second step agent:support_response
 *               (then the agents' capacity bounds the row)
 *   dispatcher  delegations of support_response, POST delegate?wait=true
 *   connectors  MCP calls of analytics/record_metric, POST mcp/call
 *   gateway     the same MCP calls spread over every gateway
 *
 * Each level: the extra processes are started (and the previous level's stopped), a warm-up, then
 * BENCH_SECONDS of load from BENCH_CLIENTS clients; prints units/s and latency p50/p99, and the load
 * average. On a 2-core machine the processes share two cores: the table shows what adding a process
 * costs or gains here, not on a bigger machine. Figures only; nothing here asserts.
 *
 *   node bench/scaling/dist/main.js
 *   BENCH_ROLES=workflows,dispatcher BENCH_LEVELS=1,2 BENCH_SECONDS=10 BENCH_CLIENTS=32 node bench/scaling/dist/main.js
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { freePort, natsUserSeed } from '@switchyard/platform';
import {
  scratchDataDir,
  agentPorts,
  embeddedDatabaseUrl,
  newAdminKey,
  Proc,
  sleep,
  systemEnv,
  waitMcpServerUp,
  waitReady,
} from '@switchyard/testing';

type Role = 'workflows' | 'dispatcher' | 'connectors' | 'gateway';
const roles = (process.env.BENCH_ROLES ?? 'workflows,dispatcher,connectors,gateway').split(',') as Role[];
const levels = (process.env.BENCH_LEVELS ?? '1,2,4').split(',').map(Number);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const workflowKind = process.env.BENCH_WORKFLOW ?? 'mcp';
if (workflowKind !== 'mcp' && workflowKind !== 'agent')
  throw new Error(`BENCH_WORKFLOW must be mcp or agent, got ${workflowKind}`);
const clients = Number(process.env.BENCH_CLIENTS ?? 32);
const warmupMs = Number(process.env.BENCH_WARMUP_MS ?? 3_000);

const q = (xs: number[], p: number) =>
  xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]! : NaN;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

async function main(): Promise<void> {
  const t0 = Date.now();
  const dataDir = scratchDataDir('bench-scaling-');
  const adminKey = newAdminKey();
  const auth = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
  const pgPort = await freePort();
  const natsPort = await freePort();
  const common = await systemEnv(dataDir, adminKey, {
    RATE_LIMIT_ENABLED: 'false',
    MCP_AUTH_TOKEN: randomBytes(24).toString('hex'),
    AI_AGENT_AUTH_TOKEN: randomBytes(24).toString('hex'),
    // The processes that join the owner's nats-server need its token: the owner uses this one.
    // An nkey seed: every process presents it to the one embedded nats-server by signing, never in clear.
    NATS_TOKEN: natsUserSeed(randomBytes(32).toString('base64url')),
  });
  const joined = {
    ...common,
    DATABASE_URL: embeddedDatabaseUrl(dataDir, pgPort),
    NATS_URL: `nats://127.0.0.1:${natsPort}`,
  };
  const gatewayPort = await freePort();
  const bases = [`http://127.0.0.1:${gatewayPort}`];
  const owner = new Proc('R (relay monitor read-models)', ['relay', 'monitor', 'read-models'], {
    ...common,
    EMBEDDED_PG_PORT: String(pgPort),
    EMBEDDED_NATS_PORT: String(natsPort),
  });
  const base: Record<Role | 'mcp-servers' | 'agents', Proc> = {
    gateway: new Proc('gateway#1', ['gateway'], { ...joined, GATEWAY_PORT: String(gatewayPort) }),
    'mcp-servers': new Proc('mcp-servers', ['mcp-servers'], joined),
    connectors: new Proc('connectors#1', ['connectors'], joined),
    agents: new Proc('agents', ['agents'], joined),
    workflows: new Proc('workflows#1', ['workflows'], joined),
    dispatcher: new Proc('dispatcher#1', ['dispatcher'], joined),
  };
  const all: Proc[] = [owner, ...Object.values(base)];
  const stopAll = async () => {
    await Promise.all(all.filter((p) => p !== owner).map((p) => p.stop()));
    await owner.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    owner.start();
    await owner.waitUp(120_000);
    for (const p of Object.values(base)) p.start();
    await Promise.all(Object.values(base).map((p) => p.waitUp(150_000)));
    await waitReady(bases[0]!, base.gateway);
    const post = async (b: string, url: string, body: unknown): Promise<{ status: number; body: any }> => {
      const res = await fetch(`${b}${url}`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(60_000),
      });
      return { status: res.status, body: await res.json().catch(() => undefined) };
    };
    await waitMcpServerUp(bases[0]!, auth, 'analytics');
    const definitionId = `scaling-${randomBytes(3).toString('hex')}`;
    const reg = await post(bases[0]!, '/api/v1/workflows/definitions', {
      id: definitionId,
      version: 1,
      name: 'scaling',
      input: { type: 'object', properties: { n: { type: 'string' } }, required: ['n'] },
      steps: [
        {
          id: 'metric',
          uses: 'mcp:analytics/record_metric',
          with: { name: 'scaling_units', value: 1 },
          timeout_ms: 10_000,
        },
        workflowKind === 'agent'
          ? {
              id: 'answer',
              uses: 'agent:support_response',
              needs: ['metric'],
              with: { query: 'where is my order ${{ input.n }}' },
              timeout_ms: 10_000,
            }
          : {
              id: 'answer',
              uses: 'mcp:analytics/record_metric',
              needs: ['metric'],
              with: { name: 'scaling_units_done', value: 1 },
              timeout_ms: 10_000,
            },
      ],
      outputs: { n: '${{ input.n }}' },
    });
    if (reg.status !== 201) throw new Error(`register: ${reg.status} ${JSON.stringify(reg.body)}`);
    console.log(
      `# system up in ${Date.now() - t0} ms: ${all.length} processes; ${clients} clients, ${seconds} s a level after ${warmupMs} ms warm-up; workflow steps: ${workflowKind === 'agent' ? 'mcp, agent' : 'mcp, mcp'} (BENCH_WORKFLOW)`,
    );

    let n = 0;
    /** One unit of the role's work against gateway `b`; true when it ended as it should. */
    const unit = async (role: Role, b: string): Promise<boolean> => {
      const k = `${definitionId}-${n++}`;
      if (role === 'workflows') {
        const r = await post(b, `/api/v1/workflows/start/${definitionId}?wait=true&wait_ms=30000`, { n: k });
        return r.status === 200 && r.body?.status === 'completed';
      }
      if (role === 'dispatcher') {
        const r = await post(b, '/api/v1/integration/agents/delegate?wait=true&wait_ms=30000', {
          task_type: 'support_response',
          context: { query: `order ${k}` },
          priority: 'normal',
        });
        return r.status === 200 && r.body?.status === 'completed';
      }
      const r = await post(b, '/api/v1/integration/mcp/call', {
        server: 'analytics',
        tool: 'record_metric',
        arguments: { name: 'scaling_calls', value: 1 },
      });
      return r.status === 200 && r.body?.isError !== true;
    };
    /** Closed loop: `clients` clients, each sends its next unit when its last one answered. */
    const drive = async (role: Role, targets: string[], ms: number) => {
      const lat: number[] = [];
      let ok = 0;
      let bad = 0;
      const end = Date.now() + ms;
      await Promise.all(
        Array.from({ length: clients }, async (_, c) => {
          for (let i = 0; Date.now() < end; i++) {
            const t = performance.now();
            const good = await unit(role, targets[(c + i) % targets.length]!).catch(() => false);
            lat.push(performance.now() - t);
            if (good) ok++;
            else bad++;
          }
        }),
      );
      return { ok, bad, lat };
    };

    const rows: string[] = [];
    for (const role of roles) {
      const extra: Proc[] = [];
      for (const level of levels) {
        // Bring the role to `level` processes (the base one included).
        while (extra.length + 1 < level) {
          const k = extra.length + 2;
          if (role === 'gateway') {
            const port = await freePort();
            const p = new Proc(`gateway#${k}`, ['gateway'], { ...joined, GATEWAY_PORT: String(port) });
            bases.push(`http://127.0.0.1:${port}`);
            extra.push(p);
          } else {
            extra.push(new Proc(`${role}#${k}`, [role], { ...joined, ...(await agentPorts()) }));
          }
          all.push(extra.at(-1)!);
          extra.at(-1)!.start();
        }
        while (extra.length + 1 > level) {
          const p = extra.pop()!;
          await p.stop();
          if (role === 'gateway') bases.pop();
        }
        await Promise.all(extra.map((p) => p.waitUp(150_000)));
        if (role === 'gateway')
          for (const [i, b] of bases.entries()) await waitReady(b, i === 0 ? base.gateway : extra[i - 1]!);
        // Partitions and leases settle (engines and dispatchers rebalance when one joins or leaves).
        await sleep(role === 'workflows' || role === 'dispatcher' ? 6_000 : 1_000);
        const targets = role === 'gateway' ? [...bases] : [bases[0]!];
        await drive(role, targets, warmupMs);
        const r = await drive(role, targets, seconds * 1000);
        const row = `| ${role} | ${level} | ${Math.round(r.ok / seconds).toLocaleString('en-US')} | ${q(r.lat, 0.5).toFixed(1)} / ${q(r.lat, 0.99).toFixed(1)} ms | ${r.bad} | ${load()} |`;
        console.log(row);
        rows.push(row);
      }
      for (const p of extra) await p.stop();
      if (role === 'gateway') bases.splice(1);
    }
    console.log(
      '\n| role scaled | processes of it | units/s | latency p50 / p99 | not completed | load average |\n|---|---|---|---|---|---|',
    );
    for (const row of rows) console.log(row);
  } finally {
    await stopAll();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
