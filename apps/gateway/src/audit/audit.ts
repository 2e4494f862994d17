import { z } from 'zod';
import type { EventStore, RecordedEvent } from '@switchyard/event-store';
import { logWindow, pastTimeRange, timeSeek } from '../events/log-window.js';
import { textInt } from '../http/query-int.js';

export const AUDIT_PATH = '/api/v1/audit';
/** Most events one audit request examines before it answers a short page with `next`. */
export const AUDIT_SCAN_CAP = 10_000;

const csv = z.union([z.string(), z.array(z.string())]).transform((v) =>
  (Array.isArray(v) ? v : [v])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean),
);
const isoTime = z.iso.datetime({ offset: true }).transform((s) => new Date(s));

export const auditQuerySchema = z
  .object({
    actor: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe(
        'Only this actor, e.g. `apikey:0123456789abcdef` or `system:bootstrap`; also what the system did for it (`onBehalfOf`: the executions its schedules and triggers started, the tool calls of its workflows)',
      ),
    correlation_id: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe("Only events of this correlation id (a request's, a workflow execution's, a task's)"),
    type: csv.optional().describe('Only these event types (comma list)'),
    since: isoTime.optional().describe('Recorded at or after (ISO-8601)'),
    until: isoTime.optional().describe('Recorded at or before (ISO-8601)'),
    after: z
      .union([
        z.number().int().min(-1).max(999_999_999_999_999),
        z.string().regex(/^(?:-1|\d{1,15})$/, 'an integer, -1 or more (15 digits at most)'),
      ])
      .pipe(z.coerce.number<string | number>().int().min(-1))
      .optional()
      .describe('Global position to page from, exclusive (`next.after`)'),
    limit: textInt({ min: 1, max: 500 }).default(100),
    direction: z.enum(['forwards', 'backwards']).default('backwards').describe('Default newest first'),
  })
  .strict()
  .refine((q) => !(q.since && q.until && q.since > q.until), { path: ['until'], message: '`until` is before `since`' });
export type AuditQuery = z.output<typeof auditQuerySchema>;

export const auditEntrySchema = z.object({
  position: z.number(),
  recordedAt: z.string(),
  actor: z.string(),
  type: z.string(),
  streamId: z.string(),
  revision: z.number(),
  eventId: z.string(),
  correlationId: z.string().nullable(),
  /** Whom the system acted for, when the actor is the system: a workflow's starter, a schedule's owner. */
  onBehalfOf: z.string().nullable(),
});
export type AuditEntry = z.infer<typeof auditEntrySchema>;
export const auditPageSchema = z.object({
  entries: z.array(auditEntrySchema),
  next: z.object({ after: z.number(), href: z.string() }).nullable(),
});
export type AuditPage = z.infer<typeof auditPageSchema>;

/**
 * Whom an event of the system's was for: the metadata's `onBehalfOf` (a task submitted by a
 * workflow step), a started execution's `onBehalfOf` (a schedule's or trigger's person), a
 * connector's tool call's `on_behalf_of` (a workflow step's call).
 */
function onBehalfOfOf(e: RecordedEvent): string | null {
  const m = e.metadata as Record<string, unknown>;
  if (typeof m['onBehalfOf'] === 'string') return m['onBehalfOf'];
  const d = e.data;
  if (d && typeof d === 'object' && !Array.isArray(d)) {
    const r = d as Record<string, unknown>;
    if (typeof r['onBehalfOf'] === 'string') return r['onBehalfOf'];
    if (typeof r['on_behalf_of'] === 'string') return r['on_behalf_of'];
  }
  return null;
}

const toEntry = (e: RecordedEvent): AuditEntry => ({
  position: e.position,
  recordedAt: e.recordedAt.toISOString(),
  actor: String(e.metadata.actor),
  type: e.type,
  streamId: e.streamId,
  revision: e.revision,
  eventId: e.id,
  correlationId: typeof e.metadata.correlationId === 'string' ? e.metadata.correlationId : null,
  onBehalfOf: onBehalfOfOf(e),
});

/**
 * Who did what: events of $all whose metadata names an actor, filtered by actor (or whom the
 * system acted for), correlation id, type and time. The store filters types; actor and time are filtered here, reading batches
 * until the page is full or the window of AUDIT_SCAN_CAP positions is read (see logWindow; a
 * store without one: AUDIT_SCAN_CAP events examined): then `next` is set even on a short page,
 * so a scan never runs unbounded.
 */
export async function readAuditPage(store: EventStore, q: AuditQuery): Promise<AuditPage> {
  const types = q.type && q.type.length ? q.type : undefined;
  const matches = (e: RecordedEvent) =>
    typeof e.metadata?.actor === 'string' &&
    e.metadata.actor.length > 0 &&
    (q.actor === undefined || e.metadata.actor === q.actor || onBehalfOfOf(e) === q.actor) &&
    (q.correlation_id === undefined || e.metadata.correlationId === q.correlation_id) &&
    (!q.since || e.recordedAt >= q.since) &&
    (!q.until || e.recordedAt <= q.until);
  // Batches grow from about twice the page (each event is read whole, payload included: a page of
  // 5 read 500 events of up to 495 KB each and cost a CPU-second) up to 500.
  let batchSize = Math.min(500, Math.max(2 * q.limit, 20));
  const out: AuditEntry[] = [];
  // Bounded in time and with no cursor: it starts where that time is in the log.
  let cursor = q.after ?? (await timeSeek(store, q.direction, q.since, q.until));
  let ended = false;
  let scanned = 0;
  const window = await logWindow(store, q.direction, cursor, AUDIT_SCAN_CAP);
  // A window bounds what the store examines; without one (EventStoreDB) the events examined here do.
  while (out.length < q.limit && !ended && scanned < AUDIT_SCAN_CAP) {
    const batch = await store.readAll({
      direction: q.direction,
      maxCount: batchSize,
      ...(window ? { until: window.bound } : {}),
      ...(cursor !== undefined ? { after: cursor } : {}),
      ...(types ? { types } : {}),
    });
    let examined = 0;
    for (const e of batch) {
      examined++;
      cursor = e.position;
      if (matches(e)) out.push(toEntry(e));
      if (out.length === q.limit) break;
    }
    scanned += examined;
    if (batch.length < batchSize && examined === batch.length) {
      // The window is read: the next request starts past it (no window: the log is read to its end).
      if (window) cursor = window.bound;
      ended = window?.endsLog ?? true;
      break;
    }
    batchSize = Math.min(500, batchSize * 2);
  }
  if (!ended && cursor !== undefined && (await pastTimeRange(store, q.direction, cursor, q.since, q.until)))
    ended = true;
  return { entries: out, next: ended || cursor === undefined ? null : { after: cursor, href: nextHref(q, cursor) } };
}

function nextHref(q: AuditQuery, after: number): string {
  const p = new URLSearchParams();
  if (q.actor) p.set('actor', q.actor);
  if (q.correlation_id) p.set('correlation_id', q.correlation_id);
  if (q.type?.length) p.set('type', q.type.join(','));
  if (q.since) p.set('since', q.since.toISOString());
  if (q.until) p.set('until', q.until.toISOString());
  p.set('after', String(after));
  p.set('limit', String(q.limit));
  p.set('direction', q.direction);
  return `${AUDIT_PATH}?${p.toString()}`;
}
