import { mkdirSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  CallToolResultSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListResourcesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  type ServerCapabilities,
} from '@modelcontextprotocol/sdk/types.js';
import { filesystemGlobRefusal } from '@switchyard/contracts';
import { startStdioChild } from '../common/stdio-bridge.js';
import { pathRoots, relativizeDeep, relativizePaths, type Logger, type StdioSandbox } from '@switchyard/platform';

export interface FilesystemBridgeOptions {
  /** The only directory the official server may touch (created if missing). */
  readonly root: string;
  readonly logger: Logger;
  /** Path of the stdio server script; default: the installed @modelcontextprotocol/server-filesystem. */
  readonly serverScript?: string;
  /** Where the server runs (see StdioSandbox); none: as a plain child. */
  readonly sandbox?: StdioSandbox;
  /** How often the child is pinged and how long a ping may take (see startStdioChild). */
  readonly ping?: { readonly everyMs: number; readonly timeoutMs: number };
}

export interface FilesystemBridge {
  /** The real path of the sandbox root. */
  readonly root: string;
  /** The client connected to the current child process (shared by all HTTP requests). */
  readonly client: Client;
  /** Process id of the current child, null while it is down. */
  readonly pid: number | null;
  /** Builds the HTTP-side server for one request (use with startMcpHttpServer). */
  serverFactory(): Server;
  /** True while the child process is connected. */
  alive(): boolean;
  /** Whether the child answers an MCP ping within `timeoutMs`. */
  answers(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

export function filesystemServerScript(): string {
  return createRequire(import.meta.url).resolve('@modelcontextprotocol/server-filesystem/dist/index.js');
}

/**
 * An HTTP-side MCP server that forwards tools, resources and prompts to an upstream
 * client. It advertises only what the upstream advertises, and forwards requests as
 * they are (results and tool errors unchanged; protocol errors surface as errors).
 */
export function createForwardingServer(
  upstream: Client,
  info: { name: string; version: string },
  roots: readonly string[] = [],
): Server {
  const caps = upstream.getServerCapabilities() ?? {};
  // Paths in results and errors are shown relative to the sandbox roots (no absolute server paths).
  const rel = <T>(p: Promise<T>): Promise<T> =>
    roots.length === 0
      ? p
      : p.then(
          (v) => relativizeDeep(v, roots),
          (e: unknown) => {
            if (e instanceof Error) e.message = relativizePaths(e.message, roots);
            throw e;
          },
        );
  const advertised: ServerCapabilities = {};
  if (caps.tools) advertised.tools = {};
  if (caps.resources) advertised.resources = {};
  if (caps.prompts) advertised.prompts = {};
  const server = new Server(info, { capabilities: advertised, instructions: upstream.getInstructions() });
  if (caps.tools) {
    server.setRequestHandler(ListToolsRequestSchema, (req, extra) =>
      rel(upstream.listTools(req.params, { signal: extra.signal })),
    );
    // Raw request: the upstream's result goes back untouched (no client-side output-schema checks here;
    // the caller's own client does those against the forwarded tool list).
    server.setRequestHandler(CallToolRequestSchema, (req, extra) => {
      // A glob the server would match without bound never reaches it (see filesystem-globs.ts).
      const refused = filesystemGlobRefusal(req.params.arguments);
      if (refused) throw new McpError(ErrorCode.InvalidParams, refused);
      return rel(
        upstream.request({ method: 'tools/call', params: req.params }, CallToolResultSchema, { signal: extra.signal }),
      );
    });
  }
  if (caps.resources) {
    server.setRequestHandler(ListResourcesRequestSchema, (req, extra) =>
      rel(upstream.listResources(req.params, { signal: extra.signal })),
    );
    server.setRequestHandler(ListResourceTemplatesRequestSchema, (req, extra) =>
      rel(upstream.listResourceTemplates(req.params, { signal: extra.signal })),
    );
    server.setRequestHandler(ReadResourceRequestSchema, (req, extra) =>
      rel(upstream.readResource(req.params, { signal: extra.signal })),
    );
  }
  if (caps.prompts) {
    server.setRequestHandler(ListPromptsRequestSchema, (req, extra) =>
      rel(upstream.listPrompts(req.params, { signal: extra.signal })),
    );
    server.setRequestHandler(GetPromptRequestSchema, (req, extra) =>
      rel(upstream.getPrompt(req.params, { signal: extra.signal })),
    );
  }
  return server;
}

/**
 * Start the official filesystem server as a child process sandboxed to `root` and
 * connect a client to it over stdio. The client declares no `roots` capability, so
 * the child keeps the command-line root and HTTP callers cannot widen it. When the
 * child dies, or stops answering pings, it is restarted with backoff (1 s doubling to 30 s);
 * calls made meanwhile fail and /health reports 503.
 */
export async function startFilesystemBridge(opts: FilesystemBridgeOptions): Promise<FilesystemBridge> {
  mkdirSync(opts.root, { recursive: true });
  const root = realpathSync(path.resolve(opts.root));
  const roots = pathRoots([root, path.resolve(opts.root)]);
  const child = await startStdioChild({
    name: 'filesystem',
    script: opts.serverScript ?? filesystemServerScript(),
    args: [root],
    logger: opts.logger.child({ root }),
    ...(opts.sandbox && { sandbox: opts.sandbox, writable: [root] }),
    ...(opts.ping && { ping: opts.ping }),
  });
  return {
    root,
    get client(): Client {
      return child.client;
    },
    get pid(): number | null {
      return child.pid;
    },
    serverFactory: () =>
      createForwardingServer(child.client, { name: 'switchyard-filesystem-bridge', version: '0.1.0' }, roots),
    alive: () => child.alive(),
    answers: (timeoutMs) => child.answers(timeoutMs),
    close: () => child.close(),
  };
}
