// The official MCP conformance suite (@modelcontextprotocol/conformance, Node 22) against every
// MCP server the project serves, each started as `npm start` does: on a free port, with a token.
//
// The suite's client cannot send a bearer token, so each server is reached through a small
// reverse proxy on 127.0.0.1 that adds `Authorization` and forwards everything else verbatim,
// `Host` and `Origin` included: the DNS-rebinding scenario's `Host: evil.example.com` reaches the
// real server, which must refuse it. The proxy's own address is the one allowed extra host
// (ALLOWED_HOSTS / ALLOWED_ORIGINS), as for any reverse proxy in front of a server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { freePort } from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import { runMcpServer, type RunningMcpServer } from './runtime.js';
import type { McpServerKind } from './config.js';
import { httpClient, silentLogger } from './test-helpers.js';

/** Pinned: a new suite version can add scenarios; moving to it is a decision. */
const SUITE = '@modelcontextprotocol/conformance@0.1.16';
const TOKEN = 'conformance-token';

/** Scenarios any MCP server must pass, and the capability that makes the others apply. */
const ALWAYS = ['server-initialize', 'ping', 'dns-rebinding-protection'];
const BY_CAPABILITY: Record<string, string[]> = {
  tools: ['tools-list'],
  resources: ['resources-list'],
  prompts: ['prompts-list'],
  logging: ['logging-set-level'],
};
/** Why the rest never apply to our servers (they test fixtures of the reference "everything" server). */
function notApplicable(scenario: string): string {
  if (/^tools-call-/.test(scenario) || scenario === 'json-schema-2020-12')
    return 'calls a fixture tool (test_*) of the reference "everything" server';
  if (/^(resources-read|resources-templates)/.test(scenario))
    return 'reads fixture resources (test://) of the reference server';
  if (/^resources-(un)?subscribe/.test(scenario))
    return 'needs resources.subscribe, not advertised (stateless HTTP cannot deliver updates)';
  if (/^prompts-get|^completion/.test(scenario)) return 'uses fixture prompts (test_prompt_*) of the reference server';
  if (/^elicitation/.test(scenario)) return 'needs a fixture tool that elicits from the client';
  if (/^server-sse/.test(scenario))
    return 'needs sessions and SSE streams (these servers are stateless, JSON responses)';
  if (scenario === 'logging-set-level') return 'logging capability not advertised';
  if (scenario === 'resources-list') return 'resources capability not advertised';
  if (scenario === 'prompts-list') return 'prompts capability not advertised';
  return 'not among the scenarios that apply to a server without the reference fixtures';
}

interface Proxy {
  readonly port: number;
  close(): Promise<void>;
}

async function tokenProxy(target: number, token: string): Promise<Proxy> {
  const server = http.createServer((req, res) => {
    const up = http.request(
      {
        host: '127.0.0.1',
        port: target,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, authorization: `Bearer ${token}` },
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => (res.headersSent ? res.destroy() : (res.writeHead(502), res.end())));
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => (server.close(() => r()), server.closeAllConnections())),
  };
}

interface Check {
  id: string;
  status: string;
  errorMessage?: string;
}

/**
 * Node 22 and the suite's bin, fetched by npx once (cached after the first run); the runs then
 * start them directly instead of paying npx's resolution per server. Throws with npx's output
 * when they cannot be had: the spec fails loudly, it never skips.
 */
function suiteCommand(): Promise<{ node: string; bin: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      'npx',
      ['-y', '-p', 'node@22', '-p', SUITE, '--', 'sh', '-c', 'command -v node; command -v conformance; node --version'],
      { timeout: 300_000, env: { ...process.env, npm_config_update_notifier: 'false' } },
      (err, stdout, stderr) => {
        const [node, bin, version] = stdout.trim().split('\n');
        if (err || !node || !bin || !/^v2[2-9]\./.test(version ?? '')) {
          reject(
            new Error(
              `could not get Node 22 and ${SUITE} through npx (${err?.message ?? `node ${version}`}):\n${stdout}\n${stderr.slice(-3000)}`,
            ),
          );
          return;
        }
        resolve({ node, bin });
      },
    );
  });
}

/** Run the whole server suite once against `url`; the checks of each scenario, by scenario name. */
function runSuite(
  cmd: { node: string; bin: string },
  url: string,
  outDir: string,
): Promise<{ results: Map<string, Check[]>; output: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd.node,
      [cmd.bin, 'server', '--url', url, '-o', outDir],
      { timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (_err, stdout, stderr) => {
        // A failing scenario makes the run exit 1: the checks decide, not the exit code.
        const results = new Map<string, Check[]>();
        let dirs: string[];
        try {
          dirs = readdirSync(outDir);
        } catch {
          dirs = [];
        }
        for (const d of dirs) {
          const m = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(d);
          if (!m) continue;
          results.set(m[1]!, JSON.parse(readFileSync(path.join(outDir, d, 'checks.json'), 'utf8')) as Check[]);
        }
        resolve({ results, output: `${stdout}\n${stderr}` });
      },
    );
  });
}

describe('official MCP conformance suite against every server we serve', () => {
  const running: { name: string; server: RunningMcpServer; proxy: Proxy }[] = [];
  let scratch: string;

  before(async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'conformance-'));
    const databaseUrl = await freshDatabase('mcp_conformance');
    const servers: { name: string; kind: McpServerKind; env?: Record<string, string> }[] = [
      { name: 'filesystem-bridge', kind: 'filesystem-bridge' },
      { name: 'database', kind: 'database' },
      { name: 'database_writer', kind: 'database', env: { DATABASE_ALLOW_WRITES: 'true' } },
      { name: 'fetch', kind: 'fetch' },
      { name: 'automation', kind: 'automation' },
      { name: 'analytics', kind: 'analytics' },
      // A dummy token: the bridge and the official server's listing work without reaching GitHub.
      { name: 'github', kind: 'github', env: { GITHUB_PERSONAL_ACCESS_TOKEN: 'ghp_dummy_conformance' } },
    ];
    for (const s of servers) {
      const port = await freePort();
      const proxy = await tokenProxy(port, TOKEN);
      const server = await runMcpServer(s.kind, {
        port,
        token: TOKEN,
        name: s.name,
        logger: silentLogger,
        env: {
          LOG_LEVEL: 'silent',
          DATABASE_URL: databaseUrl,
          FILESYSTEM_ROOT: path.join(scratch, 'files'),
          ALLOWED_HOSTS: `127.0.0.1:${proxy.port}`,
          ALLOWED_ORIGINS: `http://127.0.0.1:${proxy.port}`,
          ...s.env,
        },
      });
      running.push({ name: s.name, server, proxy });
    }
  });

  after(async () => {
    for (const r of running) {
      await r.server.close().catch(() => undefined);
      await r.proxy.close();
    }
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it(
    "passes every scenario that applies to each server's advertised capabilities, DNS-rebinding protection included",
    { timeout: 600_000 },
    async () => {
      const cmd = await suiteCommand();
      // The servers' suites run side by side: each is a few seconds of a client talking to one server.
      const runs = await Promise.all(
        running.map(async (r) => {
          const client = await httpClient(r.server.url!, TOKEN);
          const caps = client.getServerCapabilities() ?? {};
          await client.close();
          const outDir = path.join(scratch, `out-${r.name}`);
          return { ...r, caps, ...(await runSuite(cmd, `http://127.0.0.1:${r.proxy.port}/mcp`, outDir)) };
        }),
      );
      const failures: string[] = [];
      for (const run of runs) {
        // The suite could not run at all (no Node 22, registry unreachable): fail loudly, never skip.
        assert.ok(
          run.results.size > 0,
          `the conformance suite produced no results for ${run.name}; its output:\n${run.output.slice(-4000)}`,
        );
        const applicable = new Set([
          ...ALWAYS,
          ...Object.entries(BY_CAPABILITY).flatMap(([cap, s]) => ((run.caps as Record<string, unknown>)[cap] ? s : [])),
        ]);
        const passed: string[] = [];
        const skipped: string[] = [];
        for (const scenario of applicable) {
          const checks = run.results.get(scenario);
          if (!checks || checks.length === 0) {
            failures.push(`${run.name}: ${scenario} did not run`);
            continue;
          }
          const bad = checks.filter((c) => c.status !== 'SUCCESS' && c.status !== 'INFO');
          if (bad.length)
            failures.push(
              `${run.name}: ${scenario}: ${bad.map((c) => `${c.id} ${c.status} ${c.errorMessage ?? ''}`).join('; ')}`,
            );
          else passed.push(`${scenario} (${checks.length} check${checks.length > 1 ? 's' : ''})`);
        }
        for (const scenario of [...run.results.keys()].sort())
          if (!applicable.has(scenario)) skipped.push(`${scenario}: ${notApplicable(scenario)}`);
        console.log(
          `# ${run.name} (advertises ${Object.keys(run.caps).sort().join(', ')}): passed ${passed.join(', ')}`,
        );
        console.log(`# ${run.name} not applicable:\n#   ${skipped.join('\n#   ')}`);
      }
      assert.deepEqual(failures, []);
    },
  );
});
