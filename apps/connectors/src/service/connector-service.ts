import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  addService,
  callProgressNotifier,
  maxReplyBytes,
  defineEndpoint,
  noticeBody,
  type EndpointDefinition,
  type Service,
} from '@switchyard/messaging';
import { type Logger, type StdioSandbox } from '@switchyard/platform';
import type { McpServerConfig } from '../registry/schema.js';
import type { McpEventSink } from '@switchyard/contracts';
import { McpConnectors } from './connectors.js';
import {
  MCP_SERVICE_NAME,
  MCP_SUBJECT_PREFIX,
  mcpRegistryListSubject,
  type McpEndpoint,
  MCP_SERVICE_VERSION,
  callToolRequestSchema,
  cancelCallRequestSchema,
  getPromptRequestSchema,
  healthRequestSchema,
  listRequestSchema,
  mcpCancelCallSubject,
  mcpSubject,
  readResourceRequestSchema,
} from '@switchyard/contracts';
import type { CallState, McpConnector } from '../resilience/mcp-connector.js';
import { z } from 'zod';
import { createHash } from 'node:crypto';
import { MCP_CALLS_BUCKET, NatsKvCallCache, type NatsKvCallCacheOptions } from './shared-call-cache.js';

export interface McpConnectorServiceOptions {
  readonly nc: NatsConnection;
  readonly connectors: McpConnectors;
  readonly logger: Logger;
  /** Queue group shared by all connector instances (default the service name). */
  readonly queue?: string;
  /** Subject prefix (default `switchyard.svc.mcp.v1`); another one runs an isolated set (tests, tenants). */
  readonly subjectPrefix?: string;
}

/**
 * The NATS request-reply face of the connectors: one `@nats-io/services` service
 * (`mcp-connectors`, queue group shared by every instance) with seven endpoints per
 * server plus `registry.list`. Errors travel as AppError codes in the service error
 * headers: not_found (unknown server/tool, with the valid names), unavailable (down,
 * unconfigured, circuit open), timeout, validation, rate_limited.
 */
export class McpConnectorService {
  private constructor(
    readonly service: Service,
    readonly connectors: McpConnectors,
    private readonly cancels: readonly Subscription[] = [],
  ) {}

  static async start(opts: McpConnectorServiceOptions): Promise<McpConnectorService> {
    const endpoints: Record<string, EndpointDefinition> = {};
    const prefix = opts.subjectPrefix ?? MCP_SUBJECT_PREFIX;
    for (const c of opts.connectors.all())
      Object.assign(endpoints, serverEndpoints(opts.nc, c, prefix, opts.connectors));
    endpoints['registry_list'] = defineEndpoint({
      subject: mcpRegistryListSubject(prefix),
      schema: z.unknown(),
      // Within one NATS message whatever the servers list: one server's 100,000 tool names made
      // this reply too large, and every MCP route of the gateway failed with it.
      handler: () => ({ servers: opts.connectors.list({ maxBytes: maxReplyBytes(opts.nc) }) }),
    });
    const service = await addService(opts.nc, {
      name: MCP_SERVICE_NAME,
      version: MCP_SERVICE_VERSION,
      description: 'MCP tool servers behind resilience policies',
      ...(opts.queue && { queue: opts.queue }),
      metadata: {
        servers: opts.connectors
          .all()
          .map((c) => c.name)
          .join(','),
      },
      logger: opts.logger,
      endpoints,
    });
    // Cancels go to every instance (a plain subscription, not the service's queue group).
    const log = opts.logger.child({ component: 'mcp-connector-service' });
    const cancels = opts.connectors.all().map((c) =>
      opts.nc.subscribe(mcpCancelCallSubject(c.name, prefix), {
        callback: (err, msg) => {
          if (err) return;
          const parsed = cancelCallRequestSchema.safeParse(noticeBody(msg));
          if (!parsed.success) {
            log.warn({ server: c.name, issues: parsed.error.issues }, 'ignoring a malformed cancel_call');
            return;
          }
          c.cancelCall(parsed.data.idempotency_key, parsed.data.reason);
        },
      }),
    );
    return new McpConnectorService(service, opts.connectors, cancels);
  }

  async stop(): Promise<void> {
    for (const s of this.cancels) s.unsubscribe();
    await this.service.stop();
  }
}

/** Room a list or health reply keeps for what is not its items (server name, `left_out`, other fields). */
const REPLY_FIELDS_BYTES = 8 * 1024;

function serverEndpoints(
  nc: NatsConnection,
  c: McpConnector,
  prefix: string,
  view: McpConnectors,
): Record<string, EndpointDefinition> {
  const s = c.name;
  // Listings and health as served: at most max_<kind> items, and what one reply holds (see McpConnectors.listed).
  const itemsBytes = () => maxReplyBytes(nc) - REPLY_FIELDS_BYTES;
  const listed = async (kind: 'tools' | 'prompts' | 'resources', refresh: boolean) => {
    const { items, leftOut } = await view.listed(c, kind, { refresh, maxBytes: itemsBytes() });
    return { server: s, [kind]: items, ...(leftOut > 0 && { left_out: leftOut }) };
  };
  const subject = (e: McpEndpoint) => mcpSubject(s, e, prefix);
  const meta = { server: s, role: c.config.role };
  return {
    [`${s}_call_tool`]: defineEndpoint({
      subject: subject('call_tool'),
      schema: callToolRequestSchema,
      metadata: meta,
      handler: async (req, ctx) => {
        // A caller that follows the call hears when it waits for a slot (again every heartbeat) and when it runs.
        const progress =
          req.progress_subject && req.idempotency_key
            ? callProgressNotifier(nc, req.progress_subject, req.idempotency_key)
            : undefined;
        try {
          return await c.callTool({
            tool: req.tool,
            arguments: req.arguments,
            correlation_id: ctx.correlationId,
            ...(req.actor && { actor: req.actor }),
            ...(req.on_behalf_of && { on_behalf_of: req.on_behalf_of }),
            ...(req.private_arguments && { private_arguments: req.private_arguments }),
            ...(req.idempotency_key && { idempotency_key: req.idempotency_key }),
            ...(req.timeout_ms && { timeout_ms: req.timeout_ms }),
            ...(req.queue_wait_ms && { queue_wait_ms: req.queue_wait_ms }),
            ...(progress && { onProgress: (state: CallState) => progress.tell(state) }),
          });
        } finally {
          progress?.close();
        }
      },
    }),
    [`${s}_list_tools`]: defineEndpoint({
      subject: subject('list_tools'),
      schema: listRequestSchema,
      metadata: meta,
      handler: (req) => listed('tools', req?.refresh ?? false),
    }),
    [`${s}_list_resources`]: defineEndpoint({
      subject: subject('list_resources'),
      schema: listRequestSchema,
      metadata: meta,
      handler: (req) => listed('resources', req?.refresh ?? false),
    }),
    [`${s}_read_resource`]: defineEndpoint({
      subject: subject('read_resource'),
      schema: readResourceRequestSchema,
      metadata: meta,
      handler: (req) => c.readResource(req.uri),
    }),
    [`${s}_list_prompts`]: defineEndpoint({
      subject: subject('list_prompts'),
      schema: listRequestSchema,
      metadata: meta,
      handler: (req) => listed('prompts', req?.refresh ?? false),
    }),
    [`${s}_get_prompt`]: defineEndpoint({
      subject: subject('get_prompt'),
      schema: getPromptRequestSchema,
      metadata: meta,
      handler: (req) => c.getPrompt(req.name, req.arguments),
    }),
    [`${s}_health`]: defineEndpoint({
      subject: subject('health'),
      schema: healthRequestSchema,
      metadata: meta,
      handler: async (req) => view.health(c, req?.probe ? await c.checkHealth() : c.health(), itemsBytes()),
    }),
  };
}

export interface StartConnectorsOptions {
  /** A connection from `connectNats` (@switchyard/messaging). */
  readonly nats: NatsConnection;
  /** Usually `loadRegistry()`. */
  readonly registry: readonly McpServerConfig[];
  readonly logger: Logger;
  /** Receives every connector event; the wiring appends them to the event store. */
  readonly onEvent?: McpEventSink;
  readonly queue?: string;
  readonly subjectPrefix?: string;
  /**
   * Keyed calls (idempotency keys) shared by every connectors process on this NATS, in the KV
   * bucket SWITCHYARD_MCP_CALLS (one per subject prefix) with a 10 min TTL (default), or `false`:
   * this process only. `replicas`: NATS_STREAM_REPLICAS (the bucket's copies on a cluster).
   */
  readonly sharedCalls?:
    | false
    | Pick<NatsKvCallCacheOptions, 'bucket' | 'ttlMs' | 'leaseMs' | 'joinWaitMs' | 'replicas' | 'manage' | 'timeoutMs'>;
  /** Where stdio servers run (see StdioSandbox; detectStdioSandbox finds it); none: as plain children. */
  readonly stdioSandbox?: StdioSandbox;
}

export interface RunningConnectors {
  readonly connectors: McpConnectors;
  readonly service: McpConnectorService;
  /** Stop serving, then close every session (stdio children exit). */
  stop(): Promise<void>;
}

/**
 * Connect to every server of the registry (servers not up yet keep reconnecting on
 * their own) and serve them on NATS. The usual entry point of the connectors app.
 */
export async function startConnectors(opts: StartConnectorsOptions): Promise<RunningConnectors> {
  const s = opts.sharedCalls;
  const sharedCalls =
    s === false
      ? undefined
      : new NatsKvCallCache({
          nats: opts.nats,
          logger: opts.logger,
          ...s,
          // An isolated subject space gets its own bucket: its calls are not the others'.
          bucket:
            s?.bucket ??
            (opts.subjectPrefix
              ? `${MCP_CALLS_BUCKET}_${createHash('sha256').update(opts.subjectPrefix).digest('hex').slice(0, 12)}`
              : MCP_CALLS_BUCKET),
        });
  const connectors = new McpConnectors({
    registry: opts.registry,
    logger: opts.logger,
    ...(opts.onEvent && { onEvent: opts.onEvent }),
    ...(sharedCalls && { sharedCalls }),
    ...(opts.stdioSandbox && { stdioSandbox: opts.stdioSandbox }),
  });
  await connectors.start();
  let service: McpConnectorService;
  try {
    service = await McpConnectorService.start({
      nc: opts.nats,
      connectors,
      logger: opts.logger,
      ...(opts.queue && { queue: opts.queue }),
      ...(opts.subjectPrefix && { subjectPrefix: opts.subjectPrefix }),
    });
  } catch (err) {
    await connectors.close();
    throw err;
  }
  return {
    connectors,
    service,
    async stop() {
      await service.stop().catch(() => undefined);
      await connectors.close();
    },
  };
}
