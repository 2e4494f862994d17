import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { AppError, isAppError } from '../errors.js';
import type { EgressGuard } from './guard.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';

export interface SafeRequest {
  readonly method: HttpMethod;
  readonly url: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** Deadline for the whole exchange including redirects. */
  readonly timeoutMs: number;
  /** Response body cap, enforced while streaming (the rest is never read). */
  readonly maxBytes: number;
  /** Redirects followed by hand, each one re-checked by the guard; 0 returns the 3xx as is. */
  readonly maxRedirects: number;
  readonly signal?: AbortSignal;
}

export interface SafeResponse {
  readonly url: string;
  readonly status: number;
  readonly statusText: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  readonly redirects: string[];
}

/** The request headers kept on a redirect to another origin: none of them carries a credential. */
const CROSS_ORIGIN_HEADERS: ReadonlySet<string> = new Set([
  'accept',
  'accept-language',
  'cache-control',
  'content-language',
  'content-type',
  'pragma',
  'user-agent',
]);
const redirectStatuses = new Set([301, 302, 303, 307, 308]);

function flatHeaders(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

interface OneResponse {
  res: IncomingMessage;
  body: Buffer;
}

/** One HTTP exchange through the guard's lookup; reads at most maxBytes of the body. */
function exchange(
  guard: EgressGuard,
  url: URL,
  req: SafeRequest,
  method: HttpMethod,
  body: string | Buffer | undefined,
  headers: Record<string, string>,
  signal: AbortSignal,
  readBody: boolean,
): Promise<OneResponse> {
  guard.checkUrl(url);
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise<OneResponse>((resolve, reject) => {
    const outgoing = mod.request(
      url,
      {
        method,
        headers: { 'accept-encoding': 'identity', 'user-agent': 'switchyard-mcp-fetch/0.1', ...headers },
        // Connect only to addresses the guard resolved and checked (no DNS-rebinding gap).
        lookup: guard.lookup,
        // A fresh connection per exchange: a kept-alive socket would skip the lookup check.
        agent: false,
        signal,
      },
      (res) => {
        const declared = Number(res.headers['content-length']);
        if (readBody && Number.isFinite(declared) && declared > req.maxBytes) {
          reject(
            new AppError('payload_too_large', `response is ${declared} bytes, more than the cap of ${req.maxBytes}`, {
              max_bytes: req.maxBytes,
              content_length: declared,
            }),
          );
          res.destroy();
          return;
        }
        if (!readBody || method === 'HEAD') {
          res.resume();
          resolve({ res, body: Buffer.alloc(0) });
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > req.maxBytes) {
            // Reject first: destroying the sockets emits errors that must not win the race.
            reject(
              new AppError('payload_too_large', `response exceeds the cap of ${req.maxBytes} bytes`, {
                max_bytes: req.maxBytes,
              }),
            );
            res.destroy();
            outgoing.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ res, body: Buffer.concat(chunks) }));
        res.on('error', reject);
        res.on('aborted', () =>
          reject(new AppError('unavailable', 'connection closed while reading the response', {}, true)),
        );
      },
    );
    outgoing.on('error', reject);
    if (body !== undefined && method !== 'GET' && method !== 'HEAD') outgoing.write(body);
    outgoing.end();
  });
}

/**
 * An HTTP request that cannot reach internal addresses: every hop's URL and resolved
 * addresses are checked by the guard, redirects are followed by hand (at most
 * `maxRedirects`), the body is capped while streaming and the whole exchange has one deadline.
 */
export async function safeHttpRequest(guard: EgressGuard, req: SafeRequest): Promise<SafeResponse> {
  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    // The URL can be its own credential (a webhook's path, an A2A push URL's query): not repeated.
    throw new AppError('validation', 'not a valid URL');
  }
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([timeout.signal, req.signal]) : timeout.signal;
  let method = req.method;
  let body = req.body;
  let headers = { ...(req.headers ?? {}) };
  const redirects: string[] = [];
  try {
    for (;;) {
      const { res, body: data } = await exchange(guard, url, req, method, body, headers, signal, true);
      const location = res.headers.location;
      if (redirectStatuses.has(res.statusCode ?? 0) && location && redirects.length < req.maxRedirects) {
        const next = new URL(location, url);
        // Credentials never follow a redirect to another origin: only headers known to carry none
        // do (a credential can have any name: x-api-key, private-token, x-auth-token...).
        if (next.origin !== url.origin) {
          headers = Object.fromEntries(
            Object.entries(headers).filter(([k]) => CROSS_ORIGIN_HEADERS.has(k.toLowerCase())),
          );
        }
        // Browser semantics: 303 always, and 301/302 after a POST, continue as GET without a body.
        if (res.statusCode === 303 || ((res.statusCode === 301 || res.statusCode === 302) && method === 'POST')) {
          if (method !== 'HEAD') method = 'GET';
          body = undefined;
        }
        redirects.push(next.toString());
        url = next;
        continue;
      }
      return {
        url: url.toString(),
        status: res.statusCode ?? 0,
        statusText: res.statusMessage ?? '',
        headers: flatHeaders(res.headers),
        body: data,
        redirects,
      };
    }
  } catch (e) {
    if (isAppError(e)) throw e;
    // Errors name the origin only: their callers log them whole (every failed delivery), and a
    // URL's path and query can be its own credential (a webhook's secret path, a push URL's token).
    if (timeout.signal.aborted) {
      throw new AppError(
        'timeout',
        `no complete response from ${url.host} within ${req.timeoutMs} ms`,
        { timeout_ms: req.timeoutMs, url: url.origin },
        true,
      );
    }
    if (req.signal?.aborted) throw new AppError('unavailable', 'request cancelled by the caller', {}, false);
    const err = e as NodeJS.ErrnoException;
    throw new AppError(
      'unavailable',
      `request to ${url.host} failed: ${err.code ?? ''} ${err.message}`.trim(),
      { url: url.origin, cause: err.code },
      true,
    );
  } finally {
    clearTimeout(timer);
  }
}

/** True for content types that are safe to return as UTF-8 text. */
export function isTextual(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const t = contentType.toLowerCase();
  return t.startsWith('text/') || /json|xml|javascript|ecmascript|x-www-form-urlencoded|yaml|csv/.test(t);
}

export interface GuardedFetchInit {
  readonly method?: HttpMethod;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  readonly signal?: AbortSignal;
  /** Default 30 s. */
  readonly timeoutMs?: number;
  /** Response body cap. Default 10 MiB. */
  readonly maxBytes?: number;
}

/**
 * `fetch` for URLs that come from configuration or from API callers (external agents,
 * webhooks): the connection goes only to addresses the guard resolved and checked, at
 * connect time (no DNS-rebinding gap), redirects are not followed (a 3xx is answered as
 * is: an agent or a webhook receiver has no reason to send us elsewhere), and the body
 * is capped. Resolves with a standard Response; rejects with an AppError (`forbidden`
 * for a refused address, `unavailable`, `timeout`, `payload_too_large`).
 */
export async function guardedFetch(
  guard: EgressGuard,
  url: string | URL,
  init: GuardedFetchInit = {},
): Promise<Response> {
  const res = await safeHttpRequest(guard, {
    method: init.method ?? 'GET',
    url: url.toString(),
    ...(init.headers ? { headers: init.headers } : {}),
    ...(init.body !== undefined ? { body: init.body } : {}),
    ...(init.signal ? { signal: init.signal } : {}),
    timeoutMs: init.timeoutMs ?? 30_000,
    maxBytes: init.maxBytes ?? 10 * 1024 * 1024,
    maxRedirects: 0,
  });
  const nullBody = res.status === 204 || res.status === 304 || (init.method ?? 'GET') === 'HEAD';
  return new Response(nullBody ? null : res.body, {
    status: res.status < 200 || res.status > 599 ? 502 : res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
}
