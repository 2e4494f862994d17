import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseServerConfig } from './schema.js';
import { describeServer, envPrefix, interpolate, loadRegistry, mergeServer, unconfiguredReason } from './load.js';

describe('MCP server config schema', () => {
  it('fills every policy block from defaults when only the essentials are given', () => {
    const c = parseServerConfig({
      name: 'db',
      role: 'database',
      transport: { kind: 'http', url: 'http://127.0.0.1:5002/mcp' },
    });
    assert.equal(c.enabled, true);
    assert.deepEqual(c.timeouts, { connect_ms: 10_000, call_ms: 30_000 });
    assert.equal(c.retry.max_attempts, 3);
    assert.equal(c.breaker.consecutive_failures, 5);
    assert.equal(c.bulkhead.max_concurrent, 8);
    assert.equal(c.payload_log.max_chars, 2_048);
  });

  it('keeps given values of a partial block and defaults the rest', () => {
    const c = parseServerConfig({
      name: 'fs',
      role: 'filesystem',
      transport: { kind: 'stdio', command: 'node', args: ['x.js'] },
      timeouts: { call_ms: 500 },
    });
    assert.deepEqual(c.timeouts, { connect_ms: 10_000, call_ms: 500 });
    assert.equal(c.transport.kind, 'stdio');
    if (c.transport.kind === 'stdio') assert.deepEqual(c.transport.env, {});
  });

  it('rejects an unknown role, a bad url, a bad name and the reserved name "registry"', () => {
    const base = { name: 'x', role: 'database', transport: { kind: 'http', url: 'http://h/mcp' } };
    assert.throws(() => parseServerConfig({ ...base, role: 'mainframe' }));
    assert.throws(() => parseServerConfig({ ...base, transport: { kind: 'http', url: 'not a url' } }));
    assert.throws(() => parseServerConfig({ ...base, name: 'Has.Dot' }));
    assert.throws(() => parseServerConfig({ ...base, name: 'registry' }));
    assert.throws(() => parseServerConfig({ ...base, transport: { kind: 'pigeon' } }));
  });
});

describe('registry helpers', () => {
  it('merges a file entry over a default deeply, replacing a transport of another kind', () => {
    const base = {
      name: 'db',
      role: 'database',
      transport: { kind: 'http', url: 'http://a/mcp' },
      timeouts: { connect_ms: 1, call_ms: 2 },
    };
    const merged = mergeServer(base, { timeouts: { call_ms: 9 } });
    assert.deepEqual(merged.timeouts, { connect_ms: 1, call_ms: 9 });
    const swapped = mergeServer(base, { transport: { kind: 'stdio', command: 'node' } });
    assert.deepEqual(swapped.transport, { kind: 'stdio', command: 'node' });
  });

  it('interpolates ${VAR} in every string, unset as empty', () => {
    const out = interpolate({ a: 'x-${A}-y', list: ['${B}'], n: 3, env: { T: '${MISSING}' } }, { A: '1', B: '2' });
    assert.deepEqual(out, { a: 'x-1-y', list: ['2'], n: 3, env: { T: '' } });
  });

  it('says a stdio server is unconfigured while a required env var is empty', () => {
    const c = parseServerConfig({
      name: 'github',
      role: 'github',
      transport: { kind: 'stdio', command: 'node', required_env: ['GITHUB_PERSONAL_ACCESS_TOKEN'] },
    });
    assert.match(unconfiguredReason(c) ?? '', /GITHUB_PERSONAL_ACCESS_TOKEN/);
    const ok = parseServerConfig({
      ...c,
      transport: { ...c.transport, env: { GITHUB_PERSONAL_ACCESS_TOKEN: 'ghp_x' } },
    });
    assert.equal(unconfiguredReason(ok), undefined);
  });

  it('describes a server without its secrets', () => {
    const c = parseServerConfig({
      name: 'gh',
      role: 'github',
      auth_token: 's3cret',
      transport: { kind: 'stdio', command: 'node', env: { GITHUB_PERSONAL_ACCESS_TOKEN: 'ghp_secret' } },
    });
    const text = JSON.stringify(describeServer(c));
    assert.doesNotMatch(text, /s3cret|ghp_secret/);
    assert.match(text, /GITHUB_PERSONAL_ACCESS_TOKEN/); // the key is listed, the value is not
  });

  it("follows MCP_<NAME>_PORT to the project's own servers' new ports; MCP_<NAME>_URL still wins", () => {
    const urlOf = (env: Record<string, string>, name: string) => {
      const server = loadRegistry({ env, createDirs: false }).find((s) => s.name === name)!;
      return server.transport.kind === 'http' ? server.transport.url : undefined;
    };
    assert.equal(urlOf({}, 'database'), 'http://127.0.0.1:5002/mcp');
    assert.equal(urlOf({ MCP_DATABASE_PORT: '30112' }, 'database'), 'http://127.0.0.1:30112/mcp');
    assert.equal(urlOf({ MCP_DATABASE_WRITER_PORT: '30117' }, 'database_writer'), 'http://127.0.0.1:30117/mcp');
    assert.equal(urlOf({ MCP_DATABASE_PORT: '30112' }, 'database_writer'), 'http://127.0.0.1:5007/mcp');
    assert.equal(
      urlOf({ MCP_FETCH_PORT: '30114', MCP_FETCH_URL: 'http://10.0.0.5:5004/mcp' }, 'fetch'),
      'http://10.0.0.5:5004/mcp',
    );
    for (const bad of ['0', '70000', '5002x', '-1'])
      assert.throws(() => loadRegistry({ env: { MCP_ANALYTICS_PORT: bad }, createDirs: false }), /MCP_ANALYTICS_PORT/);
  });

  it('a bad MCP_<NAME>_MAX_CONCURRENT, _MAX_QUEUE or _CALL_MS is refused naming the variable the operator wrote', () => {
    for (const [variable, value] of [
      ['MCP_DATABASE_MAX_CONCURRENT', 'abc'],
      ['MCP_DATABASE_MAX_QUEUE', '-3'],
      ['MCP_FETCH_CALL_MS', 'soon'],
    ] as const)
      assert.throws(
        () => loadRegistry({ env: { [variable]: value }, createDirs: false }),
        (e: unknown) => e instanceof Error && e.message.includes(`${variable} (`) && e.message.includes(`"${value}"`),
        variable,
      );
    assert.equal(
      loadRegistry({ env: { MCP_DATABASE_MAX_CONCURRENT: '3' }, createDirs: false }).find((x) => x.name === 'database')!
        .bulkhead.max_concurrent,
      3,
    );
  });

  it('builds env override prefixes from names', () => {
    assert.equal(envPrefix('database'), 'MCP_DATABASE_');
    assert.equal(envPrefix('my-server'), 'MCP_MY_SERVER_');
  });
});
