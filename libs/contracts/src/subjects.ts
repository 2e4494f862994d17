/**
 * NATS subjects and JetStream names. Subjects are built here and only here, so
 * every publisher and subscriber agrees on the layout:
 *
 *   switchyard.events.<stream-category>.<event-type>      published domain events
 *   switchyard.svc.<service>.v<major>.<endpoint>          request-reply services
 */

export const SUBJECT_ROOT = 'switchyard';
export const EVENTS_SUBJECT_PREFIX = `${SUBJECT_ROOT}.events`;
/** Matches every published event; the JetStream stream captures exactly this. */
export const EVENTS_SUBJECT_WILDCARD = `${EVENTS_SUBJECT_PREFIX}.>`;
/** The JetStream stream that stores published events. */
export const EVENTS_STREAM = 'SWITCHYARD_EVENTS';
/**
 * What the events stream keeps on disk by default (NATS_EVENTS_MAX_BYTES): the oldest go first.
 * The event store is the record (a replay for audit reads it); the stream serves subscribers, and
 * with no cap it would fill the disk of the NATS server, which every role and the bucket share.
 */
export const EVENTS_STREAM_MAX_BYTES = 1024 * 1024 * 1024;
export const SERVICE_SUBJECT_PREFIX = `${SUBJECT_ROOT}.svc`;

/**
 * Make any string a single valid subject token. NATS tokens must not contain `.`
 * (token separator), `*` / `>` (wildcards) or whitespace, and must not be empty.
 * We go stricter and keep only [A-Za-z0-9_-] so tokens are also safe in stream,
 * consumer and KV names; everything else becomes `_`. Not injective on purpose:
 * the subject is for routing and filtering, the envelope carries the exact values.
 */
export function subjectToken(value: string): string {
  const t = value.replace(/[^A-Za-z0-9_-]/g, '_');
  return t.length === 0 ? '_' : t;
}

/** True when `value` is already a valid token under the rule of {@link subjectToken}. */
export const isSubjectToken = (value: string): boolean => /^[A-Za-z0-9_-]+$/.test(value);

/** Stream category: the part of the stream id before the first `-` (same rule as the event store port). */
export const categoryOf = (streamId: string): string => {
  const i = streamId.indexOf('-');
  return i === -1 ? streamId : streamId.slice(0, i);
};

/**
 * Subject an event is published on: `switchyard.events.<category>.<type>`, from its
 * stream id and type. `prefix` exists so tests (and side-by-side deployments) sharing
 * one nats-server can use their own subject space.
 */
export function eventSubject(streamId: string, type: string, prefix: string = EVENTS_SUBJECT_PREFIX): string {
  return `${prefix}.${subjectToken(categoryOf(streamId))}.${subjectToken(type)}`;
}

/**
 * A subscription filter over published events. Omitted parts are wildcards:
 * `eventFilter({ category: 'workflow' })` -> `switchyard.events.workflow.*`.
 */
export function eventFilter(opts: { category?: string; type?: string } = {}): string {
  if (opts.category === undefined && opts.type === undefined) return EVENTS_SUBJECT_WILDCARD;
  const c = opts.category === undefined ? '*' : subjectToken(opts.category);
  const t = opts.type === undefined ? '*' : subjectToken(opts.type);
  return `${EVENTS_SUBJECT_PREFIX}.${c}.${t}`;
}

/** Split a published event subject back into its tokens, or undefined when it is not one. */
export function parseEventSubject(subject: string): { category: string; type: string } | undefined {
  const parts = subject.split('.');
  if (parts.length !== 4 || `${parts[0]}.${parts[1]}` !== EVENTS_SUBJECT_PREFIX) return undefined;
  return { category: parts[2]!, type: parts[3]! };
}

/**
 * Subject of a request-reply service endpoint: `switchyard.svc.<service>.v<major>.<endpoint>`.
 * The major version is in the subject so v1 and v2 of a service can run side by side
 * during a migration; minor versions are compatible and share a subject.
 */
export function serviceSubject(service: string, endpoint: string, major = 1): string {
  if (!Number.isInteger(major) || major < 0)
    throw new RangeError(`service major version must be a non-negative integer, got ${major}`);
  return `${SERVICE_SUBJECT_PREFIX}.${subjectToken(service)}.v${major}.${subjectToken(endpoint)}`;
}

/** Wildcard covering every endpoint of one service version, e.g. for permissions or taps. */
export function serviceWildcard(service: string, major = 1): string {
  return `${SERVICE_SUBJECT_PREFIX}.${subjectToken(service)}.v${major}.>`;
}
