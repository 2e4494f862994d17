import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { freePort } from '@switchyard/platform';
import { parseServerConfig } from '../registry/schema.js';
import { McpSession } from './mcp-session.js';
import { startSdkHttpServer, waitFor } from '../spec-support.js';

/**
 * A session's failure warnings name the socket's error code beside undici's `fetch failed`: a
 * process out of descriptors (EMFILE) and a server that is not there (ECONNREFUSED) read the same
 * without it.
 */
describe('McpSession warnings name the cause of a failed connection', () => {
  const capture = () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    return { lines, logger };
  };
  const session = (url: string, logger: pino.Logger, pingMs = 0) =>
    new McpSession({
      config: parseServerConfig({
        name: 'cause',
        role: 'other',
        transport: { kind: 'http', url },
        timeouts: { connect_ms: 5_000, call_ms: 5_000 },
        reconnect: { initial_delay_ms: 60_000, max_delay_ms: 60_000 },
        health: { ping_interval_ms: pingMs },
      }),
      logger,
    });

  it('MCP connect failed to a port nothing listens on: code ECONNREFUSED', async () => {
    const { lines, logger } = capture();
    const s = session(`http://127.0.0.1:${await freePort()}/mcp`, logger);
    try {
      await s.start();
      assert.equal(s.health().state, 'down');
      const warn = lines.find((l) => l['msg'] === 'MCP connect failed');
      assert.ok(warn, JSON.stringify(lines));
      assert.match(String(warn['err']), /fetch failed/);
      assert.equal(warn['code'], 'ECONNREFUSED');
    } finally {
      await s.close();
    }
  });

  it('MCP server connection lost once its server is gone: code ECONNREFUSED', async () => {
    const sdk = await startSdkHttpServer(() => new McpServer({ name: 'cause', version: '1.0.0' }));
    const { lines, logger } = capture();
    const s = session(sdk.url, logger, 100);
    try {
      await s.start();
      assert.equal(s.health().state, 'up');
      await sdk.close();
      const lostLine = () => lines.find((l) => l['msg'] === 'MCP server connection lost');
      await waitFor(() => lostLine() !== undefined, 'the connection-lost warning', 10_000);
      assert.equal(lostLine()!['code'], 'ECONNREFUSED', JSON.stringify(lostLine()));
    } finally {
      await s.close();
      await sdk.close();
    }
  });
});
