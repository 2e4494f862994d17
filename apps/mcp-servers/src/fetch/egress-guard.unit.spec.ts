import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@switchyard/platform';
import { EgressGuard, nonPublicRange } from './egress-guard.js';
import { extractHtml } from './extract-html.js';

const refused = (f: () => unknown, range: string) =>
  assert.throws(f, (e: unknown) => e instanceof AppError && e.code === 'forbidden' && e.details['range'] === range);

describe('nonPublicRange', () => {
  it('names the special IPv4 ranges', () => {
    const cases: Record<string, string> = {
      '127.0.0.1': 'loopback',
      '10.0.0.1': 'private',
      '172.16.5.4': 'private',
      '192.168.1.1': 'private',
      '169.254.169.254': 'linkLocal',
      '100.64.0.1': 'carrierGradeNat',
      '0.0.0.0': 'unspecified',
      '224.0.0.251': 'multicast',
      '255.255.255.255': 'broadcast',
    };
    for (const [ip, range] of Object.entries(cases)) assert.equal(nonPublicRange(ip), range, ip);
  });

  it('names the special IPv6 ranges, including mapped and tunnelled IPv4', () => {
    const cases: Record<string, string> = {
      '::1': 'loopback',
      '::': 'unspecified',
      'fe80::1': 'linkLocal',
      'fd12:3456::1': 'uniqueLocal',
      'ff02::1': 'multicast',
      '::ffff:10.0.0.1': 'ipv4Mapped',
      '::ffff:8.8.8.8': 'ipv4Mapped',
      '2002:7f00:1::': '6to4',
      '64:ff9b::a00:1': 'rfc6052',
      '2001::1': 'teredo',
    };
    for (const [ip, range] of Object.entries(cases)) assert.equal(nonPublicRange(ip), range, ip);
  });

  it('lets public addresses through', () => {
    for (const ip of ['8.8.8.8', '93.184.215.14', '2606:4700::1111']) assert.equal(nonPublicRange(ip), undefined, ip);
  });
});

describe('EgressGuard', () => {
  it('refuses internal literals and allows public ones', () => {
    const g = new EgressGuard();
    refused(() => g.checkUrl(new URL('http://169.254.169.254/')), 'linkLocal');
    refused(() => g.checkUrl(new URL('http://[::1]:8080/')), 'loopback');
    refused(() => g.checkUrl(new URL('http://0x7f.1/')), 'loopback');
    assert.doesNotThrow(() => g.checkUrl(new URL('https://8.8.8.8/')));
    assert.doesNotThrow(() => g.checkUrl(new URL('https://example.com/')), 'names are checked after resolution');
    assert.throws(
      () => g.checkUrl(new URL('ftp://example.com/')),
      (e: unknown) => e instanceof AppError && e.code === 'validation',
    );
  });

  it('honours allow-listed hosts (exact and *.suffix) and CIDRs', () => {
    const g = new EgressGuard({ allowHosts: ['LocalHost', '*.corp.test'], allowCidrs: ['10.1.0.0/16', '::1/128'] });
    assert.doesNotThrow(() => g.checkAddress('localhost', '127.0.0.1'));
    assert.doesNotThrow(() => g.checkAddress('api.corp.test', '192.168.0.1'));
    refused(() => g.checkAddress('corp.test.evil', '192.168.0.1'), 'private');
    assert.doesNotThrow(() => g.checkAddress('x', '10.1.200.3'));
    refused(() => g.checkAddress('x', '10.2.0.1'), 'private');
    assert.doesNotThrow(() => g.checkAddress('x', '::1'));
    assert.throws(
      () => new EgressGuard({ allowCidrs: ['not-a-cidr'] }),
      (e: unknown) => e instanceof AppError && e.code === 'validation',
    );
  });

  it('refuses a name when any of its addresses is internal', async () => {
    const g = new EgressGuard({
      resolve: async () => [
        { address: '93.184.215.14', family: 4 },
        { address: '192.168.0.10', family: 4 },
      ],
    });
    await assert.rejects(
      g.resolveChecked('mixed.test'),
      (e: unknown) => e instanceof AppError && e.code === 'forbidden' && e.details['address'] === '192.168.0.10',
    );
    const none = new EgressGuard({ resolve: async () => Promise.reject(new Error('ENOTFOUND')) });
    await assert.rejects(
      none.resolveChecked('nope.test'),
      (e: unknown) => e instanceof AppError && e.code === 'unavailable',
    );
  });

  it('gives the socket only checked addresses through its lookup', async () => {
    const g = new EgressGuard({
      resolve: async () => [
        { address: '93.184.215.14', family: 4 },
        { address: '2606:2800::1', family: 6 },
      ],
    });
    const all = await new Promise((res, rej) => g.lookup('site.test', { all: true }, (e, a) => (e ? rej(e) : res(a))));
    assert.deepEqual(all, [
      { address: '93.184.215.14', family: 4 },
      { address: '2606:2800::1', family: 6 },
    ]);
    const v6 = await new Promise((res, rej) =>
      g.lookup('site.test', { family: 6 }, (e, a, f) => (e ? rej(e) : res([a, f]))),
    );
    assert.deepEqual(v6, ['2606:2800::1', 6]);
    const bad = new EgressGuard({ resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
    await assert.rejects(
      new Promise((res, rej) => bad.lookup('evil.test', {}, (e, a) => (e ? rej(e) : res(a)))),
      (e: unknown) => e instanceof AppError && e.code === 'forbidden',
    );
  });
});

describe('extractHtml', () => {
  it('returns title, text without scripts and absolute links', () => {
    const r = extractHtml(
      '<html><head><title> T </title></head><body><p>a <a href="b/c">link</a></p><script>x()</script><a href="mailto:x@y">m</a></body></html>',
      'https://site.test/dir/page',
    );
    assert.equal(r.title, 'T');
    assert.equal(r.text, 'a link\n\nm');
    assert.deepEqual(r.links, [{ href: 'https://site.test/dir/b/c', text: 'link' }]);
  });
});
