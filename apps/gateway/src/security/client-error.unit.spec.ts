import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createLogger } from '@switchyard/platform';
import { clientErrorsAsProblems } from './client-error.js';

const logger = createLogger('client-error-unit', 'silent');
const timeout = Object.assign(new Error('request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });

/** A connection as Node hands it to the clientError handler, with what was written to it. */
function connection(answering?: { headersSent: boolean }) {
  const socket = Object.assign(new PassThrough(), answering ? { _httpMessage: answering } : {});
  const written: string[] = [];
  socket.on('data', (c: Buffer) => written.push(c.toString()));
  return { socket, written };
}

describe('clientErrorsAsProblems', () => {
  it('answers a request Node could not take with a problem, and closes', async () => {
    const { socket, written } = connection();
    clientErrorsAsProblems(logger)(timeout, socket);
    await new Promise((r) => setImmediate(r));
    assert.match(written.join(''), /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.match(written.join(''), /"code":"timeout"/);
  });

  it('writes nothing on a connection whose answer is already under way: it ends it', async () => {
    const { socket, written } = connection({ headersSent: true });
    clientErrorsAsProblems(logger)(timeout, socket);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(written, []);
    assert.equal(socket.destroyed, true);
  });
});
