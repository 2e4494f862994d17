import { z } from 'zod';
import type { EventMetadata } from '@switchyard/event-store';
import { AppError } from '@switchyard/platform';

/**
 * One tool call a client made through the gateway's own MCP endpoint (`/mcp`), one stream
 * per call (`mcpgw_call-<call id>`). A pure decider: time, actor and correlation arrive in
 * the command's metadata. The stream prefix is not `mcpserver-`, so the connectors' status
 * projection and the call metrics (which fold the connectors' McpTool* events) never count
 * a call twice: the upstream hop records its own events there.
 */
export const mcpGatewayCallStream = (callId: string): string => `mcpgw_call-${callId}`;
export const MCP_GATEWAY_CALL_STREAM_PREFIX = 'mcpgw_call-';
export const MCP_GATEWAY_CALL_EVENT_TYPES = ['McpToolCalled', 'McpToolSucceeded', 'McpToolFailed'] as const;

export const toolKindSchema = z.enum(['upstream', 'workflow', 'agent']);
export type ToolKind = z.infer<typeof toolKindSchema>;

export const mcpGatewayCallCalledData = z.object({
  call_id: z.string().min(1).max(100),
  /** The name the client called (`everything__echo`, `workflow__revenue_analysis`, ...). */
  tool: z.string().min(1).max(200),
  kind: toolKindSchema,
  /** What it names behind the gateway: `<server>/<tool>`, a definition id or a task type. */
  target: z.string().min(1).max(300),
  /** Redacted and sized (see sizePayload of @switchyard/connectors). */
  arguments: z.unknown(),
  /** The MCP session (Mcp-Session-Id, or the SSE session id); null in stateless mode. */
  session_id: z.string().max(200).nullable(),
  transport: z.enum(['streamable-http', 'sse']),
  /** The virtual server the call came through, when any. */
  virtual_server: z.string().max(100).nullable(),
  key_id: z.string().nullable(),
  key_name: z.string().nullable(),
  at: z.string(),
});
/** What a call's outcome names behind the gateway (as McpToolCalled's `target`): absent in older events. */
const outcomeTarget = z.string().min(1).max(300).optional();
export const mcpGatewayCallSucceededData = z.object({
  call_id: z.string(),
  tool: z.string(),
  target: outcomeTarget,
  duration_ms: z.number().nonnegative(),
  result: z.unknown(),
  /** The work the call started, when it started one. */
  execution_id: z.string().optional(),
  task_id: z.string().optional(),
  at: z.string(),
});
export const mcpGatewayCallFailedData = z.object({
  call_id: z.string(),
  tool: z.string(),
  target: outcomeTarget,
  duration_ms: z.number().nonnegative(),
  error_code: z.string(),
  error_message: z.string().max(2_000),
  execution_id: z.string().optional(),
  task_id: z.string().optional(),
  at: z.string(),
});
export type McpGatewayCallCalledData = z.infer<typeof mcpGatewayCallCalledData>;
export type McpGatewayCallSucceededData = z.infer<typeof mcpGatewayCallSucceededData>;
export type McpGatewayCallFailedData = z.infer<typeof mcpGatewayCallFailedData>;

type Meta = EventMetadata;
export type McpGatewayCallCommand =
  | { readonly type: 'RecordToolCall'; readonly data: McpGatewayCallCalledData; readonly metadata: Meta }
  | { readonly type: 'RecordToolSuccess'; readonly data: McpGatewayCallSucceededData; readonly metadata: Meta }
  | { readonly type: 'RecordToolFailure'; readonly data: McpGatewayCallFailedData; readonly metadata: Meta };
export type McpGatewayCallEvent =
  | { readonly type: 'McpToolCalled'; readonly data: McpGatewayCallCalledData; readonly metadata: Meta }
  | { readonly type: 'McpToolSucceeded'; readonly data: McpGatewayCallSucceededData; readonly metadata: Meta }
  | { readonly type: 'McpToolFailed'; readonly data: McpGatewayCallFailedData; readonly metadata: Meta };
export type McpGatewayCallState =
  | { readonly status: 'absent' }
  | { readonly status: 'running'; readonly callId: string; readonly tool: string }
  | { readonly status: 'succeeded' | 'failed'; readonly callId: string; readonly tool: string };

const assertNever = (x: never): never => {
  throw new Error(`unexpected ${JSON.stringify(x)}`);
};

/**
 * Called once, then exactly one of succeeded / failed. A repeated outcome is a no-op (a
 * retried append after a lost answer), a second different outcome is refused.
 */
export const mcpGatewayCallDecider = {
  initialState: { status: 'absent' } as McpGatewayCallState,
  decide(command: McpGatewayCallCommand, state: McpGatewayCallState): McpGatewayCallEvent[] {
    switch (command.type) {
      case 'RecordToolCall':
        if (state.status !== 'absent') return [];
        return [{ type: 'McpToolCalled', data: command.data, metadata: command.metadata }];
      case 'RecordToolSuccess':
      case 'RecordToolFailure': {
        if (state.status === 'absent')
          throw new AppError('illegal_state', `tool call ${command.data.call_id} was never recorded as called`);
        const wanted = command.type === 'RecordToolSuccess' ? 'succeeded' : 'failed';
        if (state.status === wanted) return [];
        if (state.status !== 'running')
          throw new AppError('illegal_state', `tool call ${command.data.call_id} already ${state.status}`);
        return command.type === 'RecordToolSuccess'
          ? [{ type: 'McpToolSucceeded', data: command.data, metadata: command.metadata }]
          : [{ type: 'McpToolFailed', data: command.data, metadata: command.metadata }];
      }
      default:
        return assertNever(command);
    }
  },
  evolve(state: McpGatewayCallState, event: McpGatewayCallEvent): McpGatewayCallState {
    switch (event.type) {
      case 'McpToolCalled':
        return { status: 'running', callId: event.data.call_id, tool: event.data.tool };
      case 'McpToolSucceeded':
        return state.status === 'absent' ? state : { status: 'succeeded', callId: state.callId, tool: state.tool };
      case 'McpToolFailed':
        return state.status === 'absent' ? state : { status: 'failed', callId: state.callId, tool: state.tool };
      default:
        return assertNever(event);
    }
  },
};
