/**
 * Wire contract of the monitor's NATS service and of what it publishes. Shared by the
 * monitor (server side) and the gateway (client side), so both parse the same shapes.
 *
 *   switchyard.svc.monitor.v1.<endpoint>      request-reply (queue group `monitor`)
 *   switchyard.alerts.<event type>            alerting events, JSON envelope (fire and forget)
 */
import { z } from 'zod';
import { SUBJECT_ROOT, serviceSubject, subjectToken } from './subjects.js';
import { matcherRegexProblem, matcherRegexText } from './matcher-regex.js';
import { Re2Budget, re2ProgramSizeEstimate } from '@switchyard/domain';
import { trimmedText } from './text.js';

/** Labels of a series or an alert: flat string map (Prometheus style). */
export type Labels = Readonly<Record<string, string>>;

export const comparatorSchema = z.enum(['>', '>=', '<', '<=', '==', '!=']);
export type Comparator = z.infer<typeof comparatorSchema>;

export const severitySchema = z.enum(['info', 'warning', 'critical']);
export type Severity = z.infer<typeof severitySchema>;

/**
 * The longest `for` a rule may have: 30 days. Longer than a timer can wait in one go (2^31-1 ms,
 * about 24.8 days), so the Monitor waits in chunks; a condition that must hold for longer is a
 * trend (GET /api/v1/system/trends), not an alert.
 */
export const MAX_ALERT_RULE_FOR_MS = 2_592_000_000;

/**
 * An alert rule's id: a letter or digit, then letters, digits, `_ . -` (at most 128). The same
 * grammar for PUT, DELETE and the API document.
 */
export const ALERT_RULE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
export const ALERT_RULE_ID_RULE = 'rule id: a letter or digit, then letters, digits, _ . - (max 128)';
/**
 * The ids PUT accepted before ALERT_RULE_ID_PATTERN (a leading `_ . -` too). A rule stored with
 * one still loads, lists and can be deleted; a new rule cannot take one.
 */
export const STORED_ALERT_RULE_ID_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

const ruleFields = {
  name: z.string().min(1),
  metric: z.string().min(1),
  match: z.record(z.string(), z.string()).default({}),
  comparator: comparatorSchema,
  threshold: z.number().finite(),
  severity: severitySchema,
  labels: z.record(z.string(), z.string()).default({}),
};

/**
 * An alert rule. `metric` names the series it watches, `match` narrows it to series whose
 * labels contain these pairs (e.g. `{ cpu: 'total' }`), `labels` are extra labels stamped on
 * the alert (like Prometheus rule labels). The condition must hold for `for_ms` (at most
 * MAX_ALERT_RULE_FOR_MS) before firing. What PUT and the rule files take.
 */
export const alertRuleSchema = z.object({
  id: z.string().regex(ALERT_RULE_ID_PATTERN, ALERT_RULE_ID_RULE),
  ...ruleFields,
  for_ms: z
    .number()
    .int()
    .min(0)
    .max(MAX_ALERT_RULE_FOR_MS, `for_ms: at most ${MAX_ALERT_RULE_FOR_MS} ms (30 days, MAX_ALERT_RULE_FOR_MS)`),
});
/**
 * A rule as the log may hold it: written before the id grammar and the `for_ms` bound, so
 * checked only as strictly as then. Used to load, run and list rules, never to accept new ones.
 */
export const storedAlertRuleSchema = z.object({
  id: z.string().regex(STORED_ALERT_RULE_ID_PATTERN, 'rule id: letters, digits, _ . - (max 128)'),
  ...ruleFields,
  for_ms: z.number().int().min(0),
});
export type AlertRule = z.infer<typeof alertRuleSchema>;

/** The windows of `trends` and the resolution of the series each reads. */
export const trendWindows = {
  '1h': { ms: 3_600_000, resolution: '1m' },
  '24h': { ms: 86_400_000, resolution: '1h' },
  '7d': { ms: 604_800_000, resolution: '1h' },
  '30d': { ms: 2_592_000_000, resolution: '1h' },
} as const;

export const MONITOR_SERVICE_NAME = 'monitor';
export const MONITOR_SERVICE_VERSION = '1.0.0';

export const monitorEndpoints = [
  'health_report',
  'trends',
  'availability',
  'alerts',
  'resolve_alert',
  'silences',
  'add_silence',
  'remove_silence',
  'rules',
  'put_rules',
  'delete_rule',
  'metrics',
] as const;
export type MonitorEndpoint = (typeof monitorEndpoints)[number];

/** `switchyard.svc.monitor.v1.<endpoint>`; `service` only to run an isolated monitor (tests on a shared nats-server). */
export const monitorSubject = (endpoint: MonitorEndpoint, service = MONITOR_SERVICE_NAME): string =>
  serviceSubject(service, endpoint);

export const ALERTS_SUBJECT_PREFIX = `${SUBJECT_ROOT}.alerts`;
/** Subject an alerting event is published on: `switchyard.alerts.<type>` (e.g. `AlertFiring`). */
export const alertSubject = (type: string, prefix = ALERTS_SUBJECT_PREFIX): string => `${prefix}.${subjectToken(type)}`;
/** Every alerting event. */
export const ALERTS_WILDCARD = `${ALERTS_SUBJECT_PREFIX}.>`;

// ---- requests ---------------------------------------------------------------------------

const empty = z.undefined().or(z.object({}).loose());
const labelsSchema = z.record(z.string(), z.string());

export const healthReportRequest = empty;
export const trendsRequest = z.object({
  metric: z.string().min(1).max(200),
  window: z
    .enum(Object.keys(trendWindows) as [keyof typeof trendWindows, ...(keyof typeof trendWindows)[]])
    .default('1h'),
  labels: labelsSchema.optional(),
  limit: z.number().finite().optional(),
});
export const availabilityRequest = z.object({ service: z.string().min(1).max(200).optional() }).default({});
export const alertStateSchema = z.enum(['pending', 'firing', 'resolved']);
export const alertsRequest = z
  .object({ state: alertStateSchema.optional(), severity: severitySchema.optional() })
  .default({});
export const resolveAlertRequest = z.object({
  id: z.string().min(1).max(64),
  actor: z.string().min(1).max(200),
  reason: trimmedText(1, 2_000),
});
/** A matcher as stored and listed (a bad regex stored before validation existed still lists). */
export const storedMatcherSchema = z.object({
  name: z.string().min(1).max(200),
  value: z.string().max(1_000),
  isRegex: z.boolean().optional(),
  isEqual: z.boolean().optional(),
});
/** Estimated RE2 instructions the regexes of one silence may add up to (compiling them, about 0.2 s). */
export const MAX_SILENCE_REGEX_PROGRAM_SIZE = 50_000;
/**
 * Estimated RE2 instructions the regexes of all the silences in force may add up to: every alert
 * evaluation tests them, so they must stay compiled (half the matcher cache's budget). A hundred
 * silences of nearly 50,000 each (each allowed alone) recompiled on every alert transition and held
 * the process 4-5 s each time.
 */
export const MAX_SILENCES_REGEX_PROGRAM_SIZE = 200_000;

/** The estimated RE2 instructions of a silence's regex matchers together (as compiled: anchored). */
export function silenceRegexProgramSize(
  matchers: readonly { readonly value: string; readonly isRegex?: boolean }[],
): number {
  let total = 0;
  for (const m of matchers) if (m.isRegex) total += re2ProgramSizeEstimate(matcherRegexText(m.value));
  return total;
}
/**
 * A silence's matchers: each regex must be valid RE2 and not too large once compiled, and all of
 * them together under MAX_SILENCE_REGEX_PROGRAM_SIZE, checked before any is compiled (400 naming
 * `matchers[i].value` otherwise).
 */
export const silenceMatchersSchema = z
  .array(storedMatcherSchema)
  .min(1)
  .max(50)
  .superRefine((matchers, ctx) => {
    const budget = new Re2Budget(
      MAX_SILENCE_REGEX_PROGRAM_SIZE,
      `the silence's regexes are too large together once compiled (at most ${MAX_SILENCE_REGEX_PROGRAM_SIZE} instructions in all)`,
    );
    matchers.forEach((m, i) => {
      if (!m.isRegex) return;
      const problem = budget.charge(matcherRegexText(m.value)) ?? matcherRegexProblem(m.value);
      if (problem) ctx.addIssue({ code: 'custom', path: [i, 'value'], message: problem });
    });
  });
/**
 * Add a silence: from `startsAt` (default: when the monitor takes it) until `endsAt`, or for
 * `durationMs` from that start. A duration lets the monitor start it by its own clock, so a caller
 * whose clock is off (a gateway an hour ahead) does not make it start late.
 */
export const addSilenceRequest = z
  .object({
    matchers: silenceMatchersSchema,
    createdBy: z.string().min(1).max(200),
    comment: z.string().max(2_000).default(''),
    startsAt: z.number().int().optional(),
    endsAt: z.number().int().optional(),
    durationMs: z.number().int().positive().optional(),
  })
  .refine((s) => (s.endsAt === undefined) !== (s.durationMs === undefined), {
    message: 'give exactly one of endsAt or durationMs',
    path: ['endsAt'],
  });
/** End a silence now (an ExpireSilence command); alerts it held are notified again unless another silence matches them. */
export const removeSilenceRequest = z.object({ id: z.string().min(1).max(64), actor: z.string().min(1).max(200) });
export const silencesRequest = empty;
export const rulesRequest = empty;
/** Upsert rules by id (all or nothing: every rule is validated first). */
export const putRulesRequest = z.object({
  rules: z.array(alertRuleSchema).min(1).max(200),
  actor: z.string().min(1).max(200),
});
export const deleteRuleRequest = z.object({ id: z.string().min(1).max(200), actor: z.string().min(1).max(200) });
export const metricsRequest = empty;

// ---- replies (dates travel as ISO strings) ------------------------------------------------

const isoOrNull = z.string().nullable();

/** `unconfigured`: listed but not runnable as configured (a credential not set): not probed, not an outage. */
export const serviceStatusSchema = z.enum(['unknown', 'up', 'degraded', 'down', 'unconfigured']);
export const overallStatusSchema = z.enum(['healthy', 'degraded', 'unhealthy']);

export const serviceJsonSchema = z.object({
  service: z.string(),
  kind: z.string(),
  status: serviceStatusSchema,
  reason: z.string().nullable(),
  since: isoOrNull,
  failingSince: isoOrNull,
  lastProbeAt: isoOrNull,
  lastOk: z.boolean().nullable(),
  lastResponseMs: z.number().nullable(),
  lastError: z.string().nullable(),
});
export type ServiceJson = z.infer<typeof serviceJsonSchema>;

export const healthReportReply = z.object({
  status: overallStatusSchema,
  /** Why the status is not `healthy` (empty when it is). */
  reasons: z.array(z.string()),
  at: z.string(),
  services: z.array(serviceJsonSchema),
  system: z.object({
    cpuPercent: z.number().nullable(),
    memoryPercent: z.number().nullable(),
    disks: z.array(z.object({ mount: z.string(), usedPercent: z.number() })),
  }),
  alerts: z.object({ firing: z.number().int(), pending: z.number().int() }),
});
export type HealthReportReply = z.infer<typeof healthReportReply>;

const bucketSchema = z.object({
  start: z.number(),
  count: z.number(),
  sum: z.number(),
  min: z.number(),
  max: z.number(),
  p95: z.number().nullable(),
  avg: z.number(),
});
export const trendsReply = z.object({
  metric: z.string(),
  window: z.string(),
  series: z.array(
    z
      .object({
        labels: labelsSchema,
        buckets: z.array(bucketSchema),
        slopePerHour: z.number().nullable(),
        direction: z.enum(['rising', 'falling', 'flat', 'unknown']),
        /** Width of the buckets: the window's resolution, wider when the answer would hold more than 4,000 buckets. */
        bucketMs: z.number().int().optional(),
        projection: z
          .object({ limit: z.number(), etaMs: z.number().nullable(), at: z.number().nullable() })
          .loose()
          .nullable(),
      })
      .loose(),
  ),
});
export type TrendsReply = z.infer<typeof trendsReply>;

const windowAvailabilitySchema = z.object({
  window: z.string(),
  windowMs: z.number(),
  observedMs: z.number(),
  downMs: z.number(),
  /** Time nothing knew the service's status (the monitor was not running, for a service outside its process): not in observedMs. */
  unknownMs: z.number(),
  /** Time the monitor was not running, whether it counted as down (its own process's services) or unknown. */
  unmonitoredMs: z.number(),
  uptimePercent: z.number().nullable(),
  /** The latest 20 incidents of the window, oldest first; `incidentCount` counts them all. */
  incidents: z.array(z.object({ start: z.number(), end: z.number().nullable(), durationMs: z.number() })),
  incidentCount: z.number().int(),
  mttrMs: z.number().nullable(),
  slaTargetPercent: z.number(),
  slaMet: z.boolean().nullable(),
});
export const availabilityReply = z.object({
  services: z.array(z.object({ service: z.string(), windows: z.record(z.string(), windowAvailabilitySchema) })),
});
export type AvailabilityReply = z.infer<typeof availabilityReply>;

export const alertJsonSchema = z.object({
  id: z.string(),
  ruleId: z.string(),
  name: z.string(),
  severity: severitySchema,
  labels: labelsSchema,
  state: alertStateSchema,
  value: z.number().nullable(),
  threshold: z.number().nullable(),
  pendingSince: isoOrNull,
  firingSince: isoOrNull,
  resolvedAt: isoOrNull,
  resolvedHow: z.enum(['auto', 'manual']).nullable(),
  resolvedBy: z.string().nullable(),
  resolveReason: z.string().nullable(),
  suppressedBy: z.string().nullable(),
  updatedAt: z.string(),
});
export type AlertJson = z.infer<typeof alertJsonSchema>;
export const alertsReply = z.object({ alerts: z.array(alertJsonSchema) });
export const resolveAlertReply = z.object({ alert: alertJsonSchema });

export const silenceJsonSchema = z.object({
  id: z.string(),
  matchers: z.array(storedMatcherSchema),
  createdBy: z.string(),
  comment: z.string(),
  startsAt: z.number(),
  endsAt: z.number(),
});
export const silencesReply = z.object({ silences: z.array(silenceJsonSchema) });
export const addSilenceReply = z.object({ silence: silenceJsonSchema });
export const removeSilenceReply = z.object({ silence_id: z.string(), expired: z.literal(true) });

/** Where a rule in force comes from: built in, MONITOR_RULES_FILE, MONITOR_RULES, or the API (persisted). */
export const ruleSourceSchema = z.enum(['default', 'file', 'env', 'api']);
export const ruleJsonSchema = storedAlertRuleSchema.extend({ source: ruleSourceSchema });
export type RuleJson = z.infer<typeof ruleJsonSchema>;
export const rulesReply = z.object({ rules: z.array(ruleJsonSchema) });
export const deleteRuleReply = z.object({ deleted: z.string(), resolvedAlerts: z.number().int() });
export const metricsReply = z.object({ contentType: z.string(), text: z.string() });

// ---- published ---------------------------------------------------------------------------

/**
 * An alerting event on `switchyard.alerts.<type>`: the event store envelope when the append
 * succeeded; `revision`/`position` are null when the store could not take it (the alert still
 * goes out: people must hear about an outage even when the outage is the store).
 */
export const alertEnvelopeSchema = z.object({
  id: z.string(),
  streamId: z.string(),
  type: z.string(),
  data: z.record(z.string(), z.unknown()),
  metadata: z
    .object({ correlationId: z.string(), actor: z.string().optional(), timestamp: z.string() })
    .catchall(z.unknown()),
  revision: z.number().int().nullable(),
  position: z.number().int().nullable(),
  /** Whether this event should reach people (firing, resolution of a notified alert, unsilenced). */
  notify: z.boolean(),
});
export type AlertEnvelope = z.infer<typeof alertEnvelopeSchema>;

/** Body POSTed to each MONITOR_ALERT_WEBHOOKS URL (Alertmanager-like, one alert per call). */
export const alertWebhookSchema = z.object({
  version: z.literal('1'),
  status: z.enum(['firing', 'resolved']),
  event: z.string(),
  eventId: z.string(),
  at: z.string(),
  alert: z.object({
    fingerprint: z.string(),
    ruleId: z.string(),
    name: z.string(),
    severity: severitySchema,
    labels: labelsSchema,
    value: z.number().nullable(),
    threshold: z.number().nullable(),
    how: z.enum(['auto', 'manual']).nullable(),
    actor: z.string().nullable(),
    reason: z.string().nullable(),
  }),
});
export type AlertWebhook = z.infer<typeof alertWebhookSchema>;
