import { z } from 'zod';
import type { RecordedEvent } from '@switchyard/event-store';
import { textInt } from '../http/query-int.js';

/** A comma list (`type=A,B`) or a repeated parameter (`type=A&type=B`), as a clean string array. */
const csv = z.union([z.string(), z.array(z.string())]).transform((v) =>
  (Array.isArray(v) ? v : [v])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean),
);

/**
 * A comma list with a bound on its values and their length: each value is a test on every event
 * a filtered read examines (3,000 stream prefixes made one 10,000-event window cost 2 s of
 * PostgreSQL, and 50 such reads held every connection of the gateway for 30 s).
 */
const boundedCsv = (param: string, maxValues: number, maxChars: number) =>
  csv.pipe(
    z
      .array(z.string().max(maxChars, `a value of ${param} is at most ${maxChars} characters`))
      .max(maxValues, `at most ${maxValues} values of ${param} in one request`),
  );
const typesParam = boundedCsv('type', 64, 200);
const prefixesParam = boundedCsv('stream_prefix', 16, 512);

const isoTime = z.iso
  .datetime({ offset: true })
  .transform((s) => new Date(s))
  .describe('ISO-8601 date-time with zone, e.g. 2026-01-31T12:00:00Z');

/** A global-log position as used by `after` and `Last-Event-ID`; -1 means "before the first event". */
/** 15 digits: beyond any log kept here, and within the safe integers (the document and the parse agree on it). */
export const POSITION_MAX = 999_999_999_999_999;
// Digits only: a bare coercion would read an empty value (`after=`) as 0.
export const positionParam = z
  .union([
    z.number().int().min(-1).max(POSITION_MAX),
    z.string().regex(/^(?:-1|\d{1,15})$/, 'an integer, -1 or more (15 digits at most)'),
  ])
  .pipe(z.coerce.number<string | number>().int().min(-1));

export const eventsQuerySchema = z
  .object({
    stream: z
      .string()
      .min(1)
      .max(512)
      .optional()
      .describe('Read this one stream; without it the global log ($all) is read'),
    after: positionParam
      .optional()
      .describe('Global log only: page from this position, exclusive (the `next.after` of the previous page)'),
    from_revision: z
      .union([
        z.number().int().min(0).max(POSITION_MAX),
        z.string().regex(/^\d{1,15}$/, 'an integer (15 digits at most)'),
      ])
      .pipe(z.coerce.number<string | number>().int().min(0))
      .optional()
      .describe(
        'With `stream` only: first revision to return, inclusive (the `next.from_revision` of the previous page)',
      ),
    limit: textInt({ min: 1, max: 1000 }).default(100).describe('Page size, 1 to 1000 (default 100)'),
    direction: z.enum(['forwards', 'backwards']).default('forwards'),
    type: typesParam.optional().describe('Only these event types (comma list, at most 64)'),
    stream_prefix: prefixesParam
      .optional()
      .describe('Global log only: only streams whose id starts with one of these (comma list, at most 16)'),
    since: isoTime.optional().describe('Only events recorded at or after this time (ISO-8601)'),
    until: isoTime.optional().describe('Only events recorded at or before this time (ISO-8601)'),
  })
  .strict()
  .superRefine((q, ctx) => {
    if (q.stream !== undefined && q.after !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['after'],
        message: '`after` pages the global log; with `stream` use `from_revision`',
      });
    }
    if (q.stream === undefined && q.from_revision !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['from_revision'],
        message: '`from_revision` needs `stream`; the global log pages with `after`',
      });
    }
    if (q.stream !== undefined && q.stream_prefix !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['stream_prefix'],
        message: '`stream_prefix` filters the global log; it cannot be used with `stream`',
      });
    }
    if (q.since && q.until && q.since > q.until) {
      ctx.addIssue({ code: 'custom', path: ['until'], message: '`until` is before `since`' });
    }
  });
export type EventsQuery = z.output<typeof eventsQuerySchema>;

export const eventsStreamQuerySchema = z
  .object({
    after: positionParam
      .optional()
      .describe('Resume after this position (exclusive); the Last-Event-ID header wins. Without both: only new events'),
    type: typesParam.optional().describe('Only these event types (comma list, at most 64)'),
    stream_prefix: prefixesParam
      .optional()
      .describe('Only streams whose id starts with one of these (comma list, at most 16)'),
  })
  .strict();
export type EventsStreamQuery = z.output<typeof eventsStreamQuerySchema>;

/** An event as the API shows it. */
export const eventJsonSchema = z.object({
  id: z.string(),
  streamId: z.string(),
  type: z.string(),
  revision: z.number().int(),
  position: z.number().int(),
  recordedAt: z.string().describe('ISO-8601 commit time in the store'),
  data: z.unknown(),
  metadata: z.record(z.string(), z.unknown()),
});
export type EventJson = z.infer<typeof eventJsonSchema>;

export const eventsPageSchema = z.object({
  events: z.array(eventJsonSchema),
  next: z
    .object({
      after: z.number().int().optional(),
      from_revision: z.number().int().optional(),
      href: z.string().describe('The query for the next page'),
    })
    .nullable()
    .describe('Cursor of the next page; null when the log was read to its end'),
});
export type EventsPage = z.infer<typeof eventsPageSchema>;

export const toEventJson = (e: RecordedEvent): EventJson => ({
  id: e.id,
  streamId: e.streamId,
  type: e.type,
  revision: e.revision,
  position: e.position,
  recordedAt: e.recordedAt.toISOString(),
  data: e.type === 'ApiKeyCreated' ? withoutKeyHash(e.data) : e.data,
  metadata: { ...e.metadata },
});

/** What an API read shows in place of a key's hash. */
export const KEY_HASH_WITHHELD = '[withheld: the hash of a key is never served]';

/**
 * An API key's hash stays in the log (the key table is rebuilt from it) but no read serves it, to
 * any role: an admin key chosen by an operator (SWITCHYARD_ADMIN_KEY) may have little entropy, and
 * a plain SHA-256 of it could be guessed offline.
 */
function withoutKeyHash(data: unknown): unknown {
  if (!data || typeof data !== 'object' || Array.isArray(data) || !('hash' in data)) return data;
  return { ...(data as Record<string, unknown>), hash: KEY_HASH_WITHHELD };
}
