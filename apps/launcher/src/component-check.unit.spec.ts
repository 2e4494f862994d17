import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { componentCheck } from './system.js';
import { READ_MODELS_CATCHING_UP } from './lag-watch.js';
import type { UnitStatus } from './supervisor.js';

const unit = (state: UnitStatus['state'], lastError?: string): UnitStatus => ({
  name: 'read-models',
  state,
  restarts: 0,
  since: new Date(0).toISOString(),
  ...(lastError ? { lastError } : {}),
});
const check = (u: UnitStatus) => () => componentCheck({ status: () => [u] }, u.name);

describe("the health report's probe of a launcher unit", () => {
  it('passes for a unit degraded only because its read models replay (it serves; /readyz still names it), and fails for any other fault', () => {
    const lag = `${READ_MODELS_CATCHING_UP} (workflow_executions 3013270 events behind): their lists and counts show older data`;
    assert.deepEqual(check(unit('degraded', lag))(), { state: 'degraded', note: lag, restarts: 0 });
    assert.deepEqual(check(unit('running'))(), { state: 'running', restarts: 0 });
    assert.throws(check(unit('degraded', 'nats-server: JetStream is not enabled')), /^Error: degraded: nats-server/);
    assert.throws(check(unit('restarting', 'connection refused')), /restarting: connection refused/);
  });
});
