import { AppError, type Logger, type StdioSandbox } from '@switchyard/platform';
import type { McpServerConfig } from '../registry/schema.js';
import type { McpEventSink, ServerHealth } from '@switchyard/contracts';
import { McpConnector, type SharedCallCache } from '../resilience/mcp-connector.js';

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

  constructor(opts: McpConnectorsOptions) {
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

  /** Every server with role, transport kind, health, breaker state and tool names (no secrets). */
  list(): ServerHealth[] {
    return this.all().map((c) => c.health());
  }
}
