import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { integrationStatusExample, integrationStatusResponse } from './schemas.js';
import { resolveStatusOptions } from './options.js';

describe('status feature', () => {
  it('the documented example satisfies the response schema', () => {
    assert.deepEqual(integrationStatusResponse.parse(integrationStatusExample), integrationStatusExample);
  });
  it('options: refresh every 2 s, stale after 10 s by default, and at least 5 refresh periods', () => {
    assert.deepEqual(resolveStatusOptions(), { refreshMs: 2_000, staleAfterMs: 10_000 });
    assert.equal(resolveStatusOptions({ refreshMs: 5_000 }).staleAfterMs, 25_000);
    assert.equal(resolveStatusOptions({ refreshMs: 5_000, staleAfterMs: 7_000 }).staleAfterMs, 7_000);
  });
});
