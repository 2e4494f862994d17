import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { AppError } from '@switchyard/platform';
import { HtmlExtractor } from './html-extractor.js';

/** 1 MB of unclosed `<div>`s: the parsers' cost grows with the square of the nesting (about a minute on one core). */
const NESTED = `<html><body>${'<div>'.repeat(200_000)}`;
const PAGE = '<html><head><title>T</title></head><body><p>a <a href="b">link</a></p></body></html>';

describe('HtmlExtractor (pages converted on a thread of their own, each within a time limit)', () => {
  const extractor = new HtmlExtractor({ timeoutMs: 1_000, maxQueued: 2 });
  after(() => extractor.close());

  it('converts a page: title, text, absolute links', async () => {
    const page = await extractor.extract(PAGE, 'https://site.test/dir/');
    assert.deepEqual(page, { title: 'T', text: 'a link', links: [{ href: 'https://site.test/dir/b', text: 'link' }] });
  });

  it('fails a page that takes too long alone, without blocking the process, and converts the next one', async () => {
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const started = Date.now();
    await assert.rejects(
      () => extractor.extract(NESTED, 'https://site.test/'),
      (e: unknown) =>
        e instanceof AppError &&
        e.code === 'payload_too_large' &&
        !e.retryable &&
        /could not be converted to text/.test(e.message),
    );
    delay.disable();
    const tookMs = Date.now() - started;
    assert.ok(tookMs < 10_000, `ended by the limit, not by the page: ${tookMs} ms`);
    const blockedMs = delay.max / 1e6;
    assert.ok(blockedMs < 1_000, `the process's own thread went on (longest block ${blockedMs.toFixed(0)} ms)`);
    assert.equal((await extractor.extract(PAGE, 'https://site.test/')).title, 'T', 'a new thread converts the next');
  });

  it('refuses a page when the queue is full, and drops a queued page whose caller gave up', async () => {
    const slow = extractor.extract(NESTED, 'https://site.test/').catch((e: unknown) => e);
    const ac = new AbortController();
    const queued = extractor.extract(PAGE, 'https://site.test/', ac.signal).catch((e: unknown) => e);
    const second = extractor.extract(PAGE, 'https://site.test/').catch((e: unknown) => e);
    await assert.rejects(
      () => extractor.extract(PAGE, 'https://site.test/'),
      (e: unknown) => e instanceof AppError && e.code === 'unavailable' && /wait to be converted/.test(e.message),
    );
    ac.abort(new AppError('canceled', 'the caller left'));
    assert.match(String(((await queued) as Error).message), /the caller left/);
    assert.ok((await slow) instanceof AppError);
    assert.equal(((await second) as { title: string }).title, 'T', 'the page behind the dropped one ran');
  });

  it('a running page whose caller gives up frees the thread at once for the next', async () => {
    // A limit far past the test's: the next page converts only if the abandoned one was ended.
    const patient = new HtmlExtractor({ timeoutMs: 120_000 });
    try {
      const ac = new AbortController();
      const costly = patient.extract(NESTED, 'https://site.test/', ac.signal).catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 100));
      ac.abort(new AppError('canceled', 'the caller left'));
      assert.match(String(((await costly) as Error).message), /the caller left/);
      const started = Date.now();
      assert.equal((await patient.extract(PAGE, 'https://site.test/')).title, 'T');
      assert.ok(Date.now() - started < 30_000, 'not behind the abandoned page (about a minute of work)');
    } finally {
      await patient.close();
    }
  });
});
