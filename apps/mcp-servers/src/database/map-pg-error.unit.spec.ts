import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mapPgError } from './server.js';

describe('mapPgError: connection failures are unavailable (retryable), not internal', () => {
  it('maps a refused or reset connection and a terminated session to unavailable', () => {
    for (const e of [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
      new Error('Connection terminated unexpectedly'),
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      Object.assign(new Error('the database system is starting up'), { code: '57P03' }),
    ]) {
      const mapped = mapPgError(e);
      assert.equal(mapped?.code, 'unavailable', `${e.message} -> ${mapped?.code}`);
      assert.equal(mapped?.retryable, true);
    }
  });

  it('leaves statement errors as they were', () => {
    assert.equal(mapPgError(Object.assign(new Error('syntax error'), { code: '42601' }))?.code, 'validation');
    assert.equal(mapPgError(new Error('something else')), undefined);
  });
});
