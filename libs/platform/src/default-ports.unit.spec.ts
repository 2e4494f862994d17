import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

// dist -> the repository root.
const root = path.resolve(import.meta.dirname, '..', '..', '..');

/**
 * The ports `npm start` listens on (gateway, MCP servers, agents' HTTP contract, PostgreSQL,
 * NATS client/monitor/cluster). CI runs the tests beside a running system, so a test that binds
 * or dials one of them fails there, or passes for the wrong reason.
 */
const defaultPorts = [
  10000, 5001, 5002, 5003, 5004, 5005, 5006, 5007, 6001, 6002, 6003, 6004, 6005, 6006, 54329, 4222, 8222, 6222,
];

/** Specs that name a default port as data only (nothing binds or dials it), and why. */
const allowed: Record<string, string> = {
  'apps/agents/src/service/ports.unit.spec.ts': 'asserts the seed mapping of agents to ports',
  'apps/connectors/src/registry/registry.int.spec.ts': 'asserts the default registry entries (URLs), connects to none',
  'apps/connectors/src/registry/registry.unit.spec.ts': 'parses a server config holding a URL, connects to none',
  'libs/platform/src/config.unit.spec.ts': 'asserts the config defaults',
  'libs/platform/src/edge.unit.spec.ts': 'checks Host/Origin header values with a pure function',
  'libs/platform/src/default-ports.unit.spec.ts': 'this guard',
  'apps/cli/src/cli.unit.spec.ts': 'asserts the default gateway URL of the CLI config, dials none',
  'apps/launcher/src/banner.unit.spec.ts': 'formats a banner from given URLs, dials none',
  'apps/mcp-servers/src/github/github.int.spec.ts':
    'asserts the seed port constant; the server it starts binds a free port',
  'test/e2e/health-contract.e2e.spec.ts':
    'checks the seed port constants; every listener it dials is moved to a free port by its variable',
  'test/deploy/compose.unit.spec.ts': 'reads the compose file and checks its published ports, binds none',
};

function specFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir)) {
      if (e === 'node_modules' || e === 'dist' || e.startsWith('.')) continue;
      const p = path.join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (e.endsWith('.spec.ts')) out.push(p);
    }
  };
  for (const group of ['apps', 'libs', 'test', 'bench']) {
    if (statSync(path.join(root, group), { throwIfNoEntry: false })?.isDirectory()) walk(path.join(root, group));
  }
  return out;
}

/**
 * A default port as a port: after a `:` (a URL or Host value), or on a line that speaks of a
 * port (`port: 5002`, `GATEWAY_PORT: '10000'`). Other numbers (`wait_ms=10000`) and comments pass.
 */
function portLiterals(text: string): string[] {
  const hits: string[] = [];
  const number = new RegExp(`(?<![\\d.])(${defaultPorts.join('|')})(?![\\d])`, 'g');
  text.split('\n').forEach((line, i) => {
    if (/^\s*(\/\/|\/?\*)/.test(line)) return; // a comment binds nothing
    for (const m of line.matchAll(number)) {
      const before = line.slice(0, m.index);
      if (before.endsWith(':') || /port/i.test(line)) hits.push(`${i + 1}: ${line.trim().slice(0, 160)}`);
    }
  });
  return hits;
}

describe('no test depends on a default port', () => {
  it('finds the spec files', () => {
    assert.ok(specFiles().length > 50, `found ${specFiles().length} spec files under ${root}`);
  });

  it('the guard sees a default port used as a port, and not a mere number', () => {
    assert.equal(portLiterals("const url = 'http://127.0.0.1:5002/mcp';").length, 1);
    assert.equal(portLiterals("env.GATEWAY_PORT = '10000';").length, 1);
    assert.equal(portLiterals('await server.listen({ port: 4222 });').length, 1);
    assert.equal(portLiterals("http('POST', '/x?wait=true&wait_ms=10000')").length, 0);
    assert.equal(portLiterals('assert.equal(ratio, Math.round(x * 10000) / 10000);').length, 0);
    assert.equal(portLiterals('  // nothing may listen on 5002-5007 (the default ports)').length, 0);
  });

  it('no spec outside the allow-list names one (use freePort() from @switchyard/platform)', () => {
    const offenders: string[] = [];
    for (const file of specFiles()) {
      const rel = path.relative(root, file).split(path.sep).join('/');
      if (allowed[rel]) continue;
      for (const hit of portLiterals(readFileSync(file, 'utf8'))) offenders.push(`${rel}:${hit}`);
    }
    assert.deepEqual(offenders, []);
  });

  it('every allow-listed file exists (a stale entry would hide nothing but mislead)', () => {
    for (const rel of Object.keys(allowed))
      assert.ok(statSync(path.join(root, rel), { throwIfNoEntry: false })?.isFile(), rel);
  });
});
