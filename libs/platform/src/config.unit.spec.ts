import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, natsServers, parseConfig } from './config.js';

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
        e.issues
          .map((i) => i.variable)
          .sort()
          .join(',') === 'DATABASE_URL,GATEWAY_PORT' &&
        /GATEWAY_PORT/.test(e.message),
    );
  });

  it("NATS_URL takes a comma-separated list of a cluster's servers, each a nats:// URL; NATS_STREAM_REPLICAS 1-5", () => {
    const url = 'nats://10.0.0.1:4222, nats://10.0.0.2:4222,nats://10.0.0.3:4222';
    const c = parseConfig({ NATS_URL: url, NATS_STREAM_REPLICAS: '3' });
    assert.deepEqual(natsServers(c.NATS_URL!), [
      'nats://10.0.0.1:4222',
      'nats://10.0.0.2:4222',
      'nats://10.0.0.3:4222',
    ]);
    assert.equal(c.NATS_STREAM_REPLICAS, 3);
    assert.equal(parseConfig({}).NATS_STREAM_REPLICAS, 1);
    assert.throws(
      () => parseConfig({ NATS_URL: 'nats://a:4222,http://b:4222' }),
      (e: unknown) => e instanceof ConfigError && e.issues[0]!.variable === 'NATS_URL',
    );
    assert.throws(
      () => parseConfig({ NATS_STREAM_REPLICAS: '7' }),
      (e: unknown) => e instanceof ConfigError && e.issues[0]!.variable === 'NATS_STREAM_REPLICAS',
    );
  });

  it('NATS_TOKEN is optional; an empty one is unset', () => {
    assert.equal(parseConfig({}).NATS_TOKEN, undefined);
    assert.equal(parseConfig({ NATS_TOKEN: '' }).NATS_TOKEN, undefined);
    assert.equal(parseConfig({ NATS_TOKEN: 's3cret-token' }).NATS_TOKEN, 's3cret-token');
  });
});
