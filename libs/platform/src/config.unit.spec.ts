import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from './config.js';

describe('parseConfig', () => {
  it('gives the embedded defaults when nothing is set', () => {
    const c = parseConfig({});
    assert.equal(c.GATEWAY_PORT, 10000);
    assert.equal(c.DATABASE_URL, undefined);
    assert.equal(c.RELAY_ENABLED, true);
  });

  it('treats empty strings as unset', () => {
    assert.equal(parseConfig({ NATS_URL: '' }).NATS_URL, undefined);
  });

  it('names every bad variable', () => {
    assert.throws(
      () => parseConfig({ GATEWAY_PORT: 'ten', DATABASE_URL: 'mysql://x' }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.issues.map((i) => i.variable).sort().join(',') === 'DATABASE_URL,GATEWAY_PORT' &&
        /GATEWAY_PORT/.test(e.message),
    );
  });
});
