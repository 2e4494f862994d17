import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Logger } from '@switchyard/platform';
import { tool } from '../common/tools.js';
import { EgressGuard } from './egress-guard.js';
import { HtmlExtractor } from './html-extractor.js';
import { isTextual, safeHttpRequest } from './http-client.js';
import { sharedJsonSchemaValidator } from '../common/validator.js';

export interface FetchServerLimits {
  /** Default and ceiling of `timeout_ms`. */
  readonly defaultTimeoutMs: number;
  readonly maxTimeoutMs: number;
  /** Default and ceiling of `max_bytes`. */
  readonly defaultMaxBytes: number;
  readonly maxMaxBytes: number;
  readonly maxRedirects: number;
}

export interface FetchServerDeps {
  readonly guard: EgressGuard;
  readonly logger: Logger;
  readonly limits?: Partial<FetchServerLimits>;
  /** Where `fetch_text` converts HTML (default: one converter thread for the process). */
  readonly htmlExtractor?: HtmlExtractor;
}

/** The process's converter: its thread starts with the first page. */
let processExtractor: HtmlExtractor | undefined;

export const defaultFetchLimits: FetchServerLimits = {
  defaultTimeoutMs: 15_000,
  maxTimeoutMs: 60_000,
  defaultMaxBytes: 1024 * 1024,
  maxMaxBytes: 10 * 1024 * 1024,
  maxRedirects: 5,
};

/**
 * The fetch MCP server: `http_request` and `fetch_text`, both behind the egress guard
 * (private, loopback, link-local, CGNAT, multicast, ULA ... refused unless allow-listed).
 */
export function createFetchServer(deps: FetchServerDeps): McpServer {
  const limits = { ...defaultFetchLimits, ...deps.limits };
  const server = new McpServer(
    { name: 'switchyard-fetch', version: '0.1.0' },
    { jsonSchemaValidator: sharedJsonSchemaValidator },
  );
  const timeout = z
    .number()
    .int()
    .min(1)
    .max(limits.maxTimeoutMs)
    .optional()
    .describe(`deadline in ms (default ${limits.defaultTimeoutMs})`);
  const maxBytes = z
    .number()
    .int()
    .min(1)
    .max(limits.maxMaxBytes)
    .optional()
    .describe(`response size cap in bytes (default ${limits.defaultMaxBytes})`);

  server.registerTool(
    'http_request',
    {
      description:
        'Make an HTTP request to a public URL. Internal addresses are refused unless allow-listed. Text bodies come back as utf8, others as base64.',
      inputSchema: {
        method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD']).default('GET'),
        url: z.string().url(),
        headers: z.record(z.string(), z.string()).optional(),
        body: z.string().optional().describe('request body (sent as is; set content-type in headers)'),
        timeout_ms: timeout,
        max_bytes: maxBytes,
        follow_redirects: z.boolean().default(true),
      },
      annotations: { openWorldHint: true },
    },
    tool('http_request', deps.logger, async (args, ctx) => {
      const res = await safeHttpRequest(deps.guard, {
        method: args.method,
        url: args.url,
        headers: args.headers,
        body: args.body,
        timeoutMs: args.timeout_ms ?? limits.defaultTimeoutMs,
        maxBytes: args.max_bytes ?? limits.defaultMaxBytes,
        maxRedirects: args.follow_redirects ? limits.maxRedirects : 0,
        signal: ctx.signal,
      });
      const textual = isTextual(res.headers['content-type']) || res.body.length === 0;
      return {
        url: res.url,
        status: res.status,
        status_text: res.statusText,
        headers: res.headers,
        body: textual ? res.body.toString('utf8') : res.body.toString('base64'),
        body_encoding: textual ? 'utf8' : 'base64',
        bytes: res.body.length,
        redirects: res.redirects,
      };
    }),
  );

  server.registerTool(
    'fetch_text',
    {
      description: 'GET a web page and return its title, readable text and links (HTML converted to text).',
      inputSchema: { url: z.string().url(), timeout_ms: timeout, max_bytes: maxBytes },
      annotations: { readOnlyHint: true, openWorldHint: true },
    },
    tool('fetch_text', deps.logger, async (args, ctx) => {
      const res = await safeHttpRequest(deps.guard, {
        method: 'GET',
        url: args.url,
        headers: { accept: 'text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5' },
        timeoutMs: args.timeout_ms ?? limits.defaultTimeoutMs,
        maxBytes: args.max_bytes ?? limits.defaultMaxBytes,
        maxRedirects: limits.maxRedirects,
        signal: ctx.signal,
      });
      const type = res.headers['content-type'] ?? '';
      const raw = res.body.toString('utf8');
      const page =
        /html/i.test(type) || (!type && /<html|<body|<p[\s>]/i.test(raw))
          ? await (deps.htmlExtractor ?? (processExtractor ??= new HtmlExtractor())).extract(raw, res.url, ctx.signal)
          : { title: '', text: raw, links: [] };
      return { url: res.url, status: res.status, content_type: type, ...page };
    }),
  );
  return server;
}
