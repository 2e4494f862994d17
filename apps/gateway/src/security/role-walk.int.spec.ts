import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Controller, Delete, Get, Module, Post } from '@nestjs/common';
import { stopOwnInfra } from '@switchyard/testing';
import { AgentsFeatureModule } from '../features/agents/index.js';
import { McpFeatureModule } from '../features/mcp/index.js';
import { McpServerFeatureModule } from '../features/mcp-server/index.js';
import { StatusFeatureModule } from '../features/status/index.js';
import { SystemFeatureModule } from '../features/system/index.js';
import { WorkflowsFeatureModule } from '../features/workflows/index.js';
import { ApiRoute } from '../openapi/registry.js';
import { bearer, startSecuredGateway, type SecuredGateway } from './test-support.js';

// Feature routes of each kind, so every cell of the matrix is exercised (the built-in
// routes have no operator route and no undeclared one outside the public set).
@Controller('test-walk')
class WalkController {
  @Post('operate')
  @ApiRoute({ role: 'operator' })
  operate() {
    return { ok: true };
  }
  @Get('undeclared')
  undeclared() {
    return { ok: true };
  }
  @Get('open')
  @ApiRoute({ role: 'public' })
  open() {
    return { ok: true };
  }
  @Delete('things/:id')
  @ApiRoute({ role: 'viewer' })
  remove() {
    return { ok: true };
  }
}
@Module({ controllers: [WalkController] })
class WalkModule {}

type Need = 'public' | 'viewer' | 'operator' | 'admin';
const ORDER: Need[] = ['viewer', 'operator', 'admin'];
const PUBLIC_WITHOUT_ROLE = new Set(['/livez', '/readyz', '/docs', '/docs/openapi.json', '/docs/init.js']);

/** The rule written out again, on purpose not imported: the test must catch a drift in the guard. */
function expectedNeed(role: unknown, path: string): Need {
  if (role === 'public') return 'public';
  if (role === null || role === undefined) return PUBLIC_WITHOUT_ROLE.has(path) ? 'public' : 'admin';
  if (role === 'auditor') return 'viewer';
  return (ORDER as string[]).includes(role as string) ? (role as Need) : 'admin';
}

interface Op {
  method: string;
  path: string;
  role: unknown;
}

describe('every registered route enforces its declared role', () => {
  let g: SecuredGateway;
  let ops: Op[];
  let document: { paths: Record<string, Record<string, Record<string, any>>> };
  const keys: Record<'none' | 'viewer' | 'operator' | 'admin', string | undefined> = {
    none: undefined,
    viewer: '',
    operator: '',
    admin: '',
  };

  before(async () => {
    // The committed feature modules too (their back ends absent: 503s are fine here, only 401/403 matter).
    g = await startSecuredGateway('gw_rolewalk', {
      modules: [
        WalkModule,
        WorkflowsFeatureModule,
        McpFeatureModule,
        SystemFeatureModule,
        AgentsFeatureModule,
        StatusFeatureModule,
        McpServerFeatureModule,
      ],
    });
    keys.admin = g.adminKey;
    keys.viewer = (await g.makeKey('viewer')).key;
    keys.operator = (await g.makeKey('operator')).key;
    const doc = (await (await fetch(`${g.url}/docs/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { 'x-required-role'?: unknown }>>;
    };
    document = doc;
    ops = Object.entries(doc.paths).flatMap(([path, byMethod]) =>
      Object.entries(byMethod).map(([method, op]) => ({
        method: method.toUpperCase(),
        path,
        role: op['x-required-role'],
      })),
    );
  });
  after(async () => {
    await g?.close();
    await stopOwnInfra();
  });

  it('documents a role for every route (undeclared ones show what is enforced)', () => {
    for (const op of ops)
      assert.ok(
        ['public', 'viewer', 'operator', 'admin', 'auditor'].includes(op.role as string),
        `${op.method} ${op.path}: ${String(op.role)}`,
      );
    assert.equal(ops.find((o) => o.path === '/test-walk/undeclared')?.role, 'admin');
    assert.equal(ops.find((o) => o.path === '/livez')?.role, 'public');
    assert.equal(ops.find((o) => o.path === '/api/v1/events')?.role, 'viewer');
  });

  it('documents every seed route with its request and response schemas and an example', () => {
    const seed = Object.entries(document.paths).filter(([path]) => path.startsWith('/api/v1/') || path === '/metrics');
    assert.ok(seed.length >= 30, `${seed.length} seed paths`);
    const missing: string[] = [];
    for (const [path, byMethod] of seed) {
      for (const [method, op] of Object.entries(byMethod)) {
        const where = `${method.toUpperCase()} ${path}`;
        const [status, success] = Object.entries(op.responses as Record<string, any>).find(([code]) =>
          code.startsWith('2'),
        )!;
        assert.ok(status, `${where}: no success response`);
        if (status !== '204' && !(success.content && Object.keys(success.content).length > 0))
          missing.push(`${where}: no response schema`);
        for (const [type, media] of Object.entries((success.content ?? {}) as Record<string, any>)) {
          assert.ok(media.schema, `${where}: ${type} has no schema`);
          if (type.includes('json') && media.example === undefined) missing.push(`${where}: ${type} has no example`);
        }
        if (op.requestBody) {
          const body = op.requestBody.content['application/json'];
          if (!body.schema || body.example === undefined)
            missing.push(`${where}: request body without schema or example`);
        }
      }
    }
    assert.deepEqual(missing, []);
  });

  it('discovers the routes from the OpenAPI document', () => {
    const names = ops.map((o) => `${o.method} ${o.path}`);
    for (const must of [
      'GET /livez',
      'GET /api/v1/events',
      'GET /api/v1/audit',
      'POST /api/v1/admin/api-keys',
      'DELETE /api/v1/admin/api-keys/{id}',
      'POST /test-walk/operate',
    ]) {
      assert.ok(names.includes(must), `${must} missing from ${names.join(', ')}`);
    }
  });

  it('no key: 401 unless public; a key: 403 below the role, never 401/403 at or above it', async () => {
    const cells: string[] = [];
    for (const op of ops) {
      const need = expectedNeed(op.role, op.path);
      // Fill path parameters with a well-formed id that does not exist (16 hex fits the key ids).
      const url = g.url + op.path.replace(/\{[^}]+\}/g, 'ffffffffffffffff');
      for (const [who, key] of Object.entries(keys)) {
        const ac = new AbortController();
        const res = await fetch(url, {
          method: op.method,
          headers: {
            ...(key ? bearer(key) : {}),
            ...(op.method === 'POST' ? { 'content-type': 'application/json' } : {}),
          },
          ...(op.method === 'POST' ? { body: '{}' } : {}),
          signal: ac.signal,
        });
        ac.abort(); // an SSE answer never ends; the status is all we need
        const allowed = need === 'public' || (who !== 'none' && ORDER.indexOf(who as Need) >= ORDER.indexOf(need));
        const where = `${op.method} ${op.path} as ${who} (needs ${need}) -> ${res.status}`;
        cells.push(where);
        if (allowed) {
          assert.ok(res.status !== 401 && res.status !== 403, where);
          assert.ok(res.status < 500 || res.status === 503, where); // 503: a feature's back end is absent here
        } else if (who === 'none') {
          assert.equal(res.status, 401, where);
          assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/, where);
        } else {
          assert.equal(res.status, 403, where);
        }
      }
    }
    if (process.env.ROLE_WALK_VERBOSE) console.log(cells.join('\n'));
    // Every kind of route was walked.
    const needs = new Set(ops.map((o) => expectedNeed(o.role, o.path)));
    assert.deepEqual([...needs].sort(), ['admin', 'operator', 'public', 'viewer']);
    assert.equal(cells.length, ops.length * 4);
  });
});
