import { z } from 'zod';
import { idOf } from '../../http/ids.js';
import { minPositionQuery } from '../../http/read-routing.js';
import { MAX_VERSION } from '@switchyard/workflow-executions';
import { textInt } from '../../http/query-int.js';

const id = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits, _ . : -');
const boolish = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0'])])
  .transform((v) => v === true || v === 'true' || v === '1');

export const templateParams = z.object({ template_id: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'a definition id') });
export const executionParams = z.object({ execution_id: id });

/** `?wait=true` waits (bounded by `wait_ms`, at most 60 s) and answers with the result. */
export const waitQuery = z.strictObject({
  wait: boolish.optional(),
  wait_ms: textInt({ min: 1, max: 60_000 }).default(30_000),
  version: textInt({ min: 1, max: 2_147_483_647 }).optional(),
});
/** The body of a start is the workflow input itself. */
export const startBody = z.record(z.string(), z.unknown());

export const executionStatus = z.enum(['running', 'canceling', 'completed', 'failed', 'canceled']);
// Any RFC 3339 offset (up to ±23:59) is read here and handed on in UTC: PostgreSQL refuses offsets past ±15:59.
// A date alone is midnight UTC of that day (a filter such as started_after=2026-12-06 means that).
// In UTC it must be a year PostgreSQL takes (0001-9999): `0000-01-01T00:00:00Z`, or
// `9999-12-31T23:59:59-01:00` (year 10000 in UTC), would reach the query and fail it with a 500.
const FIRST_INSTANT = Date.parse('0001-01-01T00:00:00.000Z');
const LAST_INSTANT = Date.parse('9999-12-31T23:59:59.999Z');
const instant = z
  .union([z.iso.datetime({ offset: true }), z.iso.date()], {
    error: 'an ISO-8601 date-time with an offset (2026-12-06T09:30:00Z) or a date (2026-12-06, midnight UTC)',
  })
  .transform((s, ctx) => {
    const t = new Date(s.length === 10 ? `${s}T00:00:00Z` : s).getTime();
    if (!(t >= FIRST_INSTANT && t <= LAST_INSTANT)) {
      ctx.addIssue({ code: 'custom', message: 'a time between 0001-01-01 and 9999-12-31 in UTC' });
      return z.NEVER;
    }
    return new Date(t).toISOString();
  });
export const listQuery = z
  .strictObject({
    status: executionStatus.optional(),
    template: idOf('definition').optional(),
    /** The bulk filter's name for `template`: a list narrowed here names its set the same way there. */
    definition_id: idOf('definition').optional(),
    started_after: instant.optional(),
    started_before: instant.optional(),
    limit: textInt({ min: 1, max: 200 }).default(50),
    cursor: z.string().min(1).max(400).optional(),
    /** Read your writes: the `position` a command answered with (or the X-Switchyard-Min-Position header). */
    ...minPositionQuery,
  })
  .refine((q) => q.template === undefined || q.definition_id === undefined || q.template === q.definition_id, {
    path: ['definition_id'],
    message: 'template and definition_id name different definitions; give one',
  });
export const cancelBody = z
  .strictObject({ reason: z.string().min(1).max(500).default('canceled by request') })
  .default({ reason: 'canceled by request' });
/** Most definitions one page of `GET /definitions` holds (each may be up to WORKFLOW_MAX_DEFINITION_BYTES). */
export const DEFINITIONS_PAGE_MAX = 200;
export const definitionsQuery = z.strictObject({
  id: idOf('definition').optional(),
  all_versions: boolish.optional(),
  limit: textInt({ min: 1, max: DEFINITIONS_PAGE_MAX }).default(100),
  cursor: z
    .string()
    .regex(/^[a-z][a-z0-9_-]{0,62}(:[1-9][0-9]{0,9})?$/, 'the next_cursor of the page before')
    // Versions are PostgreSQL integers: a larger one in a cursor is no page's end.
    .refine((c) => !c.includes(':') || Number(c.split(':')[1]) <= MAX_VERSION, {
      message: `the next_cursor of the page before (a version is at most ${MAX_VERSION})`,
    })
    .optional(),
});
/** A definition is validated by the domain (`validateDefinition`) so every problem is reported, not just the first. */
export const definitionBody = z.record(z.string(), z.unknown());
export const adHocBody = z.strictObject({
  definition: z.record(z.string(), z.unknown()),
  input: z.record(z.string(), z.unknown()).default({}),
});

export const startedResponse = z.object({
  execution_id: z.string(),
  status: z.string(),
  definition_id: z.string(),
  definition_version: z.number().int(),
  links: z.object({ self: z.string(), events: z.string(), cancel: z.string() }),
  /** The event-store position of the start's last event: give it to a query (X-Switchyard-Min-Position) to read your write from a replica. Absent on a repeated start. */
  position: z.number().int().optional(),
  /** With `?wait=true`: when it started, and when it ended if it did. */
  started_at: z.string().optional(),
  ended_at: z.string().optional(),
  output: z.unknown().optional(),
  error: z.unknown().optional(),
});
export const executionListResponse = z.object({
  items: z.array(z.looseObject({ execution_id: z.string(), status: z.string() })),
  next_cursor: z.string().nullable(),
  /** The next page's URL (the same filters and the cursor), null on the last page. */
  next: z.string().nullable(),
});
export const eventsResponse = z.object({
  execution_id: z.string(),
  last_revision: z.number().int().describe("The execution stream's last revision"),
  events: z.array(z.looseObject({ type: z.string(), revision: z.number() })),
  next: z.string().nullable().describe('The next page, null after the last event'),
});
export const cancelResponse = z.object({ execution_id: z.string(), status: executionStatus });
export const registeredResponse = z.object({
  definition: z.looseObject({ id: z.string(), version: z.number() }),
  /** False when the same id and version already existed with the same content. */
  created: z.boolean(),
});
export const definitionParams = z.object({
  definition_id: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'a definition id'),
});
export const deleteDefinitionQuery = z.strictObject({ reason: z.string().min(1).max(500).optional() });
export const definitionDeletedResponse = z.object({
  definition_id: z.string(),
  deleted: z.literal(true),
  /** Every version that was deleted. */
  versions: z.array(z.number().int()),
});
export const definitionsResponse = z.object({
  definitions: z.array(z.looseObject({ id: z.string(), version: z.number() })),
  next_cursor: z.string().nullable().describe('The cursor of the next page, null after the last'),
});
export const templatesResponse = z.object({
  templates: z.array(
    z.object({
      id: z.string(),
      version: z.number(),
      name: z.string(),
      description: z.string(),
      input: z.unknown(),
      steps: z.array(z.object({ id: z.string(), uses: z.string(), needs: z.array(z.string()) })),
    }),
  ),
});

// ---- operations on executions: time travel, fork, retry, replay check ----

const revision = textInt({ min: 0, max: 2_147_483_647 });
/** `?at=<revision>`: the state after that event of the execution's stream. */
export const detailQuery = z.strictObject({ at: revision.optional(), ...minPositionQuery });
export const historyQuery = z.strictObject({
  /** Revision to start after (exclusive); absent = from the first event. */
  after: revision.optional(),
  limit: textInt({ min: 1, max: 500 }).default(100),
});
export const historyEvent = z.object({
  position: z.number().int(),
  revision: z.number().int(),
  type: z.string(),
  time: z.string().describe('When the event happened (its command time)'),
  recorded_at: z.string(),
  actor: z.string().nullable(),
  correlation_id: z.string().nullable(),
  data: z.unknown(),
});
/** Most events one page of `GET .../events` holds (the default: one request reads most executions whole). */
export const EVENTS_PAGE_MAX = 1_000;
export const eventsQuery = z.strictObject({
  /** Revision to start after (exclusive); absent = from the first event. */
  after: revision.optional(),
  limit: textInt({ min: 1, max: EVENTS_PAGE_MAX }).default(EVENTS_PAGE_MAX),
});
export const historyResponse = z.object({
  execution_id: z.string(),
  last_revision: z.number().int(),
  events: z.array(historyEvent),
  next: z.string().nullable().describe('The next page, null after the last event'),
});
export const forkBody = z.strictObject({
  from_step: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[A-Za-z][A-Za-z0-9_-]*$/, 'a step id'),
  definition_version: z.number().int().min(1).max(2_147_483_647).optional(),
  input: z.record(z.string(), z.unknown()).optional(),
});
export const forkResponse = z.object({
  execution_id: z.string(),
  forked_from: z.string(),
  from_step: z.string(),
  definition_id: z.string(),
  definition_version: z.number().int(),
  copied_steps: z.array(z.string()),
  rerun_steps: z.array(z.string()),
  status: z.string(),
  links: z.object({ self: z.string(), events: z.string(), cancel: z.string() }),
});
export const retryBody = z.strictObject({ reason: z.string().min(1).max(500).optional() }).default({});
export const retryResponse = z.object({
  execution_id: z.string(),
  status: executionStatus,
  retried_steps: z.array(z.string()),
});
export const checkParams = z.object({
  definition_id: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'a definition id'),
  version: textInt({ min: 1, max: 2_147_483_647 }),
});
export const checkBody = z.strictObject({ limit: z.number().int().min(1).max(200).default(20) }).default({ limit: 20 });
export const checkResponse = z.object({
  definition_id: z.string(),
  version: z.number().int(),
  checked: z.number().int(),
  differing: z.number().int(),
  executions: z.array(
    z.object({
      execution_id: z.string(),
      recorded_version: z.number().int(),
      recorded_status: z.string(),
      replayed_status: z.string(),
      same: z.boolean(),
      input_problem: z.string().optional(),
      differences: z.array(
        z.object({ step_id: z.string(), kind: z.string(), recorded: z.unknown(), replayed: z.unknown() }),
      ),
    }),
  ),
});

// ---- signals ----------------------------------------------------------------------------

/** Largest signal payload, as JSON (it becomes a step output and goes into an event). */
export const SIGNAL_PAYLOAD_MAX_BYTES = 65_536;
export const signalParams = z.object({
  execution_id: id,
  name: z
    .string()
    .regex(
      /^[a-z][a-z0-9_.-]{0,62}$/,
      'signal name: lowercase letter, then lowercase letters, digits, _ . or - (max 63)',
    ),
});
/** The signal's payload: a JSON object (default `{}`), at most SIGNAL_PAYLOAD_MAX_BYTES as JSON. */
export const signalBody = z.record(z.string(), z.unknown()).default({});
export const signalResponse = z.object({
  execution_id: z.string(),
  signal_id: z.string(),
  name: z.string(),
  disposition: z
    .enum(['consumed', 'buffered', 'ignored'])
    .describe(
      'consumed: the waiting step took it; buffered: kept for a wait step not reached yet; ignored: recorded, changes nothing (see reason)',
    ),
  step_id: z.string().nullable(),
  reason: z.string().nullable(),
  status: z.string(),
  recorded: z.boolean().describe('false when this signal (same Idempotency-Key) was recorded before'),
});

// ---- bulk operations ----------------------------------------------------------------------

export const bulkFilter = z
  .strictObject({
    template_id: idOf('definition').optional(),
    definition_id: idOf('definition').optional(),
    /** The executions list's name for `definition_id`: a set narrowed there is named the same way here. */
    template: idOf('definition').optional(),
    status: executionStatus.optional(),
    started_after: instant.optional(),
    started_before: instant.optional(),
    error_contains: z.string().min(1).max(200).optional(),
  })
  .refine((f) => Object.values(f).some((v) => v !== undefined), {
    message: 'give at least one filter field (a bulk action over every execution is refused)',
  })
  .refine((f) => f.template === undefined || f.definition_id === undefined || f.template === f.definition_id, {
    path: ['template'],
    message: 'template and definition_id name different definitions; give one',
  });
export const bulkAction = z.union([
  z.literal('cancel'),
  z.literal('retry'),
  z.strictObject({
    fork: z.strictObject({
      definition_version: z.number().int().min(1).max(2_147_483_647),
      from_step: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, 'a step id'),
    }),
  }),
]);
export const bulkBody = z.strictObject({ filter: bulkFilter, action: bulkAction });
export const batchParams = z.object({ batch_id: id });
export const batchCancelBody = z
  .strictObject({ reason: z.string().min(1).max(500).default('canceled by request') })
  .default({ reason: 'canceled by request' });
export const batchStartedResponse = z.object({
  batch_id: z.string(),
  state: z.enum(['running', 'completed', 'cancelled']),
  matched: z.number().int(),
  links: z.object({ self: z.string(), cancel: z.string() }),
});
export const batchResponse = z.object({
  batch_id: z.string(),
  state: z.enum(['running', 'completed', 'cancelled']),
  action: z.unknown(),
  filter: z.record(z.string(), z.unknown()),
  matched: z.number().int(),
  done: z.number().int(),
  failed: z.number().int(),
  pending: z.number().int(),
  started_at: z.string(),
  ended_at: z.string().nullable(),
  reason: z.string().nullable(),
  failures: z.array(z.object({ execution_id: z.string(), code: z.string(), message: z.string() })),
});
