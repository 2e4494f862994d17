import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import type { NatsConnection } from '@nats-io/transport-node';
import { listPromptsReplySchema, listToolsReplySchema, mcpSubject } from '@switchyard/contracts';
import { request } from '@switchyard/messaging';
import { newId, type Logger } from '@switchyard/platform';
import { LOGGER, NATS_CONNECTION } from '../../tokens.js';
import { GetAgentCapabilities } from '../agents/queries/index.js';
import type { ServerHealth } from '../mcp/mcp-client.js';
import { GetMcpServersHealth } from '../mcp/queries/index.js';
import { GetWorkflowDefinition, ListWorkflowDefinitions } from '../workflows/queries/index.js';
import { MCP_SERVER_OPTIONS, type McpServerOptions } from './options.js';
import type { ToolKind } from './tool-call.decider.js';

/** Separator of a namespaced name: `<server>__<tool>`, `workflow__<id>`, `agent__<task type>`. */
export const NS = '__';
/** The names reserved for the gateway's own tools; an upstream server with one of these names is not exposed. */
/** A tool or prompt name as MCP clients expect one. */
const MCP_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
export const RESERVED_NAMESPACES: ReadonlySet<string> = new Set(['workflow', 'agent']);

/** One tool as `/mcp` lists it, with what it names behind the gateway. */
export interface CatalogTool {
  readonly name: string;
  readonly kind: ToolKind;
  /** `<server>/<tool>`, a definition id or a task type. */
  readonly target: string;
  readonly server?: string;
  readonly upstreamName?: string;
  readonly description?: string;
  readonly title?: string;
  readonly inputSchema: Record<string, unknown>;
  readonly outputSchema?: Record<string, unknown>;
  readonly annotations?: Record<string, unknown>;
  /** A workflow tool of a built-in template (its schema is the project's, not an operator's). */
  readonly builtin?: boolean;
}

/** The `wait` argument the gateway adds to a workflow tool (when its definition has none of that name). */
export const WAIT_PROPERTY = Object.freeze({
  type: 'boolean',
  default: true,
  description: 'false: answer the execution id at once instead of waiting for the output',
});

export interface CatalogPrompt {
  readonly name: string;
  readonly server: string;
  readonly upstreamName: string;
  readonly description?: string;
  readonly arguments?: unknown;
}

interface ServerEntry {
  readonly fingerprint: string;
  readonly tools: CatalogTool[];
  readonly prompts: CatalogPrompt[];
  /** A server not serving (down, breaker open): the tools it served last, called but not listed (see tool()). */
  readonly dormant?: CatalogTool[];
}

// The count too: past the registry reply's byte cut the names do not show a tool added or removed.
const serverFingerprint = (s: ServerHealth): string =>
  `${s.state}|${s.breaker}|${s.tools_count ?? ''}|${[...s.tools].sort().join(',')}`;
/** Tools are served only while their server can answer: a server down or with its breaker open drops out (list_changed). */
const serving = (s: ServerHealth): boolean =>
  s.enabled && (s.state === 'up' || s.state === 'degraded') && s.breaker !== 'open' && s.breaker !== 'isolated';

/** A JSON Schema object for a tool's input: MCP requires `type: "object"` at the top. */
function objectSchema(schema: unknown): Record<string, unknown> {
  if (
    schema &&
    typeof schema === 'object' &&
    !Array.isArray(schema) &&
    (schema as { type?: unknown }).type === 'object'
  )
    return { ...(schema as Record<string, unknown>) };
  return { type: 'object', properties: {}, additionalProperties: true };
}

/** How often at most a tool name the catalog lacks makes it read everything again. */
const MISS_REFRESH_MS = 1_000;

/**
 * The tools and prompts `/mcp` serves, kept current:
 * 1. every `catalogRefreshMs` the connectors' registry (health, breaker, tool names per
 *    server) is read over NATS; a server whose fingerprint changed is re-listed (`list_tools`,
 *    `list_prompts`: full descriptions and schemas), the others keep their cached entries;
 * 2. the workflow definitions (latest version of each) and the agents' capability cards;
 * 3. when the set of tools or prompts changed, every listener is told (the sessions send
 *    `notifications/tools/list_changed` / `prompts/list_changed`).
 */
@Injectable()
export class McpServerCatalog implements OnModuleInit, OnModuleDestroy {
  private readonly log: Logger;
  private servers = new Map<string, ServerEntry>();
  private tools = new Map<string, CatalogTool>();
  private prompts = new Map<string, CatalogPrompt>();
  private toolsFingerprint = '';
  private promptsFingerprint = '';
  private refreshedAt = 0;
  /** When the last refresh began (a name the catalog lacks looks again at most every MISS_REFRESH_MS). */
  private refreshStartedAt = 0;
  private refreshing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Names left out of the catalog that were logged (once each, bounded). */
  private readonly leftOut = new Set<string>();
  private readonly listeners = new Set<(what: 'tools' | 'prompts') => void>();

  constructor(
    @Inject(NATS_CONNECTION) private readonly nats: NatsConnection,
    @Inject(LOGGER) logger: Logger,
    @Inject(MCP_SERVER_OPTIONS) private readonly options: McpServerOptions,
    @Inject(QueryBus) private readonly queries: QueryBus,
  ) {
    this.log = logger.child({ component: 'mcp-server-catalog' });
  }

  onModuleInit(): void {
    // The timer is there to tell open sessions of a change; with none open a refresh (the
    // registry, every definition and the capability cards) would be read for nobody, every few
    // seconds: listings refresh by themselves when the catalog has aged (see fresh()).
    this.timer = setInterval(() => {
      if (this.listeners.size > 0) void this.refresh().catch(() => undefined);
    }, this.options.catalogRefreshMs);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
    this.listeners.clear();
  }

  /** Be told when the tool or prompt list changed. Returns the unsubscribe. */
  onChange(listener: (what: 'tools' | 'prompts') => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The tools, refreshed first when the last refresh is older than the interval. */
  async listTools(): Promise<CatalogTool[]> {
    await this.fresh();
    return [...this.tools.values()];
  }

  async tool(name: string): Promise<CatalogTool | undefined> {
    await this.fresh();
    const found = this.tools.get(name);
    if (found) return found;
    // A definition registered or a server that came up a moment ago: look once more, now; but a
    // refresh reads the registry, every definition and the capability cards, so a stream of
    // unknown names shares the one in flight or waits MISS_REFRESH_MS for the next.
    if (this.refreshing) await this.refreshing.catch(() => undefined);
    else if (Date.now() - this.refreshStartedAt >= MISS_REFRESH_MS || (await this.definitionExists(name)))
      await this.refresh();
    return this.tools.get(name) ?? this.dormantTool(name);
  }

  /**
   * A tool of a server that is down or whose breaker is open: out of the listing (clients were told
   * the list changed), but a call to it still goes to the connectors, which answer `unavailable`
   * at once, as before the listing dropped it. Answering "unknown tool" told a client retrying
   * through an outage that the tool does not exist.
   */
  private dormantTool(name: string): CatalogTool | undefined {
    const at = name.indexOf(NS);
    if (at <= 0) return undefined;
    return this.servers.get(name.slice(0, at))?.dormant?.find((t) => t.name === name);
  }

  /** Whether a `workflow__<id>` name is a definition the store has (registered after the last refresh): one indexed read. */
  private async definitionExists(name: string): Promise<boolean> {
    const prefix = `workflow${NS}`;
    if (!name.startsWith(prefix)) return false;
    return this.queries
      .execute(new GetWorkflowDefinition(name.slice(prefix.length)))
      .then(() => true)
      .catch(() => false);
  }

  async listPrompts(): Promise<CatalogPrompt[]> {
    await this.fresh();
    return [...this.prompts.values()];
  }

  async prompt(name: string): Promise<CatalogPrompt | undefined> {
    await this.fresh();
    return this.prompts.get(name);
  }

  /** The first listing waits for a refresh; later ones get the current catalog, refreshed behind them when it aged. */
  private async fresh(): Promise<void> {
    if (this.refreshedAt === 0) return this.refresh();
    if (Date.now() - this.refreshedAt >= this.options.catalogRefreshMs) void this.refresh().catch(() => undefined);
  }

  /** One refresh at a time; concurrent callers share it. */
  refresh(): Promise<void> {
    if (!this.refreshing) this.refreshStartedAt = Date.now();
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const correlationId = `mcp-catalog-${newId()}`;
    const [upstream, workflows, agents] = await Promise.all([
      this.upstream(correlationId).catch((err: unknown) => {
        this.log.warn(
          { err: String(err), correlationId },
          'MCP registry not readable; upstream tools kept as they were',
        );
        return undefined;
      }),
      this.workflowTools().catch((err: unknown) => {
        this.log.warn({ err: String(err), correlationId }, 'workflow definitions not readable');
        return undefined;
      }),
      this.agentTools(correlationId).catch((err: unknown) => {
        this.log.warn({ err: String(err), correlationId }, 'agent capabilities not readable');
        return undefined;
      }),
    ]);
    const tools = new Map<string, CatalogTool>();
    const prompts = new Map<string, CatalogPrompt>();
    const previousByKind = (k: ToolKind) => [...this.tools.values()].filter((t) => t.kind === k);
    if (upstream) this.servers = upstream;
    // Workflow and agent tools first: no upstream tool takes their names. Names an MCP client
    // would not take (the specification's 1-128 of A-Z a-z 0-9 _ - .: no spaces, no control
    // characters) are left out; so are both of two upstream tools or prompts of one name, which a
    // server's names could only make by design if the server names allowed it (they do not).
    const dropped = new Set<string>();
    const add = <T extends { name: string }>(into: Map<string, T>, item: T, upstreamItem: boolean) => {
      if (!MCP_NAME.test(item.name)) return void this.leaveOut(item.name, 'not a valid MCP name');
      if (dropped.has(item.name)) return;
      if (into.has(item.name)) {
        if (!upstreamItem) return;
        const other = into.get(item.name)!;
        if ('kind' in other && other.kind !== 'upstream') return;
        into.delete(item.name);
        dropped.add(item.name);
        return void this.leaveOut(item.name, 'two upstream servers offer this name');
      }
      into.set(item.name, item);
    };
    for (const t of workflows ?? previousByKind('workflow')) add(tools, t, false);
    for (const t of agents ?? previousByKind('agent')) add(tools, t, false);
    for (const entry of this.servers.values()) {
      for (const t of entry.tools) add(tools, t, true);
      for (const p of entry.prompts) add(prompts, p, true);
    }
    this.tools = tools;
    this.prompts = prompts;
    this.refreshedAt = Date.now();
    const toolsFp = [...tools.values()]
      .map((t) => `${t.name}:${t.description ?? ''}:${JSON.stringify(t.inputSchema)}`)
      .sort()
      .join('\n');
    const promptsFp = [...prompts.keys()].sort().join('\n');
    const changed: ('tools' | 'prompts')[] = [];
    if (this.toolsFingerprint && toolsFp !== this.toolsFingerprint) changed.push('tools');
    if (this.promptsFingerprint && promptsFp !== this.promptsFingerprint) changed.push('prompts');
    this.toolsFingerprint = toolsFp;
    this.promptsFingerprint = promptsFp;
    for (const what of changed) {
      this.log.info(
        { what, tools: tools.size, prompts: prompts.size, correlationId },
        'MCP catalog changed; notifying sessions',
      );
      for (const l of this.listeners) {
        try {
          l(what);
        } catch {
          /* a listener's failure is its own */
        }
      }
    }
  }

  private leaveOut(name: string, why: string): void {
    if (this.leftOut.has(name)) return;
    if (this.leftOut.size >= 1_000) this.leftOut.clear();
    this.leftOut.add(name);
    this.log.warn({ name, why }, 'a tool or prompt is left out of /mcp');
  }

  private async upstream(correlationId: string): Promise<Map<string, ServerEntry>> {
    const { servers } = await this.queries.execute(new GetMcpServersHealth(correlationId));
    const out = new Map<string, ServerEntry>();
    await Promise.all(
      servers.map(async (s) => {
        if (RESERVED_NAMESPACES.has(s.server)) return;
        if (!serving(s)) {
          const before = this.servers.get(s.server);
          const dormant = before?.tools.length ? before.tools : (before?.dormant ?? []);
          out.set(s.server, { fingerprint: serverFingerprint(s), tools: [], prompts: [], dormant });
          return;
        }
        const fp = serverFingerprint(s);
        const cached = this.servers.get(s.server);
        if (cached && cached.fingerprint === fp && (cached.tools.length > 0 || s.tools.length === 0)) {
          out.set(s.server, cached);
          return;
        }
        try {
          const listed = await request(
            this.nats,
            mcpSubject(s.server, 'list_tools'),
            {},
            { schema: listToolsReplySchema, timeoutMs: 10_000, correlationId },
          );
          const tools: CatalogTool[] = listed.tools.map((t) => ({
            name: `${s.server}${NS}${t.name}`,
            kind: 'upstream',
            target: `${s.server}/${t.name}`,
            server: s.server,
            upstreamName: t.name,
            ...(t.description !== undefined ? { description: t.description } : {}),
            ...(t.title !== undefined ? { title: t.title } : {}),
            inputSchema: objectSchema(t.inputSchema),
            ...(t.outputSchema ? { outputSchema: t.outputSchema } : {}),
            ...(t.annotations ? { annotations: t.annotations } : {}),
          }));
          const prompts = await request(
            this.nats,
            mcpSubject(s.server, 'list_prompts'),
            {},
            { schema: listPromptsReplySchema, timeoutMs: 10_000, correlationId },
          )
            .then((r) =>
              r.prompts.map((p) => ({
                name: `${s.server}${NS}${p.name}`,
                server: s.server,
                upstreamName: p.name,
                ...(typeof p.description === 'string' ? { description: p.description } : {}),
                ...(p.arguments !== undefined ? { arguments: p.arguments } : {}),
              })),
            )
            // A server without the prompts capability answers an error: it has none.
            .catch(() => [] as CatalogPrompt[]);
          out.set(s.server, { fingerprint: fp, tools, prompts });
        } catch (err) {
          this.log.warn(
            { server: s.server, err: String(err), correlationId },
            'listing an MCP server failed; its tools are left out until the next refresh',
          );
          out.set(s.server, { fingerprint: `unlisted|${fp}`, tools: [], prompts: [] });
        }
      }),
    );
    return out;
  }

  private async workflowTools(): Promise<CatalogTool[]> {
    const { definitions } = await this.queries.execute(new ListWorkflowDefinitions(undefined, undefined));
    return definitions.map((d) => {
      const input = objectSchema(d.input);
      const properties = { ...((input.properties as Record<string, unknown> | undefined) ?? {}) };
      // `wait` is the gateway's, not the workflow's: false answers the execution id at once.
      if (!('wait' in properties)) properties.wait = WAIT_PROPERTY;
      return {
        name: `workflow${NS}${d.id}`,
        kind: 'workflow' as const,
        target: d.id,
        title: d.name,
        description: `${d.description || d.name} (workflow ${d.id} v${d.version}; progress per step; wait=false returns the execution id)`,
        inputSchema: { ...input, properties },
        ...(d.source === 'builtin' ? { builtin: true } : {}),
      };
    });
  }

  private async agentTools(correlationId: string): Promise<CatalogTool[]> {
    const caps = await this.queries.execute(new GetAgentCapabilities(correlationId));
    const out = new Map<string, CatalogTool>();
    for (const agent of caps.agents) {
      for (const t of agent.task_types) {
        if (out.has(t.type)) continue;
        out.set(t.type, {
          name: `agent${NS}${t.type}`,
          kind: 'agent',
          target: t.type,
          description: `${t.description} (delegated to a capable agent, e.g. ${agent.agent}; the arguments are the task's context)`,
          inputSchema: objectSchema(t.input_schema),
        });
      }
    }
    return [...out.values()];
  }
}
