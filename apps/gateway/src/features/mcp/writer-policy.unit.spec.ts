import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@switchyard/platform';
import { assertToolAllowed, guardedToolsUsed } from './writer-policy.js';

const key = (role: string) => ({ apiKey: { id: 'k', role, name: role } });
const status = (f: () => void): number | 'ok' => {
  try {
    f();
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof AppError);
    return e.status;
  }
};

describe('database_writer at the gateway', () => {
  it('needs an admin key and DATABASE_ALLOW_WRITES=true', () => {
    const on = { authEnabled: true, writesAllowed: true };
    const off = { authEnabled: true, writesAllowed: false };
    assert.equal(
      status(() => assertToolAllowed('database_writer', undefined, key('admin'), on)),
      'ok',
    );
    assert.equal(
      status(() => assertToolAllowed('database_writer', undefined, key('operator'), on)),
      403,
    );
    assert.equal(
      status(() => assertToolAllowed('database_writer', undefined, key('viewer'), on)),
      403,
    );
    assert.equal(
      status(() => assertToolAllowed('database_writer', undefined, {}, on)),
      403,
    );
    assert.equal(
      status(() => assertToolAllowed('database_writer', undefined, key('admin'), off)),
      403,
    );
    assert.equal(
      status(() => assertToolAllowed('database_writer', undefined, {}, { authEnabled: false, writesAllowed: false })),
      403,
    );
    assert.equal(
      status(() => assertToolAllowed('database_writer', undefined, {}, { authEnabled: false, writesAllowed: true })),
      'ok',
    );
  });

  it('leaves every other server alone', () => {
    assert.equal(
      status(() =>
        assertToolAllowed('database', undefined, key('operator'), { authEnabled: true, writesAllowed: false }),
      ),
      'ok',
    );
  });

  it('finds the writer and the admin tools in the steps of a definition', () => {
    assert.deepEqual(
      guardedToolsUsed([
        { uses: 'mcp:database/query' },
        { uses: 'mcp:database_writer/query' },
        { uses: 'mcp:automation/list_mailbox' },
        { uses: 'mcp:automation/send_email' },
        { uses: 'agent:x' },
        {},
      ]),
      [
        { server: 'database_writer', tool: 'query' },
        { server: 'automation', tool: 'list_mailbox' },
      ],
    );
    assert.deepEqual(guardedToolsUsed(undefined), []);
  });

  it('the development mailbox tool needs the admin role, as its REST route does', () => {
    const on = { authEnabled: true, writesAllowed: false };
    assert.equal(
      status(() => assertToolAllowed('automation', 'list_mailbox', key('admin'), on)),
      'ok',
    );
    assert.equal(
      status(() => assertToolAllowed('automation', 'list_mailbox', key('operator'), on)),
      403,
    );
    assert.equal(
      status(() => assertToolAllowed('automation', 'send_email', key('operator'), on)),
      'ok',
    );
    // The queued deliveries hold every caller's A2A push notifications: an admin's.
    for (const tool of ['queue_webhook', 'list_queued_deliveries']) {
      assert.equal(
        status(() => assertToolAllowed('automation', tool, key('operator'), on)),
        403,
        tool,
      );
      assert.equal(
        status(() => assertToolAllowed('automation', tool, key('admin'), on)),
        'ok',
        tool,
      );
    }
    assert.equal(
      status(() => assertToolAllowed('automation', 'list_mailbox', {}, { authEnabled: false, writesAllowed: false })),
      'ok',
    );
  });
});
