/**
 * Helpers for this package's specs (not exported from the index): bounded waits,
 * an event recorder, the official server-everything started over Streamable HTTP, and an SDK
 * server of a spec's own served over Streamable HTTP in the spec's process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { AppError, createLogger, type Logger } from '@switchyard/platform';
import type { McpEvent, McpEventType } from '@switchyard/contracts';
import { mcpEventSchema } from '@switchyard/contracts';
import { resolvePackageBin } from './registry/resolve-bin.js';

export const testLogger = (): Logger => createLogger('connectors-test', process.env.LOG_LEVEL ?? 'silent');

/** Poll `cond` until true; throws naming `what` after `timeoutMs` (a bound, never a pass criterion). */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
  everyMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Await `p` and assert it failed with an AppError of `code`; returns that error. */
export async function expectAppError(p: Promise<unknown>, code: string): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AppError, `expected AppError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected AppError(${code}), it succeeded`);
}

/** Collects events, validating each against the published schema as it arrives. */
export class EventRecorder {
  readonly events: McpEvent[] = [];
  readonly invalid: unknown[] = [];
  readonly sink = (e: McpEvent): void => {
    if (!mcpEventSchema.safeParse(e).success) this.invalid.push(e);
    this.events.push(e);
  };
  of<K extends McpEventType>(type: K): Extract<McpEvent, { type: K }>[] {
    return this.events.filter((e) => e.type === type) as Extract<McpEvent, { type: K }>[];
  }
  count(type: McpEventType): number {
    return this.of(type).length;
  }
  types(): string[] {
    return this.events.map((e) => e.type);
  }
  /** Index of the first event of `type` at or after `from` (-1 when none). */
  indexOf(type: McpEventType, from = 0): number {
    return this.events.findIndex((e, i) => i >= from && e.type === type);
  }
  waitFor(type: McpEventType, n = 1, timeoutMs = 15_000): Promise<void> {
    return waitFor(() => this.count(type) >= n, `${n} x ${type} (got ${this.types().join(',')})`, timeoutMs);
  }
}

export const everythingBin = (): string => resolvePackageBin('@modelcontextprotocol/server-everything');

export interface HttpServerHandle {
  readonly url: string;
  readonly proc: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Start server-everything in Streamable HTTP mode (its CLI: `index.js streamableHttp`, port from PORT, path /mcp). */
export async function startEverythingHttp(port: number, timeoutMs = 20_000): Promise<HttpServerHandle> {
  const proc = spawn(process.execPath, [everythingBin(), 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server-everything HTTP did not start on ${port} in ${timeoutMs} ms`)),
      timeoutMs,
    );
    let err = '';
    proc.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('listening on port')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server-everything HTTP exited with ${code}: ${err.slice(-500)}`));
    });
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  proc.stderr.resume();
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    proc,
    async stop(signal: NodeJS.Signals = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}

/** A JSON-RPC message as an SDK server over HTTP received it. */
export interface ReceivedMessage {
  readonly method?: string;
  readonly params?: { readonly requestId?: unknown };
}

export interface SdkHttpServer {
  /** `http://127.0.0.1:<port>/mcp` */
  readonly url: string;
  /** Forget every session, as a restarted server would: their ids are answered 404 from now on. */
  forgetSessions(): void;
  close(): Promise<void>;
}

export interface SdkHttpServerOptions {
  /** Sees every JSON-RPC message posted, before the server handles it. */
  readonly onMessage?: (m: ReceivedMessage) => void;
  /** Sees every request, refused ones included. */
  readonly onRequest?: (req: IncomingMessage) => void;
  /** Answer only `Authorization: Bearer <bearer>` (else 401 with a JSON-RPC error, as the project's servers do). */
  readonly bearer?: string;
}

/**
 * Serve MCP servers built with the SDK (`build`, one per session: the SDK's stateful Streamable
 * HTTP) on a free loopback port, in this process, so a spec can shape what a server lists and
 * answers. An unknown session id is answered 404, as the SDK's own servers do.
 */
export async function startSdkHttpServer(
  build: () => McpServer | Server,
  { onMessage, onRequest, bearer }: SdkHttpServerOptions = {},
): Promise<SdkHttpServer> {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const servers: (McpServer | Server)[] = [];
  // eslint-disable-next-line @typescript-eslint/no-misused-promises -- a test server: an error here fails the client's request and so the test
  const http = createServer(async (req, res) => {
    onRequest?.(req);
    if (bearer !== undefined && req.headers.authorization !== `Bearer ${bearer}`) {
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'unauthorized' }, id: null }));
      return;
    }
    let body: unknown;
    if (onMessage && req.method === 'POST') {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      for (const m of (Array.isArray(body) ? body : [body]) as ReceivedMessage[]) onMessage(m);
    }
    const sid = req.headers['mcp-session-id'] as string | undefined;
    let transport = sid ? transports.get(sid) : undefined;
    if (!transport) {
      if (sid) return void res.writeHead(404).end();
      const server = build();
      servers.push(server);
      const t = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => void transports.set(id, t),
      });
      await server.connect(t);
      transport = t;
    }
    await transport.handleRequest(req, res, body);
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    forgetSessions: () => transports.clear(),
    async close() {
      for (const s of servers) await s.close().catch(() => undefined);
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    },
  };
}
