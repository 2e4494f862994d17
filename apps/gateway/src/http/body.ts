import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { UnsupportedMediaTypeException } from '@nestjs/common';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { deferInputError } from './route-checks.js';

// Fastify's own parse of the header, so this agrees with it on what is a media type.
const FastifyContentType = createRequire(import.meta.url)('fastify/lib/content-type.js') as {
  from(this: void, header: string): { readonly isValid: boolean };
};
/** The methods Fastify reads a body for (and so judges the Content-Type of). */
const BODY_METHODS = new Set(['DELETE', 'OPTIONS', 'PATCH', 'PUT', 'POST', 'QUERY']);

const UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** A byte count from a number or a size such as `1mb` (the form GATEWAY_BODY_LIMIT_BYTES and the options take). */
export function byteLimit(limit: string | number): number {
  if (typeof limit === 'number') return limit;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(limit);
  if (!m) throw new Error(`not a size: ${limit}`);
  return Math.floor(Number(m[1]) * UNITS[(m[2] ?? 'b').toLowerCase()]!);
}

/** What toProblem maps to 400 / 413 (the shapes of body-parser's errors, which clients saw before). */
const parseFailed = (message: string, reason: 'invalid_json' | 'not_an_object') =>
  Object.assign(new Error(message), { status: 400, type: 'entity.parse.failed', expose: true, reason });
const tooLarge = (limit: number) =>
  Object.assign(new Error('request entity too large'), { status: 413, type: 'entity.too.large', limit, expose: true });

// Strict JSON as before: a body is an object or an array (no bare scalars).
// eslint-disable-next-line no-control-regex -- JSON's whitespace (tab, LF, CR) is matched on purpose
const STRICT_START = /^[\x20\x09\x0a\x0d]*[[{]/;

const UNREAD = Symbol.for('switchyard.gateway.unreadBody');

/** Let this request's body through unread: it is refused before any handler would use it. */
export function leaveBodyUnread(req: FastifyRequest): void {
  (req as FastifyRequest & { [UNREAD]?: boolean })[UNREAD] = true;
}

/**
 * The gateway's body parsing on Fastify:
 * - `application/json` and `application/*+json`: read up to `limit` bytes and parse; a body that
 *   is not JSON or is too large is not answered here but kept for the role guard (see
 *   route-checks.ts: the caller's key and role are checked first), and the request goes on
 *   without a body. An empty body is `{}`. One sent with a Content-Encoding other than identity, or
 *   declared in a charset other than UTF-8, is drained unread and kept as a 415 the same way.
 * - any other content type: not read; a body in it is a 415 (kept for the role guard), and the
 *   handler sees no body (as a JSON API should).
 */
export function registerBodyParsers(app: FastifyInstance, limit: number): void {
  app.removeAllContentTypeParsers();
  const json = (req: FastifyRequest, payload: IncomingMessage, done: (err: Error | null, body?: unknown) => void) => {
    if ((req as FastifyRequest & { [UNREAD]?: boolean })[UNREAD]) {
      payload.resume();
      return done(null, {});
    }
    const unsupported = unsupportedEncoding(req.headers);
    if (unsupported) {
      // Drained, neither kept nor decoded (no inflating a bomb): the socket must still reach the next request.
      deferInputError(req, new UnsupportedMediaTypeException(unsupported));
      payload.resume();
      payload.once('end', () => done(null, undefined));
      payload.once('error', () => done(null, undefined));
      return;
    }
    readLimited(payload, limit, (err, text) => {
      if (err) {
        deferInputError(req, err);
        return done(null, undefined);
      }
      // A byte-order mark before the JSON (some editors and Windows tools write one): JSON allows
      // a reader to ignore it, and refusing it named only an invisible character.
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (text === '') return done(null, {});
      if (!STRICT_START.test(text)) {
        deferInputError(req, notAnObject(text));
        return done(null, undefined);
      }
      try {
        done(null, MAYBE_OUT_OF_RANGE.test(text) ? JSON.parse(text, finiteNumbers) : JSON.parse(text));
      } catch (e) {
        deferInputError(
          req,
          parseFailed(`the request body is not valid JSON: ${(e as Error).message}`, 'invalid_json'),
        );
        done(null, undefined);
      }
    });
  };
  app.addContentTypeParser('application/json', json);
  app.addContentTypeParser(/^application\/[^;,\s]+\+json\b/i, json);
  app.addContentTypeParser(
    '*',
    (req: FastifyRequest, payload: IncomingMessage, done: (err: Error | null, body?: unknown) => void) => {
      // Drained, not kept: the socket must still reach the next request. A body that came in
      // another type (curl's -d sends a form type unless told otherwise) is a 415 that says how to
      // send it, kept for the role guard like a body that is not JSON, not a route's complaint
      // that its fields are missing.
      let bytes = 0;
      payload.on('data', (chunk: Buffer) => void (bytes += chunk.length));
      payload.once('end', () => {
        if (bytes > 0) {
          const type = String(req.headers['content-type'] ?? '').slice(0, 100);
          deferInputError(
            req,
            new UnsupportedMediaTypeException(
              `the body was sent as ${JSON.stringify(type)}: send it as JSON, with the header Content-Type: application/json`,
            ),
          );
        }
        done(null, undefined);
      });
      payload.once('error', () => done(null, undefined));
    },
  );
}

/** The refusal of a body that is no JSON object or array: JSON of another kind (`"a"`, `3`), or no JSON at all (`hello`). */
function notAnObject(text: string): Error {
  try {
    JSON.parse(text);
  } catch (e) {
    return parseFailed(`the request body is not valid JSON: ${(e as Error).message}`, 'invalid_json');
  }
  return parseFailed(
    'the request body is JSON but not an object (or an array where a route takes one)',
    'not_an_object',
  );
}

/**
 * Text that may hold a number past a double's range (an exponent of three digits, or 309 digits
 * in a row): JSON.parse reads it as Infinity, which is stored and answered as null, so
 * `{"a": 1e400}` would silently become `{"a": null}`. Only such bodies pay for the check.
 */
const MAYBE_OUT_OF_RANGE = /\d[eE]\+?\d{3}|\d{309}/;

/** A JSON.parse reviver that refuses a number JSON cannot carry back (it overflowed to ±Infinity). */
function finiteNumbers(key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value))
    throw new SyntaxError(`the number at ${JSON.stringify(key)} is out of range (past ±1.8e308)`);
  return value;
}

/** The charsets a JSON body may be declared in: JSON is UTF-8 (RFC 8259 8.1), and ASCII is a part of it. */
const JSON_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii']);

/**
 * Why a body is not read as it was sent, if it is not (RFC 9110 15.5.16: 415): a content coding
 * other than `identity` (no route inflates a body: it read the compressed bytes as JSON and
 * answered "not an object"), or a charset other than UTF-8 (a UTF-16 body was decoded as UTF-8).
 */
export function unsupportedEncoding(headers: IncomingMessage['headers']): string | undefined {
  const coding = headers['content-encoding'];
  if (coding !== undefined) {
    const codings = coding
      .split(',')
      .map((c) => c.trim().toLowerCase())
      .filter((c) => c !== '' && c !== 'identity');
    if (codings.length > 0)
      return `the body is sent with Content-Encoding ${JSON.stringify(codings.join(', ').slice(0, 100))}, which this API does not decode: send it uncompressed (no Content-Encoding, or identity)`;
  }
  const charset = /;\s*charset\s*=\s*(?:"([^"]*)"|([^;\s]*))/i.exec(headers['content-type'] ?? '');
  const name = (charset?.[1] ?? charset?.[2])?.toLowerCase();
  if (name !== undefined && !JSON_CHARSETS.has(name))
    return `the body is declared in charset ${JSON.stringify(name.slice(0, 100))}: send JSON as UTF-8 (charset=utf-8, or no charset)`;
  return undefined;
}

/**
 * A Content-Type that is not a media type (`;;;`, `a`) is answered 415 by Fastify before any
 * handler, so before the role guard: a caller without the route's role would learn how its
 * request was judged. Kept for the guard instead (like a body that is not JSON), and the header
 * replaced so the body is drained unread. Runs in the edge's onRequest hook.
 */
export function deferInvalidMediaType(req: FastifyRequest): void {
  const header = req.headers['content-type'];
  if (header === undefined || !BODY_METHODS.has(req.method) || FastifyContentType.from(header).isValid) return;
  deferInputError(
    req,
    new UnsupportedMediaTypeException(
      `the Content-Type header is not a media type: ${JSON.stringify(header.slice(0, 100))}`,
    ),
  );
  req.headers['content-type'] = 'application/octet-stream';
}

/** The body as text, or the 413 error past `limit` bytes (a chunked body past it is drained, not kept). */
function readLimited(
  payload: IncomingMessage,
  limit: number,
  cb: (err: Error | undefined, text: string) => void,
): void {
  const declared = Number(payload.headers['content-length']);
  let size = 0;
  const chunks: Buffer[] = [];
  let over = false;
  let finished = false;
  const finish = (err: Error | undefined) => {
    if (finished) return;
    finished = true;
    cb(err, err ? '' : Buffer.concat(chunks, size).toString('utf8'));
  };
  // Declared too large: refused unread (Node discards the rest once the answer is out).
  if (Number.isFinite(declared) && declared > limit) return cb(tooLarge(limit), '');
  payload.on('data', (chunk: Buffer) => {
    if (over) return;
    size += chunk.length;
    if (size > limit) {
      over = true;
      chunks.length = 0;
      return;
    }
    chunks.push(chunk);
  });
  payload.once('end', () => finish(over ? tooLarge(limit) : undefined));
  payload.once('error', (e) => finish(parseFailed(`the request body could not be read: ${e.message}`, 'invalid_json')));
}
