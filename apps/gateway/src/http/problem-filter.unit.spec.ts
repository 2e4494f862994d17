import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AppError } from '@switchyard/platform';
import { sendProblem } from './problem-filter.js';

/** The answer a real Node server sends for `err` through sendProblem. */
async function answerFor(err: unknown): Promise<{ status: number; retryAfter: string | undefined; body: any }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) =>
    sendProblem(err, req as never, res as never),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/api/v1/x' }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'],
            body: JSON.parse(text),
          }),
        );
      })
        .on('error', reject)
        .end();
    });
  } finally {
    server.close();
  }
}

describe('sendProblem: when to come back', () => {
  it('a retryable 503 without a time (nothing answers the subject yet) says Retry-After: 1', async () => {
    const a = await answerFor(new AppError('unavailable', 'no service is listening on tasks.v1.submit'));
    assert.equal(a.status, 503);
    assert.equal(a.retryAfter, '1');
    assert.equal(a.body.retryable, true);
  });

  it('a refusal that names its time says it in seconds; a final one says nothing', async () => {
    const busy = await answerFor(new AppError('rate_limited', 'queue full', { retry_after_ms: 2_500 }, true));
    assert.deepEqual([busy.status, busy.retryAfter], [429, '3']);
    const final = await answerFor(new AppError('forbidden', 'no'));
    assert.deepEqual([final.status, final.retryAfter], [403, undefined]);
  });

  it("PostgreSQL out of disk, memory or connections is a 503 to retry in 5 s, not a 500, and does not quote the server's text", async () => {
    for (const code of ['53100', '53200', '53300']) {
      const a = await answerFor(
        Object.assign(new Error('could not extend file "base/16384/16423": No space left on device'), { code }),
      );
      assert.deepEqual([a.status, a.retryAfter, a.body.code, a.body.retryable], [503, '5', 'unavailable', true], code);
      assert.doesNotMatch(JSON.stringify(a.body), /base\/16384/);
    }
  });
});
