import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError, parseConfig } from '@switchyard/platform';
import { mcpConfigSchema } from '../config.js';
import { assertBody, keyedMessageId, mailError, mailFingerprint } from './mail.js';
import { mailboxConfigSchema } from './mailbox.js';
import { afterMs } from './schedules.decider.js';

describe('mail: pure parts', () => {
  it('a fingerprint ignores the order of keys and a single address vs a list of one', () => {
    const a = mailFingerprint({ to: 'a@example.com', subject: 's', text: 't' });
    assert.equal(a, mailFingerprint({ text: 't', subject: 's', to: ['a@example.com'] }));
    assert.notEqual(a, mailFingerprint({ to: 'a@example.com', subject: 's', text: 'other' }));
    assert.notEqual(a, mailFingerprint({ to: 'a@example.com', subject: 's', html: 't' }));
  });

  it('the Message-ID of a key is stable and does not show the key', () => {
    assert.equal(keyedMessageId('welcome-1'), keyedMessageId('welcome-1'));
    assert.notEqual(keyedMessageId('welcome-1'), keyedMessageId('welcome-2'));
    assert.match(keyedMessageId('welcome-1'), /^<[0-9a-f]{32}@switchyard\.idempotency>$/);
    assert.ok(!keyedMessageId('welcome-1').includes('welcome'));
  });

  it('maps SMTP failures: 4xx and network errors are retryable, 5xx is not', () => {
    const transient = mailError(Object.assign(new Error('try later'), { code: 'EMESSAGE', responseCode: 451 }));
    assert.deepEqual([transient.code, transient.retryable], ['unavailable', true]);
    const network = mailError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ESOCKET' }));
    assert.deepEqual([network.code, network.retryable], ['unavailable', true]);
    const refused = mailError(Object.assign(new Error('552 too big'), { code: 'EMESSAGE', responseCode: 552 }));
    assert.deepEqual([refused.code, refused.retryable, refused.details['response_code']], ['tool_error', false, 552]);
    const auth = mailError(Object.assign(new Error('Invalid login'), { code: 'EAUTH', responseCode: 535 }));
    assert.deepEqual([auth.code, auth.retryable], ['unavailable', false]);
    const mine = new AppError('validation', 'x');
    assert.equal(mailError(mine), mine);
  });

  it('a mail needs text or html', () => {
    assert.throws(
      () => assertBody({}),
      (e: unknown) => e instanceof AppError && e.code === 'validation',
    );
    assertBody({ text: '' });
    assertBody({ html: '<p/>' });
  });

  it('after: a duration up to a year', () => {
    assert.equal(afterMs('30s'), 30_000);
    assert.equal(afterMs('2w'), 14 * 86_400_000);
    for (const bad of ['', '1y', '-1s', '1.5h', '400d'])
      assert.throws(() => afterMs(bad), /after must be a duration/, bad);
  });

  it('SMTP_URL and the mailbox settings are checked at start, naming the variable', () => {
    assert.equal(
      parseConfig({ SMTP_URL: 'smtp://u:p@mail.example.com:587' }, mcpConfigSchema).SMTP_URL,
      'smtp://u:p@mail.example.com:587',
    );
    assert.equal(parseConfig({}, mcpConfigSchema).MAIL_FROM, 'Switchyard <switchyard@localhost>');
    for (const bad of ['http://mail.example.com', 'smtp://', 'mail.example.com:25']) {
      assert.throws(() => parseConfig({ SMTP_URL: bad }, mcpConfigSchema), /SMTP_URL/, bad);
    }
    assert.throws(() => parseConfig({ MAIL_FROM: 'Robot <not an address>' }, mcpConfigSchema), /MAIL_FROM/);
    assert.deepEqual(parseConfig({}, mailboxConfigSchema), {
      MAILBOX_SMTP_PORT: 0,
      MAILBOX_SMTP_HOST: '127.0.0.1',
      MAILBOX_MAX_MESSAGE_BYTES: 1_048_576,
      MAILBOX_MAX_MESSAGES: 1000,
    });
    assert.throws(() => parseConfig({ MAILBOX_MAX_MESSAGES: '0' }, mailboxConfigSchema), /MAILBOX_MAX_MESSAGES/);
  });
});
