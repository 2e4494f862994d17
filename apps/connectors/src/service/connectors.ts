import { AppError, type Logger, type StdioSandbox } from '@switchyard/platform';
import type { McpServerConfig } from '../registry/schema.js';
import type { McpEventSink, ServerHealth } from '@switchyard/contracts';
import { McpConnector, type McpConnectorHealth, type SharedCallCache } from '../resilience/mcp-connector.js';
import {
  jsonBytes,
  ListingBounds,
  MAX_LAST_ERROR_CHARS,
  shareBytes,
  withinBytes,
  type ListedKind,
} from './listing-bounds.js';

/** Room a registry reply keeps for what is not a server entry (`{"servers":[...]}`), and per entry for `tools_truncated`. */
const REPLY_FRAME_BYTES = 1_024;
const TRUNCATED_MARK_BYTES = 32;

export interface McpConnectorsOptions {
  readonly registry: readonly McpServerConfig[];
  readonly logger: Logger;
  readonly onEvent?: McpEventSink;
  /** Keyed calls shared with other connectors processes (see McpConnectorOptions.sharedCalls). */
  readonly sharedCalls?: SharedCallCache;
  /** Where stdio servers run (see StdioSandbox). */
  readonly stdioSandbox?: StdioSandbox;
}

/** All servers of a registry, one McpConnector each (disabled ones too: they answer `unavailable`). */
export class McpConnectors {
  private readonly byName = new Map<string, McpConnector>();
  /** What each server's max_tools / max_prompts / max_resources left out (see ListingBounds). */
  private readonly bounds: ListingBounds;

  constructor(opts: McpConnectorsOptions) {
    this.bounds = new ListingBounds(opts.logger.child({ component: 'mcp-connectors' }));
    for (const config of opts.registry) {
      if (this.byName.has(config.name))
        throw new AppError('validation', `duplicate MCP server name ${config.name}`, { server: config.name });
      this.byName.set(
        config.name,
        new McpConnector({
          config,
          logger: opts.logger,
          ...(opts.onEvent && { onEvent: opts.onEvent }),
          ...(opts.sharedCalls && { sharedCalls: opts.sharedCalls }),
          ...(opts.stdioSandbox && { stdioSandbox: opts.stdioSandbox }),
        }),
      );
    }
  }

  /** Connect every server at once. Never throws: a server that is not there yet is `down` and keeps reconnecting. */
  async start(): Promise<void> {
    await Promise.all([...this.byName.values()].map((c) => c.start()));
    // A server listing past its bounds is logged now, not at the first read of it.
    for (const c of this.byName.values()) {
      const h = this.health(c);
      if (h.state !== 'up' && h.state !== 'degraded') continue;
      await this.listed(c, 'prompts').catch(() => undefined);
      await this.listed(c, 'resources').catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.byName.values()].map((c) => c.close()));
  }

  get(name: string): McpConnector | undefined {
    return this.byName.get(name);
  }

  /** The connector of `name` or AppError('not_found') listing the known servers. */
  require(name: string): McpConnector {
    const c = this.byName.get(name);
    if (!c)
      throw new AppError('not_found', `no MCP server named ${name}`, {
        server: name,
        valid_servers: [...this.byName.keys()],
      });
    return c;
  }

  all(): McpConnector[] {
    return [...this.byName.values()];
  }

  /**
   * One server's health as served: its tools cut to max_tools (`tools_count`, `left_out`),
   * their names to `namesBytes` of JSON (`tools_truncated`), `last_error` to 1,000 characters.
   */
  health(c: McpConnector, h: McpConnectorHealth = c.health(), namesBytes = Infinity): ServerHealth {
    const kept = this.bounds.keep(c.config, 'tools', h.tools);
    const names = withinBytes(kept, namesBytes);
    const leftOut = this.bounds.leftOutOf(c.name);
    return {
      ...h,
      ...(h.last_error !== undefined && { last_error: h.last_error.slice(0, MAX_LAST_ERROR_CHARS) }),
      tools: names.items,
      tools_count: kept.length,
      ...(names.leftOut > 0 && { tools_truncated: true }),
      ...(leftOut && { left_out: leftOut }),
    };
  }

  /**
   * Every server with role, transport kind, health, breaker state and tool names (no secrets).
   * With `maxBytes`, the names are cut so that the whole list takes at most that much JSON: each
   * server keeps all its names when they fit in an equal share, the others share the rest
   * (`tools_truncated` on the ones cut). The reply must fit in one NATS message whatever a server lists.
   */
  list(opts: { maxBytes?: number } = {}): ServerHealth[] {
    const full = this.all().map((c) => this.health(c));
    if (opts.maxBytes === undefined) return full;
    const frames = full.reduce((sum, h) => sum + jsonBytes({ ...h, tools: [] }) + TRUNCATED_MARK_BYTES + 1, 0);
    const shares = shareBytes(
      full.map((h) => jsonBytes(h.tools)),
      opts.maxBytes - REPLY_FRAME_BYTES - frames,
    );
    return full.map((h, i) => {
      const names = withinBytes(h.tools, shares[i]!);
      return names.leftOut > 0 ? { ...h, tools: names.items, tools_truncated: true } : h;
    });
  }

  /**
   * One server's tools, prompts or resources as served: the first max_<kind> of them, and of
   * those as many as `maxBytes` of JSON hold; `leftOut` counts the rest (both causes).
   */
  async listed<K extends ListedKind>(
    c: McpConnector,
    kind: K,
    opts: { refresh?: boolean; maxBytes?: number } = {},
  ): Promise<{ items: Awaited<ReturnType<McpConnector[ListMethod<K>]>>; leftOut: number }> {
    const refresh = { refresh: opts.refresh ?? false };
    const all =
      kind === 'tools'
        ? await c.listTools(refresh)
        : kind === 'prompts'
          ? await c.listPrompts(refresh)
          : await c.listResources(refresh);
    const kept = this.bounds.keep<(typeof all)[number]>(c.config, kind, all);
    const fit = withinBytes(kept, opts.maxBytes ?? Infinity);
    return {
      items: fit.items as Awaited<ReturnType<McpConnector[ListMethod<K>]>>,
      leftOut: all.length - kept.length + fit.leftOut,
    };
  }
}

type ListMethod<K extends ListedKind> = K extends 'tools'
  ? 'listTools'
  : K extends 'prompts'
    ? 'listPrompts'
    : 'listResources';
