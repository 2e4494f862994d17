import { AppError } from '@switchyard/platform';
import { toolRefusal, type ToolCaller } from '@switchyard/workflow-executions';
import type { GatewayRequest } from '../../http/context.js';

export { guardedToolsUsed, toolRefusal } from '@switchyard/workflow-executions';

export interface WriterAccess {
  /** Whether the gateway checks API keys at all (with auth off every caller is trusted). */
  readonly authEnabled: boolean;
  /** DATABASE_ALLOW_WRITES. */
  readonly writesAllowed: boolean;
}

/** This gateway's part of the tool policy: whether keys are checked, DATABASE_ALLOW_WRITES. */
export const toolAccessOf = (
  options: { readonly auth: { readonly enabled: boolean } },
  config: { readonly DATABASE_ALLOW_WRITES?: boolean | undefined },
): WriterAccess => ({ authEnabled: options.auth.enabled, writesAllowed: config.DATABASE_ALLOW_WRITES === true });

/** The request's caller as the tool policy (`toolRefusal`) sees it. */
export const toolCallerOf = (req: Pick<GatewayRequest, 'apiKey'>, access: WriterAccess): ToolCaller => ({
  role: req.apiKey?.role ?? null,
  authEnabled: access.authEnabled,
  writesAllowed: access.writesAllowed,
});

/**
 * Throws 403 when the request may not call `tool` of `server`: the writer servers need an admin
 * key and DATABASE_ALLOW_WRITES=true, the admin tools (the development mailbox) an admin key.
 */
export function assertToolAllowed(
  server: string,
  tool: string | undefined,
  req: Pick<GatewayRequest, 'apiKey'>,
  access: WriterAccess,
): void {
  const refused = toolRefusal(server, tool, toolCallerOf(req, access));
  if (refused) throw new AppError('forbidden', refused.message, refused.details);
}
