import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Logger } from '@switchyard/platform';
import { tool } from '../common/tools.js';
import { mapPgError } from '../database/server.js';
import { scheduleTargetSchema, type AutomationService } from './automation-service.js';
import { sharedJsonSchemaValidator } from '../common/validator.js';
import { emailMessageShape } from './mail.js';
import { mailboxQuerySchema } from './mailbox.js';
import { listQueuedShape, queueWebhookShape } from './queued.js';
import { DEFAULT_LISTING_LIMIT, MAX_LISTING_LIMIT } from './caps.js';

export interface AutomationServerDeps {
  readonly service: AutomationService;
  readonly logger: Logger;
}

const name = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _ . : - only');

/**
 * A webhook's URL and event list are bounded: every webhook is in `list_webhooks`' one answer
 * (200 of them at most), which must stay under the 1 MiB a tool result may travel in. An event
 * list of 10,000 names (889 KB) on one webhook made that answer 413 for every caller.
 */
const WEBHOOK_URL_MAX = 2_048;
const webhookUrl = z.string().max(WEBHOOK_URL_MAX).url();
const webhookEvents = z
  .array(z.string().min(1).max(64))
  .max(32)
  .describe('event names (at most 32, each at most 64 characters; empty = all events)');

/** Paging of the listings (see ListingQuery). */
const listingShape = {
  limit: z.number().int().min(1).max(MAX_LISTING_LIMIT).default(DEFAULT_LISTING_LIMIT),
  cursor: z.string().min(1).max(300).optional().describe('next_cursor of the page before'),
};

/** The automation MCP server: webhooks, e-mail, cron and one-shot schedules, workflow triggers. */
export function createAutomationServer(deps: AutomationServerDeps): McpServer {
  const { service, logger } = deps;
  const server = new McpServer(
    { name: 'switchyard-automation', version: '0.1.0' },
    { jsonSchemaValidator: sharedJsonSchemaValidator },
  );

  server.registerTool(
    'register_webhook',
    {
      description:
        'Register an outbound webhook. Deliveries are signed with the secret (X-Switchyard-Signature: sha256=HMAC(secret, "<timestamp>.<body>")). Empty events = all events.',
      inputSchema: {
        name,
        url: webhookUrl,
        secret: z.string().min(16).max(512).describe('shared secret for the HMAC signature (at least 16 characters)'),
        events: webhookEvents.default([]),
      },
    },
    tool(
      'register_webhook',
      logger,
      async (a, ctx) => ({ webhook: await service.registerWebhook(a, ctx.correlationId, ctx.actor) }),
      mapPgError,
    ),
  );

  server.registerTool(
    'list_webhooks',
    {
      description:
        'List registered webhooks by name (secrets are never returned; for anyone but an admin, credential-named query values of a URL are masked), or only the one named by webhook (a name or id). ' +
        'A page holds at most limit of them (and at most 256 KiB); pass next_cursor as cursor for the next.',
      inputSchema: {
        webhook: z.string().min(1).max(200).optional().describe('only this webhook (a name or id)'),
        ...listingShape,
      },
      annotations: { readOnlyHint: true },
    },
    tool('list_webhooks', logger, async (a, ctx) => service.listWebhooks(a, ctx.actor), mapPgError),
  );

  server.registerTool(
    'delete_webhook',
    {
      description: 'Delete a webhook by name or id.',
      inputSchema: { webhook: z.string().min(1) },
      annotations: { destructiveHint: true },
    },
    tool(
      'delete_webhook',
      logger,
      async (a, ctx) => service.deleteWebhook(a.webhook, ctx.correlationId, ctx.actor),
      mapPgError,
    ),
  );

  server.registerTool(
    'update_webhook',
    {
      description:
        'Change a registered webhook (by name or id): its URL, its secret or its event list; what is not given stays. Answers the webhook as it now is.',
      inputSchema: {
        webhook: z.string().min(1).describe('name or id'),
        url: webhookUrl.optional(),
        secret: z
          .string()
          .min(16)
          .max(512)
          .optional()
          .describe('a new shared secret for the HMAC signature (at least 16 characters)'),
        events: webhookEvents.optional(),
      },
      annotations: { idempotentHint: true },
    },
    tool(
      'update_webhook',
      logger,
      async (a, ctx) => ({ webhook: await service.updateWebhook(a, ctx.correlationId, ctx.actor) }),
      mapPgError,
    ),
  );

  server.registerTool(
    'send_webhook',
    {
      description:
        'POST a JSON event to a registered webhook, signed, with an Idempotency-Key; retried with backoff on 5xx and network errors. ' +
        'An idempotency_key is honoured durably, across retries, restarts and server instances: once a send with the key got an answer (any status below 500), ' +
        'later calls with it return that answer with deduplicated: true and send nothing. A key reused for a different webhook, event or payload is refused (illegal_state).',
      inputSchema: {
        webhook: z.string().min(1).describe('name or id'),
        event: z.string().min(1),
        payload: z.record(z.string(), z.unknown()).default({}),
        idempotency_key: z
          .string()
          .min(1)
          .max(200)
          .optional()
          .describe(
            'same key = same delivery: once answered it is never sent again, repeats get the recorded answer ' +
              "(default: the call's own key, as a workflow step's, so a repeat of the step is answered from the record; a call without one: a new id, always sent)",
          ),
      },
      annotations: { openWorldHint: true },
    },
    tool(
      'send_webhook',
      logger,
      async (a, ctx) => ({
        delivery: await service.sendWebhook({
          webhook: a.webhook,
          event: a.event,
          payload: a.payload,
          // A step's repeat (a redispatch after a restart) reaches us with its call's key: sent once.
          idempotencyKey: a.idempotency_key ?? ctx.callKey,
          correlationId: ctx.correlationId,
          scope: ctx.actor,
        }),
      }),
      mapPgError,
    ),
  );

  server.registerTool(
    'queue_webhook',
    {
      description:
        'Queue a POST to a URL in a given format (a2a: an A2A push notification: the body as given, the token in X-A2A-Notification-Token, ' +
        'authentication as Authorization). Recorded durably before the answer, then sent and retried by this server (5xx, 408, 429 and network errors; ' +
        'again later while unanswered) until a 2xx, a refusal or the last attempt. Same idempotency_key = same delivery: queued and sent once. ' +
        'Deliveries with the same ordering_key go out one at a time, in order. The URL passes the egress guard now and at every send; the answer shows only its origin.',
      inputSchema: queueWebhookShape,
      annotations: { openWorldHint: true, idempotentHint: true },
    },
    tool(
      'queue_webhook',
      logger,
      async (a, ctx) => ({
        delivery: await service.queueWebhook({ ...a, correlationId: ctx.correlationId, owner: ctx.actor }),
      }),
      mapPgError,
    ),
  );

  server.registerTool(
    'list_queued_deliveries',
    {
      description:
        'Queued deliveries (queue_webhook), newest first, with their status, attempts, last answer and error; filter by ordering_key or status. Tokens and credentials are never shown.',
      inputSchema: listQueuedShape,
      annotations: { readOnlyHint: true },
    },
    tool('list_queued_deliveries', logger, async (a) => ({ deliveries: await service.listQueued(a) }), mapPgError),
  );

  server.registerTool(
    'create_schedule',
    {
      description:
        'Create a durable schedule that calls a webhook, sends an e-mail or triggers a workflow: repeating with cron (5 or 6 fields, evaluated in timezone), ' +
        'or once with after (that long from now; the schedule is then disabled). Give exactly one of cron and after. ' +
        'The caller (the API key the call came with) owns it: once that key is revoked the schedule stops firing and is paused (paused_reason owner_revoked).',
      inputSchema: {
        name,
        cron: z.string().min(1).max(200).optional().describe('cron expression, e.g. "*/5 * * * *"'),
        after: z
          .string()
          .regex(/^[0-9]{1,6}[smhdw]$/, 'a duration like 30s, 15m, 2h, 7d')
          .optional()
          .describe('fire once, this long from now (e.g. "7d")'),
        timezone: z.string().min(1).default('UTC').describe('IANA time zone, e.g. Europe/Paris'),
        target: scheduleTargetSchema,
      },
    },
    tool(
      'create_schedule',
      logger,
      async (a, ctx) => ({ schedule: await service.createSchedule(a, ctx.correlationId, ctx.actor) }),
      mapPgError,
    ),
  );

  server.registerTool(
    'list_schedules',
    {
      description:
        "List schedules by name with their next fire time, owner and, when the system paused one, why (paused_reason); a workflow target's last fire as the engine took it (last_start: pending, started with its execution_id, or failed with error); only those of owner when given (e.g. apikey:<id>). " +
        'A page holds at most limit of them (and at most 256 KiB); pass next_cursor as cursor for the next.',
      inputSchema: {
        owner: z.string().min(1).max(200).optional().describe('only the schedules of this owner (apikey:<id>)'),
        ...listingShape,
      },
      annotations: { readOnlyHint: true },
    },
    tool('list_schedules', logger, async (a) => service.listSchedules(a), mapPgError),
  );

  server.registerTool(
    'delete_schedule',
    {
      description:
        'Delete a schedule by name or id. With missing_ok, one that is not there (never was, or already deleted) answers { deleted: false, missing: true } instead of not_found, ' +
        "so an undo sent twice or after a manual delete succeeds; one that is there but another's is refused all the same.",
      inputSchema: {
        schedule: z.string().min(1),
        missing_ok: z
          .boolean()
          .default(false)
          .describe('a schedule that does not exist counts as deleted (default false: not_found)'),
      },
      annotations: { destructiveHint: true },
    },
    tool(
      'delete_schedule',
      logger,
      async (a, ctx) => service.deleteSchedule(a.schedule, ctx.correlationId, ctx.actor, a.missing_ok),
      mapPgError,
    ),
  );

  server.registerTool(
    'pause_schedule',
    {
      description:
        'Pause a schedule by name or id: it does not fire until resumed (pausing a paused one changes nothing).',
      inputSchema: { schedule: z.string().min(1) },
      annotations: { idempotentHint: true },
    },
    tool(
      'pause_schedule',
      logger,
      async (a, ctx) => ({ schedule: await service.pauseSchedule(a.schedule, ctx.correlationId, ctx.actor) }),
      mapPgError,
    ),
  );

  server.registerTool(
    'resume_schedule',
    {
      description:
        'Resume a paused schedule by name or id: a cron schedule goes on from its next occurrence after now (those missed while paused are skipped); a one-shot one fires at its time, at once if that has passed. ' +
        'The caller becomes its owner (how a schedule paused because its owner was revoked is taken over).',
      inputSchema: { schedule: z.string().min(1) },
      annotations: { idempotentHint: true },
    },
    tool(
      'resume_schedule',
      logger,
      async (a, ctx) => ({ schedule: await service.resumeSchedule(a.schedule, ctx.correlationId, ctx.actor) }),
      mapPgError,
    ),
  );

  server.registerTool(
    'send_email',
    {
      description:
        'Send an e-mail over SMTP (SMTP_URL; without it the launcher runs a development mailbox). Give text, html or both. ' +
        'An idempotency_key is honoured durably, like send_webhook: once a mail with the key was accepted by the SMTP server it is never sent again, ' +
        'repeats return the first result with deduplicated: true; a key reused for a different message is refused (illegal_state).',
      inputSchema: {
        ...emailMessageShape,
        idempotency_key: z
          .string()
          .min(1)
          .max(200)
          .optional()
          .describe(
            "same key = same mail: sent at most once (default: the call's own key, as a workflow step's; a call without one: always sent)",
          ),
      },
      annotations: { openWorldHint: true },
    },
    tool(
      'send_email',
      logger,
      async (a, ctx) => {
        const { idempotency_key, ...message } = a;
        return {
          email: await service.sendEmail({
            ...message,
            idempotencyKey: idempotency_key ?? ctx.callKey,
            correlationId: ctx.correlationId,
            scope: ctx.actor,
          }),
        };
      },
      mapPgError,
    ),
  );

  server.registerTool(
    'list_mailbox',
    {
      description:
        'Messages the development mailbox received (newest first; to filters on a recipient; pass next_cursor as cursor for older ones).',
      inputSchema: mailboxQuerySchema.shape,
      annotations: { readOnlyHint: true },
    },
    tool('list_mailbox', logger, async (a) => service.listMailbox(a), mapPgError),
  );

  server.registerTool(
    'trigger_workflow',
    {
      description:
        'Start a workflow from a template (or registered definition): the request is recorded durably and the workflow engine starts it once, ' +
        'as execution `execution_id` (known at once; GET /api/v1/workflows/executions/{execution_id} may answer 404 for a moment until it has started). ' +
        'An unknown template or an input its schema refuses marks the trigger row failed with the reason (automation.triggers).',
      inputSchema: { template_id: z.string().min(1), input: z.record(z.string(), z.unknown()).default({}) },
    },
    tool(
      'trigger_workflow',
      logger,
      async (a, ctx) => {
        const trigger = await service.triggerWorkflow({
          templateId: a.template_id,
          input: a.input,
          correlationId: ctx.correlationId,
          onBehalfOf: ctx.actor,
        });
        return { trigger, trigger_id: trigger.id, execution_id: trigger.execution_id };
      },
      mapPgError,
    ),
  );
  server.registerTool(
    'get_trigger',
    {
      description:
        'How a trigger stands: `pending` until the workflow engine picks it up, then `started` (with `execution_id`) or `failed` ' +
        '(with `error`: an unknown template, or an input its schema refuses; never retried).',
      inputSchema: { trigger_id: z.uuid() },
      annotations: { readOnlyHint: true },
    },
    tool('get_trigger', logger, async (a) => ({ trigger: await service.getTrigger(a.trigger_id) }), mapPgError),
  );
  return server;
}
