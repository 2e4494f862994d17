import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkHostAndOrigin, edgePolicyFromEnv, emptyEdgePolicy } from './edge.js';
import { hideHostPaths, OUTSIDE_ROOTS, relativizeDeep, relativizePaths } from './paths.js';

const ok = (h: { host?: string; origin?: string }, port = 5002, policy = emptyEdgePolicy) =>
  checkHostAndOrigin(h, port, policy).ok;

describe('checkHostAndOrigin', () => {
  it('accepts loopback names with the listening port, and no Origin (non-browser clients)', () => {
    for (const host of ['127.0.0.1:5002', 'localhost:5002', 'LOCALHOST:5002', '[::1]:5002'])
      assert.equal(ok({ host }), true, host);
  });

  it('refuses a rebound or foreign Host, another port, a missing or malformed Host', () => {
    for (const host of [
      'attacker.example',
      'attacker.example:5002',
      '127.0.0.1:5003',
      'localhost',
      '127.0.0.2:5002',
      'user@127.0.0.1:5002',
      '127.0.0.1:5002/x',
      '',
    ]) {
      assert.equal(ok({ host }), false, host);
    }
    assert.equal(ok({}), false);
  });

  it('refuses a foreign Origin, another local port and the opaque `null`; accepts its own', () => {
    const host = '127.0.0.1:5002';
    for (const origin of [
      'http://attacker.example',
      'http://localhost:3000',
      'null',
      'file://',
      'chrome-extension://abc',
    ])
      assert.equal(ok({ host, origin }), false, origin);
    for (const origin of ['http://localhost:5002', 'http://127.0.0.1:5002', 'http://[::1]:5002'])
      assert.equal(ok({ host, origin }), true, origin);
  });

  it('takes ALLOWED_HOSTS (name or name:port), ALLOWED_ORIGINS and a specific bind address', () => {
    const policy = edgePolicyFromEnv(
      { ALLOWED_HOSTS: 'api.example.com, proxy.local:8443', ALLOWED_ORIGINS: 'https://Console.Example.com/' },
      '10.0.0.5',
    );
    assert.equal(ok({ host: 'api.example.com' }, 5002, policy), true);
    assert.equal(ok({ host: 'api.example.com:9999' }, 5002, policy), true);
    assert.equal(ok({ host: 'proxy.local:8443' }, 5002, policy), true);
    assert.equal(ok({ host: 'proxy.local:8444' }, 5002, policy), false);
    assert.equal(ok({ host: '10.0.0.5:5002' }, 5002, policy), true);
    assert.equal(ok({ host: 'api.example.com', origin: 'https://console.example.com' }, 5002, policy), true);
    assert.equal(
      ok({ host: 'api.example.com', origin: 'https://console.example.com.attacker.example' }, 5002, policy),
      false,
    );
    assert.deepEqual(edgePolicyFromEnv({}, '0.0.0.0'), emptyEdgePolicy);
  });
});

describe('relativizePaths', () => {
  const root = '/srv/switchyard/.data/files';
  it('reports paths under the root relative to it, and the root as `.`', () => {
    assert.equal(
      relativizePaths(`ENOENT: no such file or directory, open '${root}/docs/a.txt'`, [root]),
      "ENOENT: no such file or directory, open 'docs/a.txt'",
    );
    assert.equal(
      relativizePaths(`Access denied - path outside allowed directories: /etc/passwd not in ${root}`, [root]),
      'Access denied - path outside allowed directories: /etc/passwd not in .',
    );
    // A sibling whose name starts like the root is not the root.
    assert.equal(relativizePaths(`${root}-old/x`, [root]), `${root}-old/x`);
  });
  it('in error texts, hides every absolute path outside the roots (where the system keeps its files)', () => {
    assert.equal(
      hideHostPaths(
        `Access denied - path outside allowed directories: /srv/switchyard/.data/nats/token not in ${root}`,
        [root],
      ),
      `Access denied - path outside allowed directories: ${OUTSIDE_ROOTS} not in .`,
    );
    assert.equal(
      hideHostPaths(`ENOENT: no such file or directory, open '${root}/docs/a.txt'`, [root]),
      "ENOENT: no such file or directory, open 'docs/a.txt'",
    );
    assert.equal(
      hideHostPaths("EACCES: permission denied, open '/etc/shadow' (see https://example.com/a/b)", [root]),
      `EACCES: permission denied, open '${OUTSIDE_ROOTS}' (see https://example.com/a/b)`,
    );
  });
  it('walks a tool result', () => {
    const r = relativizeDeep(
      { content: [{ type: 'text', text: `Allowed directories:\n${root}` }], structuredContent: { dirs: [root] } },
      [root],
    );
    assert.deepEqual(r, {
      content: [{ type: 'text', text: 'Allowed directories:\n.' }],
      structuredContent: { dirs: ['.'] },
    });
  });
});
