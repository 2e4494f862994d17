import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mcpConfigSchema } from './config.js';

describe('the MCP servers configuration: address ranges', () => {
  it('FETCH_ALLOW_CIDRS and WEBHOOK_ALLOW_CIDRS take ranges only, refused naming the variable at start', () => {
    for (const variable of ['FETCH_ALLOW_CIDRS', 'WEBHOOK_ALLOW_CIDRS'] as const) {
      const bad = mcpConfigSchema.safeParse({ [variable]: '10.0.0.0/8, notacidr' });
      assert.equal(bad.success, false);
      assert.deepEqual(
        bad.error.issues.map((i) => [i.path[0], i.message]),
        [[variable, 'not a CIDR range (for example 10.0.0.0/8 or ::1/128)']],
      );
      const good = mcpConfigSchema.parse({ [variable]: '10.0.0.0/8, ::1/128' });
      assert.deepEqual(good[variable], ['10.0.0.0/8', '::1/128']);
      assert.deepEqual(mcpConfigSchema.parse({})[variable], []);
    }
  });
});
