import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  REDACTED,
  cutAtCodePoint,
  redactSecretValues,
  redactSecrets,
  redactedHead,
  sizePayload,
  urlOrigin,
} from './redact.js';

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

  // Before the key-name runs were bounded, 256 KB of the first shape took 14 s and 1 MB (the
  // gateway's body limit) about 200 s of one thread: one tool call froze the connectors process.
  // The timeout is a freeze guard far above the linear cost, not a speed figure.
  it('scans adversarial text in linear time: quotes with no closing one and many keywords', { timeout: 30_000 }, () => {
    const shapes = [
      '"' + 'token'.repeat(200_000),
      '\\"' + 'password'.repeat(125_000),
      '"a_token"' + ' '.repeat(1_000_000),
      '"secret":"' + 'x'.repeat(1_000_000),
      ('"' + 'cookie'.repeat(20)).repeat(8_000),
      'Bearer ' + ' '.repeat(1_000_000) + 'x',
      // Backslashes after an escaped key's opening quote: overlapping alternatives read them
      // every possible way (80 took over 30 s).
      '\\"token\\":\\"' + '\\'.repeat(1_000_000),
      '\\"token\\":\\"' + '\\'.repeat(81) + 'x',
      // Query-like runs: many '?' and '&' with credential-like names and no '='.
      '?api_key'.repeat(150_000),
      '&' + 'a'.repeat(1_000_000),
    ];
    for (const text of shapes) assert.equal(typeof redactSecretValues(text), 'string');
    // Still redacts what it must beside that text.
    const mixed = '"' + 'token'.repeat(50_000) + ' {"x-api-key": "k3y-v4lue"}';
    assert.doesNotMatch(redactSecretValues(mixed), /k3y-v4lue/);
  });

  it("cuts credentials out of URLs' query strings, keeping the URL and its other parameters", () => {
    assert.equal(
      redactSecretValues('https://192.0.2.10/v1?api_key=QUERYAPIKEY123&access_token=QTOKEN456&page=2'),
      `https://192.0.2.10/v1?api_key=${REDACTED}&access_token=${REDACTED}&page=2`,
    );
    assert.equal(
      redactSecretValues('see https://h.example/x?sig=abc%2F123#frag and ?client_secret=s3cr3t'),
      `see https://h.example/x?sig=${REDACTED}#frag and ?client_secret=${REDACTED}`,
    );
    assert.deepEqual(redactSecrets({ url: 'http://a.example/?token=t0k3n&q=hello' }), {
      url: `http://a.example/?token=${REDACTED}&q=hello`,
    });
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

  it('never cuts a surrogate pair in half', () => {
    const p = sizePayload({ text: '😀'.repeat(100) }, 42);
    const preview = p.value as string;
    const code = preview.charCodeAt(preview.length - 2);
    assert.ok(!(code >= 0xd800 && code <= 0xdbff), 'the preview ends in a lone high surrogate');
    assert.equal(cutAtCodePoint('a😀', 2), 'a');
    assert.equal(cutAtCodePoint('a😀', 3), 'a😀');
  });
});

describe('redactedHead', () => {
  it('redacts a secret value that is still open at the cut (a private key in a long error)', () => {
    const pem =
      '-----BEGIN PRIVATE KEY-----\\n' +
      'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC'.repeat(200) +
      '\\n-----END PRIVATE KEY-----';
    const text = `service account refused: {"type":"service_account","private_key":"${pem}","client_email":"x@y"}`;
    const out = redactedHead(text, 500);
    assert.doesNotMatch(out, /MIIEvQIBADAN|BEGIN PRIVATE KEY/);
    assert.match(out, /"private_key":"\[redacted\]/);
    // The same inside JSON put in a JSON string.
    const nested = JSON.stringify({ error: text });
    assert.doesNotMatch(redactedHead(nested, 500), /MIIEvQIBADAN|BEGIN PRIVATE KEY/);
  });

  it('keeps escaped quotes and backslashes inside a nested secret value whole (redacted whole)', () => {
    const inner = JSON.stringify({ 'x-api-key': 'a\\b"c\\\\d', note: 'kept' });
    const out = redactSecrets({ body: JSON.stringify({ raw: inner }) }) as { body: string };
    assert.doesNotMatch(out.body, /c\\\\d|a\\\\b/);
    assert.match(out.body, /kept/);
  });

  it('redacts a credential that straddles the cut, and scans only a bounded head', () => {
    // Cut first, the token's first 5 characters would be left too short to be recognised.
    const text = 'x'.repeat(487) + ' Bearer abcdefghijklmnop ' + 'y'.repeat(5_000_000);
    const out = redactedHead(text, 500);
    assert.equal(out.length, 500);
    assert.doesNotMatch(out, /abcde/);
    assert.match(out, /Bearer \[reda$/);
  });
});
