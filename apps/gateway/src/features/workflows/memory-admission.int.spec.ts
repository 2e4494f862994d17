/**
 * Admission by memory through the real HTTP API, PostgreSQL and the engine: while the process's
 * memory share is past the high mark (readings injected into the process's MemoryBudget), a
 * workflow start is refused 503 with Retry-After and a problem naming memory, and records
 * nothing (no event, the Idempotency-Key free); once the share falls under the clear mark, the
 * same start is accepted.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  createLogger,
  MemoryBudget,
  processMemorySources,
  setProcessMemoryBudget,
  type MemorySources,
} from '@switchyard/platform';
import { startWorkflowGateway, type WorkflowGateway } from './workflow-gateway.spec-fixture.js';

const logger = createLogger('memory-admission-int', process.env.LOG_LEVEL ?? 'silent');
const MiB = 1024 * 1024;

const quick = { id: 'quick', steps: [{ id: 'w', wait: { signal: 'go', timeout_ms: 600_000 } }] };

describe('workflow starts refused while memory is high, over real HTTP', () => {
  let f: WorkflowGateway;
  let before_: MemoryBudget | undefined;
  let rss = 100 * MiB;
  let now = 0;

  before(async () => {
    // The process's budget, with a ceiling of 1000 MiB (MEMORY_LIMIT_MB) and the RSS this test sets.
    const sources: MemorySources = { ...processMemorySources, rssBytes: () => rss, readFile: () => undefined };
    before_ = setProcessMemoryBudget(new MemoryBudget({ sources, configuredMb: 1000, now: () => (now += 1_000) }));
    f = await startWorkflowGateway({ name: 'wf_memory_admission', logger });
  });

  after(async () => {
    await f?.close();
    setProcessMemoryBudget(before_);
  });

  const start = (headers: Record<string, string> = {}) =>
    f.http('POST', '/api/v1/integration/agents/workflow', { definition: quick, input: {} }, headers);
  const events = async () =>
    (await f.pool.query<{ n: number }>(`select count(*)::int as n from eventstore.events`)).rows[0]!.n;

  it('refuses 503 with Retry-After naming memory, recording nothing, and accepts again below the mark', async () => {
    const first = await start();
    assert.equal(first.status, 202, JSON.stringify(first.body));

    rss = 800 * MiB; // 80 % of the ceiling
    const recorded = await events();
    const refused = await start({ 'idempotency-key': 'memory-start-1' });
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'unavailable');
    assert.equal(refused.body.reason, 'memory');
    assert.equal(refused.body.retryable, true);
    assert.equal(refused.body.memory_ceiling_source, 'MEMORY_LIMIT_MB');
    assert.ok(refused.body.memory_share >= 0.75, JSON.stringify(refused.body));
    assert.match(refused.body.detail, /workflow start refused: .*memory/);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1, 'Retry-After says when to come back');
    assert.equal(await events(), recorded, 'a refused start records nothing');
    const fork = await f.http('POST', `/api/v1/workflows/executions/${first.body.execution_id}/fork`, {
      from_step: 'w',
    });
    assert.equal(fork.status, 503, JSON.stringify(fork.body));
    assert.equal(fork.body.reason, 'memory');
    const ready = await f.http('GET', '/readyz');
    assert.equal(ready.status, 200, 'still ready: reads and running work go on');
    assert.equal(ready.body.status, 'degraded');
    assert.equal(ready.body.checks.memory.status, 'degraded');
    assert.match(ready.body.checks.memory.error, /memory ceiling \(1000 MiB, from MEMORY_LIMIT_MB\)/);

    rss = 600 * MiB; // under the clear mark (70 %)
    const accepted = await start({ 'idempotency-key': 'memory-start-1' });
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    assert.notEqual(accepted.headers.get('idempotent-replayed'), 'true', 'the key was left free by the refusal');
    const again = await start({ 'idempotency-key': 'memory-start-1' });
    assert.equal(again.body.execution_id, accepted.body.execution_id, 'and the start stays idempotent');
    assert.equal((await f.http('GET', '/readyz')).body.checks.memory.status, 'up');
  });
});
