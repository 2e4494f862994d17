import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { freshDatabase } from '@switchyard/testing';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { httpClient, silentLogger } from '../test-helpers.js';
import { createAnalyticsServer, migrateAnalytics } from './server.js';

/**
 * On the analytics server: the support template records its interaction
 * under `interaction-<execution id>`; an operator who recorded another sample under that key first
 * made the step fail `illegal_state`. A key is now the caller's own (`_meta.actor`).
 */
describe('analytics record_metric: an idempotency key is the caller’s own (real Postgres)', () => {
  let pool: pg.Pool;
  let http: McpHttpServerHandle;
  let client: Client;

  const record = async (actor: string | undefined, args: Record<string, unknown>) =>
    (await client.callTool({
      name: 'record_metric',
      arguments: args,
      ...(actor ? { _meta: { actor } } : {}),
    })) as CallToolResult;

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('mcp_analytics_keys'), max: 4 });
    await migrateAnalytics(pool);
    http = await startMcpHttpServer({
      name: 'analytics',
      serverFactory: () => createAnalyticsServer({ pool, logger: silentLogger }),
      port: 0,
      logger: silentLogger,
    });
    client = await httpClient(http.url);
  });

  after(async () => {
    await client?.close();
    await http?.close();
    await pool?.end();
  });

  it('another caller’s sample under the key neither refuses nor stands for this caller’s', async () => {
    const squat = await record('apikey:00000000000000b2', {
      name: 'support.interaction',
      value: 99,
      idempotency_key: 'interaction-exec-1',
    });
    assert.notEqual(squat.isError, true);
    const mine = await record('apikey:00000000000000a1', {
      name: 'support.interaction',
      value: 1,
      labels: { channel: 'email' },
      idempotency_key: 'interaction-exec-1',
    });
    assert.notEqual(mine.isError, true, JSON.stringify(mine.content));
    assert.equal((mine.structuredContent as { deduplicated: boolean }).deduplicated, false);
    const again = await record('apikey:00000000000000a1', {
      name: 'support.interaction',
      value: 1,
      labels: { channel: 'email' },
      idempotency_key: 'interaction-exec-1',
    });
    assert.equal((again.structuredContent as { deduplicated: boolean }).deduplicated, true);
    const other = await record('apikey:00000000000000a1', {
      name: 'support.interaction',
      value: 2,
      idempotency_key: 'interaction-exec-1',
    });
    assert.equal(other.isError, true, 'its own key for another sample is still refused');
  });

  it('a key recorded before keys were scoped still answers for it', async () => {
    await pool.query(
      `INSERT INTO analytics.metrics (name, value, labels, ts, idempotency_key, key_scope) VALUES ('m', 3, '{}', now(), 'old-key', NULL)`,
    );
    const r = await record('apikey:00000000000000a1', { name: 'm', value: 3, idempotency_key: 'old-key' });
    assert.equal((r.structuredContent as { deduplicated: boolean }).deduplicated, true);
  });
});
