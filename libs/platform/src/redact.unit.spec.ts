import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { REDACTED, redactSecrets, sizePayload, urlOrigin } from './redact.js';

describe('urlOrigin', () => {
  it('keeps where a URL points, never its user info, path or query', () => {
    assert.equal(
      urlOrigin('https://u:p@hooks.slack.com:8443/services/T0/B0/SECRET?token=abc'),
      `https://hooks.slack.com:8443/${REDACTED}`,
    );
    assert.equal(urlOrigin('not a url'), REDACTED);
  });
});

describe('redactSecrets', () => {
  it('replaces secret-looking keys at any depth and keeps the rest', () => {
    const out = redactSecrets({
      path: '/a',
      token: 't',
      nested: { Password: 'p', api_key: 'k', apiKey: 'k2', list: [{ Authorization: 'Bearer x', ok: 1 }] },
      client_secret: 's',
    });
    assert.deepEqual(out, {
      path: '/a',
      token: REDACTED,
      nested: { Password: REDACTED, api_key: REDACTED, apiKey: REDACTED, list: [{ Authorization: REDACTED, ok: 1 }] },
      client_secret: REDACTED,
    });
  });

  it('cuts bearer credentials and API keys out of string values (a tool that echoes its request)', () => {
    const key = 'sy_0123456789abcdef_' + 'A'.repeat(43);
    const out = redactSecrets({
      text: `{"authorization":"Bearer abcdefgh12345678","x-api-key": "k3y-v4lue","note":"key ${key}"}`,
      list: [
        'Basic dXNlcjpwYXNzd29yZA==',
        'GET / HTTP/1.1\r\nAuthorization: Bearer zyxwvuts98765432',
        JSON.stringify({ body: JSON.stringify({ 'x-api-key': 'n3sted-k3y' }) }),
      ],
    });
    const json = JSON.stringify(out);
    assert.ok(
      !json.includes('abcdefgh12345678') &&
        !json.includes(key) &&
        !json.includes('dXNlcjpwYXNzd29yZA==') &&
        !json.includes('k3y-v4lue') &&
        !json.includes('zyxwvuts98765432') &&
        !json.includes('n3sted-k3y'),
      json,
    );
    assert.ok(json.includes('Bearer [redacted]'));
  });

  it('leaves scalars and null alone', () => {
    assert.equal(redactSecrets('token'), 'token');
    assert.equal(redactSecrets(null), null);
  });
});

describe('sizePayload', () => {
  it('keeps a small payload as a value with its size', () => {
    const p = sizePayload({ a: 1 }, 100);
    assert.deepEqual(p, { value: { a: 1 }, size: 7, truncated: false });
  });

  it('truncates a large payload to a JSON preview and reports the full size', () => {
    const p = sizePayload({ text: 'x'.repeat(1000), password: 'hunter2' }, 50);
    assert.equal(p.truncated, true);
    assert.equal(typeof p.value, 'string');
    assert.ok((p.value as string).length <= 51);
    assert.ok(p.size > 1000);
    assert.doesNotMatch(JSON.stringify(p), /hunter2/);
  });
});
