import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Request } from 'express';
import { compileRoute, GatewayHttpMetrics, UNMATCHED_ROUTE } from './metrics.js';

const req = (r: Partial<Request> & { route?: { path: string } }) => ({ method: 'GET', baseUrl: '', originalUrl: '/', url: '/', ...r }) as unknown as Request;

describe('compileRoute', () => {
  it('turns an OpenAPI path into a matcher and the express template', () => {
    const r = compileRoute({ method: 'get', path: '/api/v1/workflows/executions/{execution_id}/events' });
    assert.equal(r.method, 'GET');
    assert.equal(r.template, '/api/v1/workflows/executions/:execution_id/events');
    assert.ok(r.regex.test('/api/v1/workflows/executions/abc-1/events'));
    assert.ok(r.regex.test('/api/v1/workflows/executions/abc-1/events/'));
    assert.ok(!r.regex.test('/api/v1/workflows/executions/a/b/events'));
    assert.ok(!r.regex.test('/api/v1/workflows/executionsX/a/events'));
    assert.ok(compileRoute({ method: 'get', path: '/a.b' }).regex.test('/a.b') && !compileRoute({ method: 'get', path: '/a.b' }).regex.test('/aXb'));
  });
});

describe('GatewayHttpMetrics.routeOf', () => {
  const m = new GatewayHttpMetrics();
  m.useRoutes(() => [{ method: 'post', path: '/api/v1/system/alerts/{alert_id}/resolve' }, { method: 'get', path: '/livez' }]);

  it('a matched route is its template, never the raw path', () => {
    assert.equal(m.routeOf(req({ route: { path: '/api/v1/workflows/executions/:execution_id' }, originalUrl: '/api/v1/workflows/executions/123' })), '/api/v1/workflows/executions/:execution_id');
  });
  it('answered before routing: the known route it would have matched (HEAD as GET), with the query ignored', () => {
    assert.equal(m.routeOf(req({ method: 'POST', originalUrl: '/api/v1/system/alerts/ab12/resolve?x=1' })), '/api/v1/system/alerts/:alert_id/resolve');
    assert.equal(m.routeOf(req({ method: 'HEAD', originalUrl: '/livez' })), '/livez');
    assert.equal(m.routeOf(req({ method: 'GET', originalUrl: '/api/v1/system/alerts/ab12/resolve' })), UNMATCHED_ROUTE);
  });
  it('a mounted handler is its mount; anything else is unmatched', () => {
    assert.equal(m.routeOf(req({ baseUrl: '/docs/assets', originalUrl: '/docs/assets/x.css' })), '/docs/assets/*');
    assert.equal(m.routeOf(req({ originalUrl: '/wp-admin/x.php' })), UNMATCHED_ROUTE);
  });
});
