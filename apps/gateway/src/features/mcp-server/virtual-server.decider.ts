import { z } from 'zod';
import type { EventMetadata } from '@switchyard/event-store';
import { AppError } from '@switchyard/platform';

/**
 * A virtual MCP server: a named subset of the gateway's tools served at `/mcp/v/<name>`.
 * One stream per name (`mcp_virtual_server-<name>`); a pure decider, no I/O, no clock.
 */
export const virtualServerStream = (name: string): string => `mcp_virtual_server-${name}`;
export const VIRTUAL_SERVER_STREAM_PREFIX = 'mcp_virtual_server-';
export const VIRTUAL_SERVER_EVENT_TYPES = ['McpVirtualServerDefined', 'McpVirtualServerRemoved'] as const;

export const virtualServerNameSchema = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,62}$/,
    'lowercase letters, digits, `_` and `-`, starting with a letter or digit, at most 63 characters',
  );
/** A tool name as `/mcp` lists it, or a prefix ending in `*` (`everything__*`, `workflow__*`). */
export const toolPatternSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_.-]+\*?$/, 'a tool name (`server__tool`) or a prefix ending in `*`');
export const virtualServerSpecSchema = z.object({
  description: z.string().max(1_000).default(''),
  tools: z.array(toolPatternSchema).min(1).max(500),
});
export const virtualServerDefinedData = virtualServerSpecSchema.extend({
  name: virtualServerNameSchema,
  version: z.number().int().positive(),
});
export const virtualServerRemovedData = z.object({ name: virtualServerNameSchema });
export type VirtualServerDefinedData = z.infer<typeof virtualServerDefinedData>;

type Meta = EventMetadata;
export type VirtualServerCommand =
  | {
      readonly type: 'DefineVirtualServer';
      readonly data: { name: string; description: string; tools: string[] };
      readonly metadata: Meta;
    }
  | { readonly type: 'RemoveVirtualServer'; readonly data: { name: string }; readonly metadata: Meta };
export type VirtualServerEvent =
  | { readonly type: 'McpVirtualServerDefined'; readonly data: VirtualServerDefinedData; readonly metadata: Meta }
  | { readonly type: 'McpVirtualServerRemoved'; readonly data: { name: string }; readonly metadata: Meta };
export type VirtualServerState =
  | { readonly status: 'absent'; readonly version: number }
  | { readonly status: 'defined'; readonly version: number; readonly spec: VirtualServerDefinedData }
  | { readonly status: 'removed'; readonly version: number };

const assertNever = (x: never): never => {
  throw new Error(`unexpected ${JSON.stringify(x)}`);
};

const sameSpec = (a: VirtualServerDefinedData, b: { description: string; tools: string[] }) =>
  a.description === b.description && a.tools.length === b.tools.length && a.tools.every((t, i) => t === b.tools[i]);

/**
 * Define creates or replaces (a new version); the same definition again changes nothing.
 * Remove needs a defined server; removing twice is refused (it is gone).
 */
export const virtualServerDecider = {
  initialState: { status: 'absent', version: 0 } as VirtualServerState,
  decide(command: VirtualServerCommand, state: VirtualServerState): VirtualServerEvent[] {
    switch (command.type) {
      case 'DefineVirtualServer':
        if (state.status === 'defined' && sameSpec(state.spec, command.data)) return [];
        return [
          {
            type: 'McpVirtualServerDefined',
            data: { ...command.data, version: state.version + 1 },
            metadata: command.metadata,
          },
        ];
      case 'RemoveVirtualServer':
        if (state.status !== 'defined')
          throw new AppError('not_found', `no virtual server named "${command.data.name}"`, {
            name: command.data.name,
          });
        return [{ type: 'McpVirtualServerRemoved', data: { name: command.data.name }, metadata: command.metadata }];
      default:
        return assertNever(command);
    }
  },
  evolve(state: VirtualServerState, event: VirtualServerEvent): VirtualServerState {
    switch (event.type) {
      case 'McpVirtualServerDefined':
        return { status: 'defined', version: event.data.version, spec: event.data };
      case 'McpVirtualServerRemoved':
        return { status: 'removed', version: state.version };
      default:
        return assertNever(event);
    }
  },
};

/** Whether a tool name matches one of a virtual server's patterns. */
export function toolAllowed(patterns: readonly string[], tool: string): boolean {
  return patterns.some((p) => (p.endsWith('*') ? tool.startsWith(p.slice(0, -1)) : p === tool));
}

/** The read model's row: the latest definition of each server still defined. */
export interface VirtualServerView {
  readonly name: string;
  readonly description: string;
  readonly tools: readonly string[];
  readonly version: number;
  readonly updated_at: string;
  readonly updated_by: string | null;
}

/** The projection's fold, pure: one event into the map of views. */
export function projectVirtualServer(
  views: Map<string, VirtualServerView>,
  e: { type: string; data: unknown; metadata: { timestamp?: string; actor?: string } },
): void {
  if (e.type === 'McpVirtualServerDefined') {
    const d = virtualServerDefinedData.safeParse(e.data);
    if (!d.success) return;
    views.set(d.data.name, {
      name: d.data.name,
      description: d.data.description,
      tools: d.data.tools,
      version: d.data.version,
      updated_at: e.metadata.timestamp ?? new Date(0).toISOString(),
      updated_by: e.metadata.actor ?? null,
    });
  } else if (e.type === 'McpVirtualServerRemoved') {
    const d = virtualServerRemovedData.safeParse(e.data);
    if (d.success) views.delete(d.data.name);
  }
}
