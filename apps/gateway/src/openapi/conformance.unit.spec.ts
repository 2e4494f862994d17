import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { AppError } from '@switchyard/platform';
import { toProblem } from '../http/problem.js';
import {
  allowedMethods,
  shadowedLiteralPaths,
  shadowedMethodNotAllowed,
  undeclaredQueryError,
} from '../http/route-checks.js';
import { waitWithin } from '../http/wait.js';
import { Exchanges } from '../http/exchange.js';
import { runInRequestContext } from '../http/context.js';
import { errorStatusesOf } from './registry.js';

describe('REST API conformance helpers', () => {
  it('field errors made behind the gateway get the documented shape (a code on each)', () => {
    const { problem } = toProblem(
      new AppError('validation', 'invalid context', {
        errors: [
          { path: 'context.timeframe', message: 'bad' },
          { path: ['a', 0], message: 'x', in: 'nowhere' },
        ],
      }),
      {
        instance: '/x',
        correlationId: 'c',
      },
    );
    assert.deepEqual(problem.errors, [
      { path: 'context.timeframe', message: 'bad', code: 'invalid' },
      { path: 'a.0', message: 'x', code: 'invalid' },
    ]);
  });

  it('allowed methods of a path among OpenAPI templates, HEAD with GET', () => {
    const routes = [
      { method: 'get', path: '/a/{id}' },
      { method: 'delete', path: '/a/{id}' },
      { method: 'post', path: '/a/{id}/cancel' },
      { method: 'get', path: '/b.c' },
    ];
    assert.deepEqual(allowedMethods(routes, '/a/x_1'), ['DELETE', 'GET', 'HEAD']);
    assert.deepEqual(allowedMethods(routes, '/a/x_1/'), ['DELETE', 'GET', 'HEAD']);
    assert.deepEqual(allowedMethods(routes, '/a/x/cancel'), ['POST']);
    assert.deepEqual(allowedMethods(routes, '/a/x/y'), []);
    assert.deepEqual(allowedMethods(routes, '/bxc'), [], 'a dot in a template is literal');
  });

  it('a literal path another method reaches through a parameterised route: 405 before routing', () => {
    const routes = [
      { method: 'get', path: '/e/{id}' },
      { method: 'post', path: '/e/bulk' },
      { method: 'get', path: '/e' },
      { method: 'post', path: '/e' },
    ];
    const shadowed = shadowedLiteralPaths(routes);
    assert.deepEqual([...shadowed], [['/e/bulk', ['POST']]], '/e has every method a template gives it');
    assert.deepEqual(shadowedMethodNotAllowed(shadowed, 'get', '/e/bulk'), ['POST']);
    assert.deepEqual(shadowedMethodNotAllowed(shadowed, 'GET', '/E/Bulk/'), ['POST'], 'as the router: case, slash');
    assert.equal(shadowedMethodNotAllowed(shadowed, 'POST', '/e/bulk'), undefined);
    assert.equal(shadowedMethodNotAllowed(shadowed, 'GET', '/e/wf_1'), undefined);
  });

  it('query parameters on a route that declares none: 400 naming each', () => {
    assert.equal(undeclaredQueryError({}), undefined);
    const err = undeclaredQueryError({ a: '1', b: '2' });
    assert.equal(err?.code, 'validation');
    assert.deepEqual(
      (err?.details.errors as { path: string }[]).map((e) => e.path),
      ['a', 'b'],
    );
  });

  it('a wait ends before the request timeout', () => {
    assert.equal(waitWithin(60_000, 30_000), 25_000);
    assert.equal(waitWithin(1_000, 30_000), 1_000);
    assert.equal(waitWithin(60_000, 3_000), 2_400);
    assert.equal(waitWithin(60_000, 0), 60_000);
    // Its clock started when the request arrived: 10 s spent before the handler leave 15 s.
    const raw = Object.assign(new EventEmitter(), { writableFinished: false, destroyed: false });
    const x = new Exchanges([]).begin({} as never, { raw } as never);
    (x as { start: number }).start -= 10_000;
    let inRequest = 0;
    runInRequestContext({ correlationId: 'c' } as never, () => void (inRequest = waitWithin(60_000, 30_000)), raw);
    assert.ok(inRequest > 14_000 && inRequest <= 15_000, String(inRequest));
  });

  it('the statuses an operation documents follow from its role, method and path', () => {
    const all = { auth: true, rateLimit: true, timeout: true };
    assert.deepEqual(
      errorStatusesOf({ method: 'get', path: '/livez', doc: { role: 'public' } }, all),
      [400, 429, 431, 500, 504],
    );
    assert.deepEqual(
      errorStatusesOf({ method: 'get', path: '/x', doc: { role: 'viewer' } }, all),
      [400, 401, 429, 431, 500, 503, 504],
    );
    assert.deepEqual(
      errorStatusesOf({ method: 'post', path: '/x/{id}', doc: { role: 'admin', errors: [409] } }, all),
      [400, 401, 403, 404, 409, 413, 415, 429, 431, 500, 503, 504],
    );
    assert.deepEqual(
      errorStatusesOf(
        { method: 'get', path: '/x', doc: { role: 'admin' } },
        { auth: false, rateLimit: false, timeout: false },
      ),
      [400, 431, 500],
    );
  });
});
