import { Controller, Get, Req } from '@nestjs/common';
import { z } from 'zod';
import type { GatewayRequest } from '../http/context.js';
import { ApiRoute } from '../openapi/registry.js';

export const WHOAMI_PATH = '/api/v1/auth/whoami';

export const whoamiSchema = z.object({
  id: z.string().nullable().describe('The key id (`sy_<id>_...`); null when auth is disabled'),
  name: z.string().nullable(),
  role: z.enum(['viewer', 'operator', 'admin']).describe('What the key may do; admin when auth is disabled'),
  auth_enabled: z.boolean(),
});

/** Who the presented key is: lets a client (the console) show only what the role may do. The API still checks every call. */
@Controller(WHOAMI_PATH)
export class WhoamiController {
  @Get()
  @ApiRoute({
    summary: "The caller's API key: id, name and role (never the secret)",
    tags: ['admin'],
    role: 'viewer',
    response: { schema: whoamiSchema },
  })
  whoami(@Req() req: GatewayRequest): z.infer<typeof whoamiSchema> {
    const key = req.apiKey;
    if (!key) return { id: null, name: null, role: 'admin', auth_enabled: false };
    return { id: key.id, name: key.name, role: key.role as 'viewer' | 'operator' | 'admin', auth_enabled: true };
  }
}
