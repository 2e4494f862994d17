import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import {
  allowPlainPasswordSchema,
  createPgClient,
  createPgPool,
  isConnectionError,
  isPassingDatabaseFailure,
  isResourceShortage,
  PG_PASSWORD_HANDLERS,
} from './pg.js';

// dist/infra -> the repository root.
const root = path.resolve(import.meta.dirname, '..', '..', '..', '..');

/** The TypeScript sources the running system is built from (apps/*\/src, libs/*\/src), without specs. */
function systemSources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir)) {
      if (e === 'node_modules' || e === 'dist' || e.startsWith('.')) continue;
      const p = path.join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (e.endsWith('.ts') && !e.endsWith('.d.ts') && !/\.(unit|int|e2e)\.spec\.ts$/.test(e)) out.push(p);
    }
  };
  for (const group of ['apps', 'libs']) {
    for (const pkg of readdirSync(path.join(root, group))) {
      const src = path.join(root, group, pkg, 'src');
      if (statSync(src, { throwIfNoEntry: false })?.isDirectory()) walk(src);
    }
  }
  return out;
}

describe('PostgreSQL connections always have an error listener', () => {
  it('no source file makes a pg.Pool or pg.Client except through createPgPool / createPgClient', () => {
    const files = systemSources();
    assert.ok(files.length > 100, `found the sources (${files.length} files under ${root})`);
    const offenders: string[] = [];
    for (const file of files) {
      if (file.endsWith(path.join('libs', 'platform', 'src', 'infra', 'pg.ts'))) continue;
      const text = readFileSync(file, 'utf8');
      // Names imported from 'pg' itself (`import { Pool, Client } from 'pg'`), besides the default `pg.`.
      const named = [...text.matchAll(/import\s*\{([^}]*)\}\s*from\s*'pg'/g)].flatMap((m) =>
        m[1]!
          .split(',')
          .map((s) =>
            s
              .trim()
              .split(/\s+as\s+/)
              .pop()!
              .trim(),
          )
          .filter(Boolean),
      );
      const patterns = [
        /new\s+pg\.(Pool|Client)\s*\(/g,
        ...named.filter((n) => /^\w+$/.test(n)).map((n) => new RegExp(`new\\s+${n}\\s*\\(`, 'g')),
      ];
      for (const re of patterns) {
        for (const m of text.matchAll(re)) {
          const line = text.slice(0, m.index).split('\n').length;
          offenders.push(`${path.relative(root, file)}:${line}: ${m[0]}`);
        }
      }
    }
    assert.deepEqual(
      offenders,
      [],
      'use createPgPool / createPgClient from @switchyard/platform (they attach the error listeners)',
    );
  });

  it('every source file that spawns a child process listens for its error event', () => {
    const offenders: string[] = [];
    for (const file of systemSources()) {
      const text = readFileSync(file, 'utf8');
      const code = text
        .split('\n')
        .filter((l) => !/^\s*(\/\/|\*|\/\*)/.test(l))
        .join('\n');
      if (!/\bspawn\s*\(/.test(code)) continue;
      if (!/\.(on|once)\(\s*'error'/.test(text)) offenders.push(path.relative(root, file));
    }
    assert.deepEqual(
      offenders,
      [],
      'a spawn that fails (ENOENT, EACCES) emits error on the child: without a listener the process dies',
    );
  });

  it('a guarded client emitting error (session terminated while checked out) does not throw, and its owner hears once', () => {
    const heard: string[] = [];
    const client = createPgClient(
      { connectionString: 'postgres://nobody@127.0.0.1:1/x' },
      { name: 't', onError: (e) => heard.push(e.message) },
    );
    assert.doesNotThrow(() => client.emit('error', new Error('terminating connection due to administrator command')));
    assert.doesNotThrow(() => client.emit('error', new Error('Connection terminated unexpectedly')));
    assert.deepEqual(heard, ['terminating connection due to administrator command']);
    // Without the helper the same emit throws: that is what ended the process.
    assert.throws(() => new EventEmitter().emit('error', new Error('unhandled')), /unhandled/);
  });

  it('a guarded pool listens on every client it connects, not only on idle ones', async () => {
    const pool = createPgPool({ connectionString: 'postgres://nobody@127.0.0.1:1/x' }, { name: 't' });
    const client = new EventEmitter();
    pool.emit('connect', client);
    assert.equal(client.listenerCount('error'), 1);
    assert.doesNotThrow(() =>
      client.emit('error', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })),
    );
    assert.doesNotThrow(() => pool.emit('error', new Error('idle client died'), client));
    await pool.end();
  });

  it("pg still answers the server's clear-text and MD5 password requests through the handlers the SCRAM-only client overrides", () => {
    // If pg renames them, the override would silently stop refusing: pg-password.int.spec.ts would fail too.
    for (const name of PG_PASSWORD_HANDLERS)
      assert.equal(typeof (pg.Client.prototype as unknown as Record<string, unknown>)[name], 'function', name);
    const attach = String((pg.Client.prototype as unknown as { _attachListeners: () => void })._attachListeners);
    assert.match(attach, /'authenticationCleartextPassword', this\._handleAuthCleartextPassword\.bind\(this\)/);
    assert.match(attach, /'authenticationMD5Password', this\._handleAuthMD5Password\.bind\(this\)/);
  });

  it('DATABASE_ALLOW_PLAIN_PASSWORD is off unless set to a true value', () => {
    assert.equal(allowPlainPasswordSchema.parse(undefined), false);
    assert.equal(allowPlainPasswordSchema.parse('true'), true);
    assert.equal(allowPlainPasswordSchema.parse('0'), false);
    assert.throws(() => allowPlainPasswordSchema.parse('sure'));
  });

  it('tells connection failures from statement errors', () => {
    assert.equal(
      isConnectionError(
        Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      ),
      true,
    );
    assert.equal(isConnectionError(Object.assign(new Error('x'), { code: 'ECONNRESET' })), true);
    // No descriptor left for a socket: a connection may be had again once some are closed.
    assert.equal(
      isConnectionError(Object.assign(new Error('connect EMFILE 127.0.0.1:5432'), { code: 'EMFILE' })),
      true,
    );
    assert.equal(isConnectionError(new Error('Connection terminated unexpectedly')), true);
    // pg-pool's words when no client came within connectionTimeoutMillis (a full pool, a silent server).
    assert.equal(isConnectionError(new Error('timeout exceeded when trying to connect')), true);
    assert.equal(isConnectionError(Object.assign(new Error('syntax error'), { code: '42601' })), false);
    assert.equal(isConnectionError(undefined), false);
  });

  it('tells a server short of a resource (class 53) from a statement error; both kinds of passing failure together', () => {
    const disk = Object.assign(new Error('could not extend file'), { code: '53100' });
    assert.equal(isResourceShortage(disk), true);
    assert.equal(isResourceShortage(Object.assign(new Error('too many clients'), { code: '53300' })), true);
    assert.equal(isResourceShortage(Object.assign(new Error('x'), { code: '42501' })), false);
    assert.equal(isResourceShortage(Object.assign(new Error('x'), { code: '530' })), false);
    assert.equal(isPassingDatabaseFailure(disk), true);
    assert.equal(isPassingDatabaseFailure(Object.assign(new Error('x'), { code: 'ECONNRESET' })), true);
    assert.equal(isPassingDatabaseFailure(Object.assign(new Error('syntax error'), { code: '42601' })), false);
  });
});
