import { z } from 'zod';
import { virtualServerNameSchema, virtualServerSpecSchema } from './virtual-server.decider.js';

export const VIRTUAL_SERVERS_PATH = 'api/v1/integration/mcp/virtual-servers';

export const virtualServerParams = z.object({ name: virtualServerNameSchema });
export const virtualServerPutBody = virtualServerSpecSchema.strict();
export const virtualServerPostBody = virtualServerSpecSchema.extend({ name: virtualServerNameSchema }).strict();
export const virtualServerView = z.object({
  name: z.string(),
  description: z.string(),
  tools: z.array(z.string()),
  version: z.number().int(),
  updated_at: z.string(),
  updated_by: z.string().nullable(),
  url: z.string().describe('Path of its MCP endpoint (Streamable HTTP; `/sse` beside it for the legacy transport)'),
});
export const virtualServerList = z.object({ virtual_servers: z.array(virtualServerView) });
export const virtualServerRemoved = z.object({ name: z.string(), removed: z.literal(true) });
export const virtualServerExample = {
  name: 'support-desk',
  description: 'What the support assistant may use',
  tools: ['everything__echo', 'agent__customer_support', 'workflow__customer_support'],
};

export const sessionQuery = z.object({
  sessionId: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[A-Za-z0-9-]+$/),
});

/** RFC 9728 protected resource metadata, as `/.well-known/oauth-protected-resource` answers it. */
export const protectedResourceMetadata = z.object({
  resource: z.string(),
  resource_name: z.string(),
  bearer_methods_supported: z.array(z.string()),
  scopes_supported: z.array(z.string()),
  resource_documentation: z.string().optional(),
  authorization_servers: z.array(z.string()).optional(),
  switchyard_auth: z.object({
    scheme: z.literal('bearer'),
    token: z.string(),
    roles: z.record(z.string(), z.string()),
  }),
});
