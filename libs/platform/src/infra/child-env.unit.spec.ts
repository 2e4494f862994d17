import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { serverChildEnv } from './child-env.js';

describe('serverChildEnv', () => {
  it('passes where programs are, the user, locale and time zone; no credential or setting of ours', () => {
    const env = serverChildEnv({
      PATH: '/usr/bin',
      HOME: '/root',
      LANG: 'C.UTF-8',
      LC_ALL: 'C',
      TZ: 'UTC',
      LD_LIBRARY_PATH: '/opt/pg/lib',
      SWITCHYARD_ADMIN_KEY: 'sy_admin',
      NATS_TOKEN: 'tok',
      MCP_AUTH_TOKEN: 'mcp',
      GITHUB_PERSONAL_ACCESS_TOKEN: 'ghp',
      DATABASE_URL: 'postgres://u:p@h/db',
      OPENAI_API_KEY: 'sk',
      NODE_OPTIONS: '--require x',
    });
    assert.deepEqual(env, {
      PATH: '/usr/bin',
      HOME: '/root',
      LANG: 'C.UTF-8',
      LC_ALL: 'C',
      TZ: 'UTC',
      LD_LIBRARY_PATH: '/opt/pg/lib',
    });
  });
});
