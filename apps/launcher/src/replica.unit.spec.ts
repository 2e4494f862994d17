import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { replicaLogin } from './replica.js';

describe('replicaLogin: the gateway reads the replica as its own role', () => {
  it('keeps the component login, takes host, port and database from DATABASE_READ_URL', () => {
    assert.equal(
      replicaLogin(
        'postgres://sy_gateway:s3cret@127.0.0.1:15432/switchyard',
        'postgres://reader:x@10.0.0.7:5433/switchyard',
        true,
      ),
      'postgres://sy_gateway:s3cret@10.0.0.7:5433/switchyard',
    );
  });
  it('without component roles: DATABASE_READ_URL as given', () => {
    assert.equal(
      replicaLogin('postgres://postgres:p@127.0.0.1:15432/db', 'postgres://reader:x@10.0.0.7:5433/db', false),
      'postgres://reader:x@10.0.0.7:5433/db',
    );
  });
});
