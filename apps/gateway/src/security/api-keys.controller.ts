import { Controller, Delete, Get, HttpCode, Inject, Post } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { z } from 'zod';
import { Actor, CorrelationId } from '../http/context.js';
import { ZodBody, ZodParams, ZodQuery } from '../http/validation.js';
import { RedactInReplay } from '../idempotency/interceptor.js';
import { ApiRoute } from '../openapi/registry.js';
import { keyIdSchema, keyNameSchema } from './api-key.decider.js';
import { textInt } from '../http/query-int.js';
import type { ApiKeyRecord } from './api-keys.js';
import { CreateApiKey, RevokeApiKey } from './commands/index.js';
import { ListApiKeys } from './queries/index.js';
import { roleSchema } from './roles.js';

export const API_KEYS_PATH = '/api/v1/admin/api-keys';

export const createApiKeyBody = z.object({ name: keyNameSchema, role: roleSchema }).strict();
/** Most keys one page of the list holds: a few thousand keys made one answer of over half a megabyte. */
export const API_KEYS_PAGE_MAX = 1_000;
const listQuery = z
  .object({
    include_revoked: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true')
      .describe('Also list revoked keys'),
    limit: textInt({ min: 1, max: API_KEYS_PAGE_MAX })
      .default(500)
      .describe(`Keys a page holds (1-${API_KEYS_PAGE_MAX}, default 500), oldest first`),
    cursor: keyIdSchema.optional().describe('The next_cursor of the page before (the id of its last key)'),
  })
  .strict();
const idParams = z.object({ id: keyIdSchema }).strict();

export const apiKeySchema = z.object({
  id: z.string(),
  name: z.string(),
  role: roleSchema,
  prefix: z.string().describe('First characters of the key, to recognise it; not usable to authenticate'),
  createdAt: z.string(),
  createdBy: z.string(),
  revokedAt: z.string().nullable(),
  revokedBy: z.string().nullable(),
});
export const createdApiKeySchema = apiKeySchema.extend({
  key: z.string().describe('The full key. Shown only in this answer: store it now'),
});

/** Admin API for API keys. Every change is an event (ApiKeyCreated / ApiKeyRevoked) with the caller as actor. */
@Controller(API_KEYS_PATH)
export class ApiKeysController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(QueryBus) private readonly queries: QueryBus,
  ) {}

  @Post()
  @ApiRoute({
    summary: 'Create an API key (the key is shown once, in this answer)',
    tags: ['admin'],
    role: 'admin',
    response: { status: 201, schema: createdApiKeySchema },
  })
  // The secret is stored hashed only: a replay of this creation names the key but not its secret.
  @RedactInReplay('key')
  create(
    @ZodBody(createApiKeyBody) body: z.output<typeof createApiKeyBody>,
    @Actor() actor: string,
    @CorrelationId() correlationId: string,
  ): Promise<ApiKeyRecord & { key: string }> {
    return this.commands.execute(new CreateApiKey(body.name, body.role, actor, correlationId));
  }

  @Get()
  @ApiRoute({
    summary: 'List API keys (never their secrets)',
    tags: ['admin'],
    role: 'admin',
    response: {
      schema: z.object({
        keys: z.array(apiKeySchema),
        next_cursor: z.string().nullable().describe('The cursor of the next page, null after the last'),
      }),
    },
  })
  list(
    @ZodQuery(listQuery) q: z.output<typeof listQuery>,
  ): Promise<{ keys: ApiKeyRecord[]; next_cursor: string | null }> {
    return this.queries.execute(new ListApiKeys(q.include_revoked, { limit: q.limit, cursor: q.cursor }));
  }

  @Delete(':id')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Revoke an API key',
    description: 'Answers 409 when the key is already revoked or is the last active admin key.',
    tags: ['admin'],
    role: 'admin',
    response: { schema: apiKeySchema },
    errors: [404, 409],
  })
  revoke(
    @ZodParams(idParams) p: z.output<typeof idParams>,
    @Actor() actor: string,
    @CorrelationId() correlationId: string,
  ): Promise<ApiKeyRecord> {
    return this.commands.execute(new RevokeApiKey(p.id, actor, correlationId));
  }
}
