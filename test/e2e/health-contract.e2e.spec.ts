/**
 * The specification's port plan and health contract, on the whole system as `npm start` runs
 * it (one launcher, every port free): "All MCP servers and AI agents should implement
 * `GET /health` and `POST /execute` or `POST /mcp`". Every MCP server (5001-5006, and 5007, the
 * database writer) answers /health and an MCP session (initialize + tools/list with the official
 * SDK client and the token); every agent (6001-6006) answers /health and runs a real task on
 * POST /execute.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { BUILTIN_AGENT_PORTS } from '@switchyard/contracts';
import { DATABASE_WRITER_PORT } from '@switchyard/connectors';
import { defaultPorts } from '@switchyard/mcp-servers';
import { freePort } from '@switchyard/platform';
import { newAdminKey, Proc, systemEnv, waitReady } from './launcher.js';
import { scratchDataDir } from '@switchyard/testing';

/** Each MCP role: its port in the specification, the variable that moves it, a tool it must list. */
const MCP_ROLES = [
  { role: 'filesystem', seed: 5001, env: 'MCP_FILESYSTEM_BRIDGE_PORT', tool: 'read_text_file' },
  { role: 'database', seed: 5002, env: 'MCP_DATABASE_PORT', tool: 'query' },
  { role: 'github', seed: 5003, env: 'MCP_GITHUB_PORT', tool: 'search_repositories' },
  { role: 'fetch', seed: 5004, env: 'MCP_FETCH_PORT', tool: 'http_request' },
  { role: 'automation', seed: 5005, env: 'MCP_AUTOMATION_PORT', tool: 'send_webhook' },
  { role: 'analytics', seed: 5006, env: 'MCP_ANALYTICS_PORT', tool: 'query_metric' },
  { role: 'database_writer', seed: 5007, env: 'MCP_DATABASE_WRITER_PORT', tool: 'query' },
] as const;

const at = '2026-01-05T09:00:00.000Z';
const later = '2026-01-05T09:00:02.000Z';
/** Each agent: its port in the specification, the variable that moves it, a real task it must run. */
const AGENTS = [
  {
    agent: 'data_analyst',
    seed: 6001,
    env: 'AGENT_DATA_ANALYST_PORT',
    task: { task_type: 'revenue_analysis', context: { timeframe: '12m' } },
  },
  {
    agent: 'automation_specialist',
    seed: 6002,
    env: 'AGENT_AUTOMATION_SPECIALIST_PORT',
    task: {
      task_type: 'workflow_optimization',
      context: {
        executions: [
          { executionId: 'e1', steps: [{ stepId: 'fetch', status: 'succeeded', startedAt: at, finishedAt: later }] },
        ],
      },
    },
  },
  {
    agent: 'content_creator',
    seed: 6003,
    env: 'AGENT_CONTENT_CREATOR_PORT',
    task: { task_type: 'marketing_content', context: {} },
  },
  {
    agent: 'customer_success',
    seed: 6004,
    env: 'AGENT_CUSTOMER_SUCCESS_PORT',
    task: { task_type: 'support_response', context: { query: 'I was charged twice for my invoice this month' } },
  },
  {
    agent: 'financial_advisor',
    seed: 6005,
    env: 'AGENT_FINANCIAL_ADVISOR_PORT',
    task: { task_type: 'revenue_forecast', context: {} },
  },
  {
    agent: 'operations_manager',
    seed: 6006,
    env: 'AGENT_OPERATIONS_MANAGER_PORT',
    task: { task_type: 'schedule_optimization', context: {} },
  },
] as const;

describe('seed ports and health contract: every MCP server and agent answers /health and /mcp or /execute', () => {
  const mcpToken = randomBytes(24).toString('base64url');
  const agentToken = randomBytes(24).toString('base64url');
  let sys: Proc;
  let env: Record<string, string>;
  let dataDir: string;

  before(async () => {
    dataDir = scratchDataDir('e2e-health-');
    const gatewayPort = await freePort();
    env = await systemEnv(dataDir, newAdminKey(), {
      GATEWAY_PORT: String(gatewayPort),
      EMBEDDED_PG_PORT: String(await freePort()),
      EMBEDDED_NATS_PORT: String(await freePort()),
      MCP_AUTH_TOKEN: mcpToken,
      AI_AGENT_AUTH_TOKEN: agentToken,
      // A dummy token: the GitHub bridge starts and lists its tools; nothing here calls GitHub.
      GITHUB_PERSONAL_ACCESS_TOKEN: 'ghp_dummy_health_contract',
    });
    sys = new Proc('all-in-one', [], env);
    sys.start();
    await sys.waitUp(120_000);
    await waitReady(`http://127.0.0.1:${gatewayPort}`, sys);
  });

  after(async () => {
    await sys?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("the built-in ports are the specification's, and every one was moved to a free port here", () => {
    const kindOf: Record<string, keyof typeof defaultPorts | undefined> = {
      filesystem: 'filesystem-bridge',
      database: 'database',
      github: 'github',
      fetch: 'fetch',
      automation: 'automation',
      analytics: 'analytics',
    };
    for (const r of MCP_ROLES) {
      const kind = kindOf[r.role];
      assert.equal(kind ? defaultPorts[kind] : DATABASE_WRITER_PORT, r.seed, r.role);
    }
    for (const a of AGENTS) assert.equal(BUILTIN_AGENT_PORTS[a.agent], a.seed, a.agent);
    const used = [...MCP_ROLES, ...AGENTS].map((x) => Number(env[x.env]));
    assert.equal(new Set(used).size, 13, 'thirteen distinct ports');
    for (const p of used) assert.ok(Number.isInteger(p) && p > 0, String(p));
  });

  for (const r of MCP_ROLES) {
    it(`MCP ${r.role} (seed port ${r.seed}): GET /health and POST /mcp`, async () => {
      const port = Number(env[r.env]);
      const health = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(health.status, 200, r.role);
      const body = (await health.json()) as { status?: unknown };
      assert.equal(body.status, 'ok', `${r.role} health: ${JSON.stringify(body)}`);

      const url = new URL(`http://127.0.0.1:${port}/mcp`);
      const unauth = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: '{}',
      });
      assert.equal(unauth.status, 401, `${r.role} without the token`);

      const client = new Client({ name: 'health-contract', version: '0.0.0' });
      await client.connect(
        new StreamableHTTPClientTransport(url, { requestInit: { headers: { authorization: `Bearer ${mcpToken}` } } }),
      );
      try {
        assert.ok(client.getServerCapabilities()?.tools, `${r.role} advertises tools`);
        const tools = (await client.listTools()).tools.map((t) => t.name);
        assert.ok(tools.includes(r.tool), `${r.role} lists ${r.tool}: ${tools.join(', ')}`);
      } finally {
        await client.close();
      }
    });
  }

  for (const a of AGENTS) {
    it(`agent ${a.agent} (seed port ${a.seed}): GET /health and POST /execute`, async () => {
      const port = Number(env[a.env]);
      const health = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(health.status, 200, a.agent);
      const body = (await health.json()) as { status?: unknown; agent?: unknown; task_types?: string[] };
      assert.equal(body.status, 'healthy', JSON.stringify(body));
      assert.equal(body.agent, a.agent);
      assert.ok(body.task_types?.includes(a.task.task_type), `${a.agent} serves ${a.task.task_type}`);

      const post = (token?: string) =>
        fetch(`http://127.0.0.1:${port}/execute`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify(a.task),
          signal: AbortSignal.timeout(120_000),
        });
      assert.equal((await post()).status, 401, `${a.agent} without the token`);
      const res = await post(agentToken);
      const out = (await res.json()) as { status?: string; agent?: string; task_id?: string; result?: unknown };
      assert.equal(res.status, 200, `${a.agent}: ${JSON.stringify(out).slice(0, 500)}`);
      assert.equal(out.status, 'completed');
      assert.equal(out.agent, a.agent);
      assert.ok(
        out.result && typeof out.result === 'object' && Object.keys(out.result).length > 0,
        `${a.agent} returned a result`,
      );
    });
  }
});
