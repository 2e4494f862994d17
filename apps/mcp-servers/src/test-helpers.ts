// Shared by the *.int.spec.ts files of this package (not exported from index.ts).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createLogger } from '@switchyard/platform';

export const silentLogger = createLogger('mcp-test', process.env.TEST_LOG_LEVEL ?? 'silent');

/** A real SDK client over Streamable HTTP. */
export async function httpClient(url: string, token?: string): Promise<Client> {
  const client = new Client({ name: 'switchyard-test', version: '0.0.0' });
  const transport = new StreamableHTTPClientTransport(
    new URL(url),
    token ? { requestInit: { headers: { authorization: `Bearer ${token}` } } } : {},
  );
  await client.connect(transport);
  return client;
}

/** Call a tool and return the raw result. */
export async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

/** Call a tool that must succeed; returns its structured content. */
export async function ok<T = Record<string, any>>(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<T> {
  const r = await call(client, name, args);
  assert.notEqual(r.isError, true, `tool ${name} failed: ${JSON.stringify(r.content)}`);
  return r.structuredContent as T;
}

/** Call a tool that must fail; returns `{ code, message, text }` of the tool error. */
export async function fails(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<{ code: string; message: string; text: string; details: Record<string, unknown> }> {
  const r = await call(client, name, args);
  assert.equal(
    r.isError,
    true,
    `tool ${name} should have failed but returned ${JSON.stringify(r.structuredContent ?? r.content)}`,
  );
  const text = (r.content[0] as { text: string }).text;
  const err = (
    r.structuredContent as { error?: { code: string; message: string; details: Record<string, unknown> } } | undefined
  )?.error;
  return { code: err?.code ?? '', message: err?.message ?? text, text, details: err?.details ?? {} };
}

export interface LocalHttp {
  readonly port: number;
  readonly base: string;
  readonly requests: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[];
  close(): Promise<void>;
}

/** A plain HTTP server on 127.0.0.1 recording every request it gets. */
export async function localHttp(
  handler: (req: IncomingMessage, res: ServerResponse, body: string, n: number) => void,
): Promise<LocalHttp> {
  const requests: LocalHttp['requests'] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body, requests.length);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
