import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EdgeRequest } from './edge.js';
import { compileRoute, GatewayHttpMetrics, UNMATCHED_ROUTE } from './metrics.js';

// A Fastify request as routeOf reads it: a matched route has its pattern, an unmatched one is404.
const req = (r: { method?: string; originalUrl: string; route?: { path: string } }) =>
  ({
    method: r.method ?? 'GET',
    originalUrl: r.originalUrl,
    url: r.originalUrl,
    is404: !r.route,
    routeOptions: { url: r.route?.path },
  }) as unknown as EdgeRequest;

describe('compileRoute', () => {
  it('turns an OpenAPI path into a matcher and the express template', () => {
    const r = compileRoute({ method: 'get', path: '/api/v1/workflows/executions/{execution_id}/events' });
    assert.equal(r.method, 'GET');
    assert.equal(r.template, '/api/v1/workflows/executions/:execution_id/events');
    assert.ok(r.regex.test('/api/v1/workflows/executions/abc-1/events'));
    assert.ok(r.regex.test('/api/v1/workflows/executions/abc-1/events/'));
    assert.ok(!r.regex.test('/api/v1/workflows/executions/a/b/events'));
    assert.ok(!r.regex.test('/api/v1/workflows/executionsX/a/events'));
    assert.ok(
      compileRoute({ method: 'get', path: '/a.b' }).regex.test('/a.b') &&
        !compileRoute({ method: 'get', path: '/a.b' }).regex.test('/aXb'),
    );
  });
});

describe('GatewayHttpMetrics.routeOf', () => {
  const m = new GatewayHttpMetrics();
  m.useRoutes(() => [
    { method: 'post', path: '/api/v1/system/alerts/{alert_id}/resolve' },
    { method: 'get', path: '/livez' },
  ]);

  it('a matched route is its template, never the raw path', () => {
    assert.equal(
      m.routeOf(
        req({
          route: { path: '/api/v1/workflows/executions/:execution_id' },
          originalUrl: '/api/v1/workflows/executions/123',
        }),
      ),
      '/api/v1/workflows/executions/:execution_id',
    );
  });
  it('answered before routing: the known route it would have matched (HEAD as GET), with the query ignored', () => {
    assert.equal(
      m.routeOf(req({ method: 'POST', originalUrl: '/api/v1/system/alerts/ab12/resolve?x=1' })),
      '/api/v1/system/alerts/:alert_id/resolve',
    );
    assert.equal(m.routeOf(req({ method: 'HEAD', originalUrl: '/livez' })), '/livez');
    assert.equal(m.routeOf(req({ method: 'GET', originalUrl: '/api/v1/system/alerts/ab12/resolve' })), UNMATCHED_ROUTE);
  });
  it('a mounted handler is its mount pattern; anything else is unmatched', () => {
    assert.equal(
      m.routeOf(req({ route: { path: '/docs/assets/*' }, originalUrl: '/docs/assets/x.css' })),
      '/docs/assets/*',
    );
    assert.equal(m.routeOf(req({ originalUrl: '/wp-admin/x.php' })), UNMATCHED_ROUTE);
  });
});
