import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { AppError } from '@switchyard/platform';
import { signWebhook } from './deliveries.js';
import { nextFireAfter } from './schedules.decider.js';
import { parseDuration } from '../analytics/server.js';
import { leadingKeyword } from '../database/server.js';
import { toolError } from '../common/tools.js';

describe('nextFireAfter', () => {
  it('is strictly after the given instant, in the schedule time zone', () => {
    assert.equal(
      nextFireAfter('*/5 * * * *', 'UTC', new Date('2026-01-01T00:05:00Z')).toISOString(),
      '2026-01-01T00:10:00.000Z',
    );
    assert.equal(
      nextFireAfter('0 9 * * *', 'America/New_York', new Date('2026-07-01T00:00:00Z')).toISOString(),
      '2026-07-01T13:00:00.000Z',
    );
  });
  it('names what is wrong', () => {
    assert.throws(
      () => nextFireAfter('99 * * * *', 'UTC', new Date()),
      (e: unknown) => e instanceof AppError && e.code === 'validation' && /cron/.test(e.message),
    );
    assert.throws(
      () => nextFireAfter('* * * * *', 'Nowhere/Land', new Date()),
      (e: unknown) => e instanceof AppError && e.code === 'validation' && /time zone/.test(e.message),
    );
  });
});

describe('signWebhook', () => {
  it('is the sha256 HMAC of "<timestamp>.<body>"', () => {
    const want = createHmac('sha256', 'k').update('1700000000.{"a":1}').digest('hex');
    assert.equal(signWebhook('k', 1700000000, '{"a":1}'), `sha256=${want}`);
  });
});

describe('parseDuration', () => {
  it('turns short durations into intervals and seconds', () => {
    assert.deepEqual(parseDuration('24h'), { interval: '24 hours', seconds: 86400 });
    assert.deepEqual(parseDuration('7d'), { interval: '7 days', seconds: 604800 });
    assert.throws(
      () => parseDuration('1 hour'),
      (e: unknown) => e instanceof AppError && e.code === 'validation',
    );
  });
});

describe('leadingKeyword', () => {
  it('skips whitespace and comments', () => {
    assert.equal(leadingKeyword('  -- c\n /* x */ COMMIT'), 'commit');
    assert.equal(leadingKeyword('select 1'), 'select');
  });
});

describe('toolError', () => {
  it('is an MCP tool error carrying the code in text and structured content', () => {
    const r = toolError(new AppError('not_found', 'no such table', { table: 't' }));
    assert.equal(r.isError, true);
    assert.equal((r.content[0] as { text: string }).text, '[not_found] no such table');
    assert.deepEqual(r.structuredContent, {
      error: { code: 'not_found', message: 'no such table', retryable: false, details: { table: 't' } },
    });
  });
});
