import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '../errors.js';
import { EgressGuard, egressPolicyFromEnv, nonPublicRange } from './guard.js';

const forbidden = (e: unknown) => e instanceof AppError && e.code === 'forbidden';

/** Every spelling of an internal address an attacker may try, as a URL. */
export const SSRF_URLS = [
  'http://[::127.0.0.1]/',
  'http://[::ffff:127.0.0.1]/',
  'http://[::ffff:7f00:1]/',
  'http://[0:0:0:0:0:ffff:127.0.0.1]/',
  'http://0177.0.0.1/',
  'http://2130706433/',
  'http://0x7f.1/',
  'http://0x7f000001/',
  'http://127.1/',
  'http://127.000.000.001/',
  'http://0/',
  'http://0.0.0.0/',
  'http://[::]/',
  'http://[::1]/',
  'http://localhost./',
  'http://LOCALHOST/',
  'http://169.254.169.254/latest/meta-data/',
  'http://[::ffff:169.254.169.254]/',
  'http://[fd00:ec2::254]/',
  'http://10.0.0.1/',
  'http://[64:ff9b::7f00:1]/',
  'http://[2002:7f00:1::]/',
];

describe('egress guard: every spelling of an internal address is refused', () => {
  it('::/96 (IPv4-compatible, e.g. ::127.0.0.1) is not public', () => {
    assert.equal(nonPublicRange('::7f00:1'), 'ipv4Compatible');
    assert.notEqual(nonPublicRange('::127.0.0.1'), undefined);
    assert.notEqual(nonPublicRange('::8.8.8.8'), undefined);
    assert.equal(nonPublicRange('::'), 'unspecified');
    assert.equal(nonPublicRange('::1'), 'loopback');
  });

  it('decimal, octal, hex and short IPv4 forms are read as the resolver reads them', () => {
    for (const ip of ['2130706433', '0177.0.0.1', '0x7f.1', '127.1', '0x7f000001'])
      assert.equal(nonPublicRange(ip), 'loopback', ip);
    assert.equal(nonPublicRange('0'), 'unspecified');
  });

  it('refuses each attack URL, resolving names through the real resolver', async () => {
    const g = new EgressGuard();
    for (const url of SSRF_URLS) {
      await assert.rejects(g.checkUrlResolved(url), forbidden, url);
    }
  });

  it('an allow-list opens exactly what it names', async () => {
    assert.throws(
      () => egressPolicyFromEnv({ EGRESS_ALLOW_CIDRS: '127.0.0.0/8, 10.0.0.0/33' }),
      /EGRESS_ALLOW_CIDRS: not a CIDR range: 10\.0\.0\.0\/33/,
    );
    assert.throws(() => egressPolicyFromEnv({ WEBHOOK_ALLOW_CIDRS: 'nope' }, 'WEBHOOK'), /WEBHOOK_ALLOW_CIDRS/);
    const g = new EgressGuard(egressPolicyFromEnv({ EGRESS_ALLOW_CIDRS: '127.0.0.0/8' }));
    await g.checkUrlResolved('http://127.0.0.1:9/');
    await g.checkUrlResolved('http://0x7f.1/');
    await assert.rejects(g.checkUrlResolved('http://[::1]/'), forbidden);
    await assert.rejects(g.checkUrlResolved('http://169.254.169.254/'), forbidden);
    await assert.rejects(
      g.checkUrlResolved('file:///etc/passwd'),
      (e: unknown) => e instanceof AppError && e.code === 'validation',
    );
  });
});
