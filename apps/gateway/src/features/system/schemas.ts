import { z } from 'zod';
import {
  STORED_ALERT_RULE_ID_PATTERN,
  alertRuleSchema,
  alertStateSchema,
  severitySchema,
  silenceMatchersSchema,
  trimmedText,
} from '@switchyard/contracts';

/** HTTP request schemas of /api/v1/system/* (the replies are the monitor's wire contract). */

/** `labels=service=mcp:fetch,kind=mcp` -> `{ service: 'mcp:fetch', kind: 'mcp' }`. */
const labelList = z
  .string()
  .max(2_000)
  // The rule the transform applies, as a pattern the document shows: comma-separated `name=value`, a name not empty.
  .regex(/^\s*(?:[^=,\s][^,=]*=[^,]*)?(?:,\s*(?:[^=,\s][^,=]*=[^,]*)?)*$/, 'name=value,name=value')
  .transform((s, ctx) => {
    const out: Record<string, string> = {};
    for (const pair of s
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const at = pair.indexOf('=');
      if (at <= 0) {
        ctx.addIssue({ code: 'custom', message: `label "${pair}" must be name=value` });
        return z.NEVER;
      }
      out[pair.slice(0, at)] = pair.slice(at + 1);
    }
    return out;
  });

// Strict query objects: a parameter a route does not know is refused (400), as on every route.
export const trendsQuery = z.strictObject({
  metric: z
    .string()
    .min(1)
    .max(200)
    .default('system_cpu_usage_percent')
    .describe('Metric name, e.g. system_cpu_usage_percent, probe_response_ms'),
  window: z.enum(['1h', '24h', '7d']).default('1h'),
  labels: labelList.optional().describe('Narrow to series with these labels: `name=value,name=value`'),
});

export const availabilityQuery = z.strictObject({
  service: z.string().min(1).max(200).optional().describe('One service (e.g. `mcp:analytics`); all when absent'),
});

export const alertsQuery = z.strictObject({ state: alertStateSchema.optional(), severity: severitySchema.optional() });

export const silenceIdParams = z.object({
  silence_id: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ - only'),
});
export const alertIdParams = z.object({
  alert_id: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ - only'),
});
/** The reason recorded when the caller gives none (the actor is recorded either way). */
export const DEFAULT_RESOLVE_REASON = 'resolved by hand';
// Optional, body too: the specification's `POST .../resolve` carries none.
export const resolveBody = z
  .object({ reason: trimmedText(1, 2_000).default(DEFAULT_RESOLVE_REASON) })
  .default({ reason: DEFAULT_RESOLVE_REASON });

/** The longest a silence lasts. */
const SILENCE_MAX_MS = 365 * 86_400_000;

export const silenceBody = z
  .object({
    matchers: silenceMatchersSchema,
    comment: z.string().max(2_000).default(''),
    starts_at: z.iso.datetime({ offset: true }).optional(),
    ends_at: z.iso.datetime({ offset: true }).optional(),
    duration_ms: z.number().int().positive().max(SILENCE_MAX_MS).optional(),
  })
  .refine((b) => (b.ends_at === undefined) !== (b.duration_ms === undefined), {
    message: 'give exactly one of ends_at or duration_ms',
    path: ['ends_at'],
  })
  // The same bounds as duration_ms: a silence that ended before it starts mutes nothing, and one
  // ending in the year 9999 outlived the year duration_ms allows.
  .refine(
    (b) => {
      if (b.ends_at === undefined) return true;
      const start = b.starts_at === undefined ? Date.now() : Date.parse(b.starts_at);
      const length = Date.parse(b.ends_at) - start;
      return length > 0 && length <= SILENCE_MAX_MS;
    },
    { message: 'ends_at must be after starts_at (or now), and at most a year after it', path: ['ends_at'] },
  )
  .refine(
    (b) => {
      const end =
        b.ends_at !== undefined
          ? Date.parse(b.ends_at)
          : (b.starts_at === undefined ? Date.now() : Date.parse(b.starts_at)) + (b.duration_ms ?? 0);
      return end > Date.now();
    },
    { message: 'the silence would already have ended: it mutes nothing', path: ['starts_at'] },
  );

/** One rule, a list, or `{ rules: [...] }`: each is upserted by id. */
export const putRulesBody = z.union([
  alertRuleSchema,
  z.array(alertRuleSchema).min(1).max(200),
  z.object({ rules: z.array(alertRuleSchema).min(1).max(200) }),
]);
/**
 * A rule id as PUT takes it, or as PUT took it before the id grammar narrowed (a leading `_ . -`):
 * such a rule is still stored and must stay deletable. An id no rule has is 404.
 */
export const deleteRuleQuery = z.strictObject({
  id: z
    .string()
    .regex(STORED_ALERT_RULE_ID_PATTERN, 'a rule id: letters, digits, _ . - (max 128)')
    .describe(
      'The rule id. New ids start with a letter or digit; an id stored before that rule (starting with _ . or -) is taken too, so its rule can be deleted',
    ),
});
