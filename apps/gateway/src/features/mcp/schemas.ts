import { z } from 'zod';
import { idOf } from '../../http/ids.js';
import { textInt } from '../../http/query-int.js';

/** Request and response schemas of the MCP endpoints (seed paths under /api/v1/integration/mcp). */
const jsonObject = z.record(z.string(), z.unknown());

export const serverNameParams = z.object({ server_name: idOf('server') });
export const operationParams = z.object({
  operation: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'),
});
export const metricParams = z.object({ metric: idOf('metric') });

export const callBody = z.object({
  server: idOf('server'),
  tool: idOf('tool'),
  arguments: jsonObject.default({}),
  timeout_ms: z.number().int().positive().max(300_000).optional(),
});

export const operationBody = jsonObject.default({});

export const databaseQueryBody = z.object({
  query: z.string().min(1).max(100_000),
  /** Named (`:name` in the query) as in the seed, or positional (`$1..$n`). */
  params: z.union([z.array(z.unknown()), jsonObject]).default([]),
  max_rows: z.number().int().positive().max(100_000).optional(),
});

export const fetchBody = z.object({
  url: z.string().url(),
  method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD']).default('GET'),
  headers: z.record(z.string(), z.string()).optional(),
  body: z.union([z.string(), jsonObject]).optional(),
  timeout_ms: z.number().int().positive().max(120_000).optional(),
  max_bytes: z.number().int().positive().optional(),
  /** `text`: extract readable text, title and links from HTML (scraping). */
  extract: z.enum(['none', 'text']).default('none'),
});

export const automationTriggerBody = z.union(
  [
    z.object({ template_id: idOf('definition'), input: jsonObject.default({}) }).strict(),
    z
      .object({
        webhook: idOf('name'),
        event: idOf('name'),
        payload: jsonObject.default({}),
        idempotency_key: idOf('idempotencyKey').optional(),
      })
      .strict(),
  ],
  {
    // A union's own message ("Invalid input") names neither shape: say which shape the body looks
    // like it meant and what is wrong with it, or name both.
    error: (issue) => {
      if (issue.code !== 'invalid_union') return undefined;
      const body = issue.input;
      const meant =
        body !== null && typeof body === 'object' ? ('template_id' in body ? 0 : 'webhook' in body ? 1 : -1) : -1;
      const problems = meant < 0 ? undefined : issue.errors[meant];
      if (!problems?.length)
        return 'give either {template_id, input} (start a workflow) or {webhook, event, payload} (send a signed webhook)';
      return problems.map((p) => (p.path.length ? `${p.path.join('.')}: ` : '') + p.message).join('; ');
    },
  },
);

// The analytics server's own grammar (no zero, at most six digits), so a value it refuses is a 400 here.
export const analyticsQuery = z.object({
  window: z
    .string()
    .regex(/^[1-9][0-9]{0,5}[smhdw]$/, 'like 15m, 1h, 7d')
    .default('1h'),
  bucket: z
    .string()
    .regex(/^[1-9][0-9]{0,5}[smhdw]$/, 'like 5m, 1h')
    .optional(),
  aggregate: z.enum(['avg', 'sum', 'min', 'max', 'count', 'p95']).default('avg'),
});

export const toolResultResponse = z.object({
  server: z.string(),
  tool: z.string(),
  duration_ms: z.number(),
  result: z.unknown().describe('structuredContent when the server gives it, else the content blocks'),
  content: z.array(z.looseObject({ type: z.string() })),
});

export const serverHealthResponse = z.looseObject({
  server: z.string(),
  role: z.string(),
  state: z.string(),
  breaker: z.string(),
  tools: z.array(z.string()),
});
export const healthListResponse = z.object({
  status: z.enum(['healthy', 'degraded', 'unhealthy']),
  servers: z.array(serverHealthResponse),
});

/** The development mailbox listing: newest first, keyset-paged (`cursor` = the previous page's `next_cursor`). */
export const mailboxQuery = z
  .object({
    to: z
      .string()
      .min(3)
      .max(320)
      .regex(/^[^\s@]+@[^\s@]+$/, 'an e-mail address')
      .optional()
      .describe('Only messages with this recipient (to or cc)'),
    limit: textInt({ min: 1, max: 200 }).default(50),
    cursor: z
      .string()
      .regex(/^[0-9]{1,18}$/, 'a next_cursor of an earlier page')
      .optional()
      .describe('`next_cursor` of the previous page'),
  })
  .strict();

export const triggerParams = z.object({ trigger_id: z.uuid() }).strict();

export const triggerResponse = z.object({
  id: z.string(),
  template_id: z.string(),
  input: z.record(z.string(), z.unknown()),
  source: z.enum(['tool', 'schedule']),
  schedule_id: z.string().nullable(),
  fire_at: z.string().nullable(),
  correlation_id: z.string(),
  on_behalf_of: z.string().nullable(),
  status: z.enum(['pending', 'started', 'failed']).describe('`pending` until the engine picks it up'),
  execution_id: z.string().describe('the execution it starts: GET /api/v1/workflows/executions/{execution_id}'),
  error: z.string().nullable().describe('why it could not start (status `failed`); never retried'),
  started_at: z.string().nullable(),
  created_at: z.string(),
});

export const mailboxResponse = z.object({
  messages: z.array(
    z.object({
      id: z.string(),
      message_id: z.string().nullable(),
      from: z.string(),
      recipients: z.array(z.string()).describe('envelope recipients (to and cc)'),
      to: z.array(z.string()),
      cc: z.array(z.string()),
      subject: z.string(),
      text: z.string().nullable(),
      html: z.string().nullable(),
      size_bytes: z.number().int(),
      received_at: z.string(),
    }),
  ),
  next_cursor: z.string().nullable(),
});
