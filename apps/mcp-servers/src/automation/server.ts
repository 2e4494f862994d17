import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Logger } from '@switchyard/platform';
import { tool } from '../common/tools.js';
import { mapPgError } from '../database/server.js';
import { scheduleTargetSchema, type AutomationService } from './service.js';
import { sharedJsonSchemaValidator } from '../common/validator.js';

export interface AutomationServerDeps {
  readonly service: AutomationService;
  readonly logger: Logger;
}

const name = z.string().min(1).max(200).regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _ . : - only');

/** The automation MCP server: webhooks, cron schedules and workflow triggers. */
export function createAutomationServer(deps: AutomationServerDeps): McpServer {
  const { service, logger } = deps;
  const server = new McpServer({ name: 'switchyard-automation', version: '0.1.0' }, { jsonSchemaValidator: sharedJsonSchemaValidator });

  server.registerTool(
    'register_webhook',
    {
      description: 'Register an outbound webhook. Deliveries are signed with the secret (X-Switchyard-Signature: sha256=HMAC(secret, "<timestamp>.<body>")). Empty events = all events.',
      inputSchema: {
        name,
        url: z.string().url(),
        secret: z.string().min(16).max(512).describe('shared secret for the HMAC signature (at least 16 characters)'),
        events: z.array(z.string().min(1)).default([]),
      },
    },
    tool('register_webhook', logger, async (a) => ({ webhook: await service.registerWebhook(a) }), mapPgError),
  );

  server.registerTool(
    'list_webhooks',
    { description: 'List registered webhooks (secrets are never returned).', inputSchema: {}, annotations: { readOnlyHint: true } },
    tool('list_webhooks', logger, async () => ({ webhooks: await service.listWebhooks() }), mapPgError),
  );

  server.registerTool(
    'delete_webhook',
    { description: 'Delete a webhook by name or id.', inputSchema: { webhook: z.string().min(1) }, annotations: { destructiveHint: true } },
    tool('delete_webhook', logger, async (a) => service.deleteWebhook(a.webhook), mapPgError),
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
        idempotency_key: z.string().min(1).max(200).optional().describe('same key = same delivery: once answered it is never sent again, repeats get the recorded answer (default: a new id, always sent)'),
      },
      annotations: { openWorldHint: true },
    },
    tool('send_webhook', logger, async (a, ctx) => ({
      delivery: await service.sendWebhook({ webhook: a.webhook, event: a.event, payload: a.payload, idempotencyKey: a.idempotency_key, correlationId: ctx.correlationId }),
    }), mapPgError),
  );

  server.registerTool(
    'create_schedule',
    {
      description: 'Create a durable cron schedule (5 or 6 fields, evaluated in timezone) that calls a webhook or triggers a workflow.',
      inputSchema: {
        name,
        cron: z.string().min(1).max(200).describe('cron expression, e.g. "*/5 * * * *"'),
        timezone: z.string().min(1).default('UTC').describe('IANA time zone, e.g. Europe/Paris'),
        target: scheduleTargetSchema,
      },
    },
    tool('create_schedule', logger, async (a) => ({ schedule: await service.createSchedule(a) }), mapPgError),
  );

  server.registerTool(
    'list_schedules',
    { description: 'List schedules with their next fire time.', inputSchema: {}, annotations: { readOnlyHint: true } },
    tool('list_schedules', logger, async () => ({ schedules: await service.listSchedules() }), mapPgError),
  );

  server.registerTool(
    'delete_schedule',
    { description: 'Delete a schedule by name or id.', inputSchema: { schedule: z.string().min(1) }, annotations: { destructiveHint: true } },
    tool('delete_schedule', logger, async (a) => service.deleteSchedule(a.schedule), mapPgError),
  );

  server.registerTool(
    'trigger_workflow',
    {
      description: 'Record a request to start a workflow from a template; the workflow engine picks it up.',
      inputSchema: { template_id: z.string().min(1), input: z.record(z.string(), z.unknown()).default({}) },
    },
    tool('trigger_workflow', logger, async (a, ctx) => ({
      trigger: await service.triggerWorkflow({ templateId: a.template_id, input: a.input, correlationId: ctx.correlationId }),
    }), mapPgError),
  );
  return server;
}
