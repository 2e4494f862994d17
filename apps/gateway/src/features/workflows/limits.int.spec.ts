/**
 * Workflow limits through the real HTTP API, PostgreSQL, nats-server and the engine: requests
 * that used to freeze the event loop (a CEL map nested three deep over 300 items, a 10,000-step
 * definition) are answered while the longest block stays under 100 ms, with a clear error.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@switchyard/platform';
import { longestEventLoopBlock } from '@switchyard/testing';
import { startWorkflowGateway, type WorkflowGateway } from './workflow-gateway.spec-fixture.js';

const logger = createLogger('workflow-limits-gateway-int', process.env.LOG_LEVEL ?? 'silent');

describe('workflow limits over real HTTP', () => {
  let f: WorkflowGateway;

  before(async () => {
    f = await startWorkflowGateway({ name: 'wf_limits_gw', logger });
  });

  after(async () => f?.close());

  // A body may come already serialized: the test's own JSON.stringify of a large body must not count as the server's block.
  const http = (method: string, path: string, body?: unknown) => f.http(method, path, body);
  const items = Array.from({ length: 300 }, (_, i) => i);

  it('an ad-hoc workflow with a CEL map nested three deep over 300 items fails its step at the cost budget, without blocking', async (t) => {
    // Warm up the route and the evaluator (first-run compilation is not what this measures).
    const warm = {
      id: 'warm',
      input: { type: 'object', properties: { items: { type: 'array' } } },
      steps: [
        {
          id: 'a',
          uses: 'agent:customer_segmentation',
          if: 'input.items.map(a, input.items.map(b, a + b)).size() < 0',
        },
      ],
    };
    assert.equal(
      (
        await http('POST', '/api/v1/integration/agents/workflow?wait=true', {
          definition: warm,
          input: { items: [1, 2, 3] },
        })
      ).status,
      200,
    );
    const definition = {
      id: 'cel_bomb',
      input: { type: 'object', properties: { items: { type: 'array' } } },
      steps: [
        {
          id: 'bomb',
          uses: 'agent:customer_segmentation',
          with: { v: '${{ input.items.map(a, input.items.map(b, input.items.map(c, a + b + c))) }}' },
        },
      ],
    };
    const body = JSON.stringify({ definition, input: { items } });
    const {
      results: [result],
      maxMs,
      tries,
    } = await longestEventLoopBlock(
      () => http('POST', '/api/v1/integration/agents/workflow?wait=true&wait_ms=10000', body),
      { belowMs: 100 },
    );
    assert.ok(
      maxMs < 100,
      `event loop blocked for ${maxMs.toFixed(1)} ms (tries: ${tries.map((x) => x.toFixed(1)).join(', ')})`,
    );
    t.diagnostic(
      `longest event-loop block: ${maxMs.toFixed(1)} ms (tries: ${tries.map((x) => x.toFixed(1)).join(', ')})`,
    );
    assert.equal(result.status, 200, JSON.stringify(result.body));
    assert.equal(result.body.status, 'failed');
    const events = await http('GET', `/api/v1/workflows/executions/${result.body.execution_id}/events`);
    const failed = events.body.events.find(
      (e: { type: string; data: { stepId?: string } }) => e.type === 'StepFailed' && e.data.stepId === 'bomb',
    );
    assert.equal(failed.data.error.code, 'expression_limit_exceeded');
    assert.match(
      failed.data.error.message,
      /exceeded its (cost budget \(\d+ units, WORKFLOW_EXPRESSION_MAX_COST\)|time limit \(\d+ ms, WORKFLOW_EXPRESSION_TIME_LIMIT_MS\))/,
    );
  });

  it('a for_each over more items than WORKFLOW_MAX_FOR_EACH_ITEMS fails its step, naming the limit', async (t) => {
    const definition = {
      id: 'fan_bomb',
      input: { type: 'object', properties: { items: { type: 'array' } } },
      steps: [
        {
          id: 'each',
          uses: 'agent:customer_segmentation',
          for_each: { items: 'input.items', concurrency: 100 },
          with: { v: '${{ item }}' },
        },
      ],
    };
    const body = JSON.stringify({ definition, input: { items: Array.from({ length: 5_000 }, (_, i) => i) } });
    const {
      results: [result],
      maxMs,
      tries,
    } = await longestEventLoopBlock(
      () => http('POST', '/api/v1/integration/agents/workflow?wait=true&wait_ms=10000', body),
      { belowMs: 100 },
    );
    assert.ok(
      maxMs < 100,
      `event loop blocked for ${maxMs.toFixed(1)} ms (tries: ${tries.map((x) => x.toFixed(1)).join(', ')})`,
    );
    t.diagnostic(
      `longest event-loop block: ${maxMs.toFixed(1)} ms (tries: ${tries.map((x) => x.toFixed(1)).join(', ')})`,
    );
    assert.equal(result.body.status, 'failed', JSON.stringify(result.body));
    assert.match(result.body.error.reason, /gave 5000 items; at most 1000 \(WORKFLOW_MAX_FOR_EACH_ITEMS\)/);
    const events = await http('GET', `/api/v1/workflows/executions/${result.body.execution_id}/events`);
    const failed = events.body.events.find(
      (e: { type: string; data: { stepId?: string } }) => e.type === 'StepFailed' && e.data.stepId === 'each',
    );
    assert.equal(failed.data.error.code, 'for_each_limit_exceeded');
  });

  it('a 10,000-step definition is a 400 naming the limit, answered without blocking (ad hoc and registered)', async (t) => {
    const steps = Array.from({ length: 10_000 }, (_, i) => ({ id: `s${i}`, uses: 'agent:customer_segmentation' }));
    for (const [path, body] of [
      ['/api/v1/integration/agents/workflow', JSON.stringify({ definition: { id: 'huge', steps } })],
      ['/api/v1/workflows/definitions', JSON.stringify({ id: 'huge', version: 1, name: 'huge', steps })],
    ] as const) {
      const {
        results: [result],
        maxMs,
        tries,
      } = await longestEventLoopBlock(() => http('POST', path, body), { belowMs: 100 });
      assert.ok(
        maxMs < 100,
        `${path}: event loop blocked for ${maxMs.toFixed(1)} ms (tries: ${tries.map((x) => x.toFixed(1)).join(', ')})`,
      );
      t.diagnostic(
        `${path}: longest event-loop block ${maxMs.toFixed(1)} ms (tries: ${tries.map((x) => x.toFixed(1)).join(', ')})`,
      );
      assert.equal(result.status, 400, JSON.stringify(result.body).slice(0, 500));
      assert.ok(
        result.body.errors.some(
          (e: { path: string; code: string; message: string }) =>
            e.path === 'steps' &&
            e.code === 'limit_exceeded' &&
            e.message === 'definition has 10000 steps; at most 500 (WORKFLOW_MAX_STEPS)',
        ),
        JSON.stringify(result.body.errors),
      );
    }
  });

  it('an input pattern too large once compiled is a 400 naming it, answered without compiling it (seconds and a GB before)', async (t) => {
    // 9.7 KB of text, 1.39 million RE2 instructions: compiling it held the process 5 s and 1 GB.
    const body = JSON.stringify({
      id: 'huge_pattern',
      version: 1,
      name: 'huge pattern',
      input: { type: 'object', properties: { s: { type: 'string', pattern: 'a{1000}'.repeat(1390) } } },
      steps: [{ id: 'a', uses: 'agent:customer_segmentation' }],
    });
    const {
      results: [result],
      maxMs,
      tries,
    } = await longestEventLoopBlock(() => http('POST', '/api/v1/workflows/definitions/validate', body), {
      belowMs: 100,
    });
    t.diagnostic(
      `longest event-loop block ${maxMs.toFixed(1)} ms (tries: ${tries.map((x) => x.toFixed(1)).join(', ')})`,
    );
    assert.ok(maxMs < 100, `event loop blocked for ${maxMs.toFixed(1)} ms`);
    assert.equal(result.status, 200, JSON.stringify(result.body).slice(0, 500));
    assert.equal(result.body.valid, false);
    assert.ok(
      result.body.errors.some(
        (e: { path: string; message: string }) =>
          e.path === 'input.properties.s.pattern' && /too large once compiled/.test(e.message),
      ),
      JSON.stringify(result.body.errors).slice(0, 500),
    );
  });

  it('a definition nested deeper than WORKFLOW_MAX_NESTING_DEPTH is a 400 with the path', async () => {
    let deep: unknown = 1;
    // Past ours (32) but within the gateway's own body-depth check.
    for (let i = 0; i < 40; i++) deep = [deep];
    const r = await http('POST', '/api/v1/integration/agents/workflow', {
      definition: { id: 'deep', steps: [{ id: 'a', uses: 'agent:customer_segmentation', with: { v: deep } }] },
    });
    assert.equal(r.status, 400);
    const e = r.body.errors.find((x: { code: string }) => x.code === 'limit_exceeded');
    assert.match(e.message, /deeper than 32 levels \(WORKFLOW_MAX_NESTING_DEPTH\)/);
    assert.match(e.path, /^steps\[0\]\.with\.v(\[0\])+$/);
  });
});
