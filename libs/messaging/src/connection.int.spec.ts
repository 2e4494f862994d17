import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import {
  AppError,
  createLogger,
  embeddedNatsToken,
  freePort,
  startNatsServer,
  type NatsServerHandle,
} from '@switchyard/platform';
import { closeNats, connectNats } from './index.js';

const logger = createLogger('connection-int', 'silent');

/** connectNats against a real nats-server that asks for a token (as the launcher's does). */
describe('connectNats with a token', () => {
  let scratch: string;
  let server: NatsServerHandle;
  let token: string;
  const saved = process.env.NATS_TOKEN;

  before(async () => {
    mkdirSync(path.resolve('.tmp'), { recursive: true });
    scratch = mkdtempSync(path.resolve('.tmp', 'nats-conn-'));
    const storeDir = path.join(scratch, 'nats');
    token = embeddedNatsToken(storeDir);
    server = await startNatsServer({ port: await freePort(), storeDir, token });
  });

  after(async () => {
    if (saved === undefined) delete process.env.NATS_TOKEN;
    else process.env.NATS_TOKEN = saved;
    await server?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('the server refuses nats.js without the token and with a wrong one (AuthorizationError)', async () => {
    for (const t of [undefined, 'wrong-token'])
      await assert.rejects(
        connect({ servers: server.url, reconnect: false, ...(t ? { token: t } : {}) }),
        (e: Error) => e.name === 'AuthorizationError',
      );
  });

  it('fails unavailable naming NATS_TOKEN, never the token', async () => {
    delete process.env.NATS_TOKEN;
    for (const t of [undefined, 'wrong-token']) {
      await assert.rejects(
        connectNats({ url: server.url, name: 'no-token', logger, ...(t ? { token: t } : {}) }),
        (e: unknown) =>
          e instanceof AppError &&
          e.code === 'unavailable' &&
          /authorization refused: check NATS_TOKEN/.test(e.message) &&
          !JSON.stringify({ m: e.message, d: e.details }).includes('wrong-token'),
      );
    }
  });

  it('connects with the token given, or with NATS_TOKEN from the environment', async () => {
    delete process.env.NATS_TOKEN;
    const given = await connectNats({ url: server.url, name: 'given', logger, token });
    assert.ok((await given.rtt()) >= 0);
    await closeNats(given);
    process.env.NATS_TOKEN = token;
    const fromEnv = await connectNats({ url: server.url, name: 'from-env', logger });
    assert.ok((await fromEnv.rtt()) >= 0);
    await closeNats(fromEnv);
    // The option wins over the environment.
    await assert.rejects(connectNats({ url: server.url, name: 'option-wins', logger, token: 'wrong-token' }));
  });
});
