import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AppError } from '@switchyard/platform';
import { filesLeftBehind, loadRegistry, warnOfFilesLeftBehind } from './load.js';
import { resolvePackageBin } from './resolve-bin.js';

/** Registry loading with real files and the installed server packages (file I/O, hence int). */
describe('loadRegistry', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sy-reg-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('gives all six roles on a fresh machine and creates the filesystem root', () => {
    const servers = loadRegistry({ env: {}, cwd: dir });
    const byName = Object.fromEntries(servers.map((s) => [s.name, s]));
    assert.deepEqual(
      servers.map((s) => s.role).sort(),
      // database twice: the read-only server and the onboarding writer
      ['analytics', 'automation', 'database', 'database', 'fetch', 'filesystem', 'github'],
    );
    const fs = byName.filesystem!;
    assert.equal(fs.transport.kind, 'stdio');
    if (fs.transport.kind === 'stdio') {
      assert.equal(fs.transport.command, process.execPath, 'started with node, no npx');
      assert.equal(fs.transport.args[0], resolvePackageBin('@modelcontextprotocol/server-filesystem'));
      assert.equal(fs.transport.args[1], path.join(dir, '.data', 'files'));
    }
    assert.ok(existsSync(path.join(dir, '.data', 'files')));
    // With a DATA_DIR of its own, a system's files are there too, not in the directory it runs in.
    const own = loadRegistry({ env: { DATA_DIR: 'elsewhere' }, cwd: dir }).find((s) => s.name === 'filesystem')!;
    assert.equal(own.transport.kind === 'stdio' && own.transport.args[1], path.join(dir, 'elsewhere', 'files'));
    const given = loadRegistry({
      env: { DATA_DIR: 'elsewhere', FILESYSTEM_ROOT: path.join(dir, 'given-files') },
      cwd: dir,
    }).find((s) => s.name === 'filesystem')!;
    assert.equal(given.transport.kind === 'stdio' && given.transport.args[1], path.join(dir, 'given-files'));
    // An upgrade from a release that kept the files in `.data/files` whatever DATA_DIR said: said at start.
    writeFileSync(path.join(dir, '.data', 'files', 'report.md'), '# before the upgrade');
    // A fresh data dir (its database made by this start, or none): no older release wrote for it.
    assert.equal(filesLeftBehind({ DATA_DIR: 'elsewhere' }, dir), undefined);
    mkdirSync(path.join(dir, 'elsewhere', 'postgres'), { recursive: true });
    writeFileSync(path.join(dir, 'elsewhere', 'postgres', 'PG_VERSION'), '18');
    assert.equal(filesLeftBehind({ DATA_DIR: 'elsewhere' }, dir, Date.now() - 60_000), undefined);
    // Its database older than this process: a data dir an older release ran.
    assert.deepEqual(filesLeftBehind({ DATA_DIR: 'elsewhere' }, dir, Date.now() + 1_000), {
      old: path.join(dir, '.data', 'files'),
      root: path.join(dir, 'elsewhere', 'files'),
    });
    const warned: unknown[][] = [];
    warnOfFilesLeftBehind(
      { warn: (...a: unknown[]) => warned.push(a) } as never,
      { DATA_DIR: 'elsewhere' },
      dir,
      Date.now() + 1_000,
    );
    assert.match(String(warned[0]?.[1]), /older release.*may be in the old filesystem root.*FILESYSTEM_ROOT/);
    // Nothing to say once they are moved, with FILESYSTEM_ROOT given, or with the default DATA_DIR.
    writeFileSync(path.join(dir, 'elsewhere', 'files', 'report.md'), '# moved');
    assert.equal(filesLeftBehind({ DATA_DIR: 'elsewhere' }, dir, Date.now() + 1_000), undefined);
    assert.equal(
      filesLeftBehind({ DATA_DIR: 'other', FILESYSTEM_ROOT: path.join(dir, 'given-files') }, dir),
      undefined,
    );
    assert.equal(filesLeftBehind({}, dir), undefined);
    for (const [name, port] of [
      ['database', 5002],
      ['fetch', 5004],
      ['automation', 5005],
      ['analytics', 5006],
      ['database_writer', 5007],
    ] as const) {
      const t = byName[name]!.transport;
      assert.equal(t.kind, 'http');
      if (t.kind === 'http') assert.equal(t.url, `http://127.0.0.1:${port}/mcp`);
    }
    const gh = byName.github!;
    assert.ok(
      gh.transport.kind === 'stdio' && gh.transport.args[0]!.endsWith(path.join('server-github', 'dist', 'index.js')),
    );
    assert.ok(existsSync((gh.transport as { args: string[] }).args[0]!), 'server-github is installed');
  });

  it('applies MCP_AUTH_TOKEN, FILESYSTEM_ROOT, the GitHub token and per-server env overrides', () => {
    const root = path.join(dir, 'sandbox');
    const servers = loadRegistry({
      cwd: dir,
      env: {
        MCP_AUTH_TOKEN: 'shared',
        FILESYSTEM_ROOT: root,
        GITHUB_PERSONAL_ACCESS_TOKEN: 'ghp_test',
        MCP_DATABASE_URL: 'http://db.internal:7000/mcp',
        MCP_FETCH_AUTH_TOKEN: 'fetch-only',
        MCP_ANALYTICS_ENABLED: 'false',
        MCP_AUTOMATION_CALL_MS: '1234',
      },
    });
    const byName = Object.fromEntries(servers.map((s) => [s.name, s]));
    assert.equal(byName.database!.auth_token, 'shared');
    assert.deepEqual(byName.database!.transport, { kind: 'http', url: 'http://db.internal:7000/mcp' });
    assert.equal(byName.fetch!.auth_token, 'fetch-only');
    assert.equal(byName.analytics!.enabled, false);
    assert.equal(byName.automation!.timeouts.call_ms, 1234);
    assert.ok(existsSync(root));
    const gh = byName.github!.transport;
    assert.ok(gh.kind === 'stdio' && gh.env.GITHUB_PERSONAL_ACCESS_TOKEN === 'ghp_test');
  });

  it('merges a JSON file over the defaults and adds new servers', () => {
    const file = path.join(dir, 'servers.json');
    writeFileSync(
      file,
      JSON.stringify({
        servers: [
          { name: 'database', breaker: { consecutive_failures: 9 } },
          {
            name: 'search',
            role: 'other',
            transport: { kind: 'http', url: 'http://search:1/mcp' },
            auth_token: '${SEARCH_TOKEN}',
          },
        ],
      }),
    );
    const servers = loadRegistry({ cwd: dir, env: { MCP_SERVERS_FILE: file, SEARCH_TOKEN: 'tok' } });
    const byName = Object.fromEntries(servers.map((s) => [s.name, s]));
    assert.equal(byName.database!.breaker.consecutive_failures, 9);
    // The project's MCP token opens its own servers only: an added server never gets it.
    const added = path.join(dir, 'added.json');
    writeFileSync(
      added,
      JSON.stringify({
        servers: [{ name: 'search', role: 'other', transport: { kind: 'http', url: 'http://search:1/mcp' } }],
      }),
    );
    const withShared = loadRegistry({ cwd: dir, env: { MCP_SERVERS_FILE: added, MCP_AUTH_TOKEN: 'shared' } });
    const shared = Object.fromEntries(withShared.map((s) => [s.name, s]));
    assert.equal(shared.search!.auth_token, undefined, 'a third-party server is not sent the internal token');
    assert.equal(shared.database!.auth_token, 'shared');
    assert.equal(shared.database_writer!.auth_token, 'shared');
    assert.equal(byName.database!.breaker.half_open_after_ms, 5_000);
    assert.equal(byName.search!.auth_token, 'tok');
    assert.equal(servers.length, 8);
  });

  it('reads YAML, and only the file with noDefaults', () => {
    const file = path.join(dir, 'servers.yaml');
    writeFileSync(
      file,
      [
        '- name: everything',
        '  role: other',
        '  transport:',
        '    kind: stdio',
        '    command: node',
        '    args: [server.js]',
        '  retry:',
        '    max_attempts: 1',
      ].join('\n'),
    );
    const servers = loadRegistry({ cwd: dir, env: { MCP_SERVERS_FILE: 'servers.yaml' }, noDefaults: true });
    assert.equal(servers.length, 1);
    assert.equal(servers[0]!.retry.max_attempts, 1);
    assert.deepEqual(servers[0]!.transport, {
      kind: 'stdio',
      command: 'node',
      args: ['server.js'],
      env: {},
      writable: [],
      required_env: [],
    });
  });

  it('fails fast naming the server and the field', () => {
    const file = path.join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify([{ name: 'x', role: 'database', transport: { kind: 'http', url: 'nope' } }]));
    assert.throws(
      () => loadRegistry({ cwd: dir, env: { MCP_SERVERS_FILE: file } }),
      (e: unknown) => e instanceof AppError && e.code === 'validation' && /"x".*transport\.url/.test(e.message),
    );
    assert.throws(
      () => loadRegistry({ cwd: dir, env: { MCP_SERVERS_FILE: path.join(dir, 'missing.json') } }),
      /cannot be read/,
    );
  });

  it('refuses a key it does not know (a misspelt one), naming it, and a server listed twice', () => {
    const typo = path.join(dir, 'typo.json');
    writeFileSync(typo, JSON.stringify({ servers: [{ name: 'fetch', enabeld: false }] }));
    assert.throws(
      () => loadRegistry({ cwd: dir, env: { MCP_SERVERS_FILE: typo } }),
      (e: unknown) => e instanceof AppError && e.code === 'validation' && /"fetch".*enabeld/.test(e.message),
    );
    const nested = path.join(dir, 'nested.json');
    writeFileSync(nested, JSON.stringify([{ name: 'fetch', timeouts: { call_ms: 5_000, cal_ms: 1 } }]));
    assert.throws(
      () => loadRegistry({ cwd: dir, env: { MCP_SERVERS_FILE: nested } }),
      (e: unknown) => e instanceof AppError && /cal_ms/.test(e.message),
    );
    const twice = path.join(dir, 'twice.json');
    writeFileSync(
      twice,
      JSON.stringify([
        { name: 'fetch', enabled: false },
        { name: 'fetch', enabled: true },
      ]),
    );
    assert.throws(
      () => loadRegistry({ cwd: dir, env: { MCP_SERVERS_FILE: twice } }),
      (e: unknown) => e instanceof AppError && /server fetch is listed twice/.test(e.message),
    );
  });
});
