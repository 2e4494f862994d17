import { HttpException, Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import express, { type Request, type RequestHandler, type Response } from 'express';
import type { Pool } from 'pg';
import { AgentCard } from '@a2a-js/sdk';
import { agentCardHandler, jsonRpcHandler, type UserBuilder } from '@a2a-js/sdk/server/express';
import {
  type AppError,
  EgressGuard,
  egressPolicyFromEnv,
  errorCodes,
  type EgressPolicy,
  type Logger,
  parseConfig,
} from '@switchyard/platform';
import { z } from 'zod';
import { ConnectionQuota, heldCallsQuota } from '../../http/connection-quota.js';
import { actorOf, connectionHolderOf, correlationIdOf, type GatewayRequest } from '../../http/context.js';
import { retryAfterSeconds } from '../../http/problem-filter.js';
import { deferredInputError } from '../../http/route-checks.js';
import { AUTH_FAILED, type AuthRequest } from '../../security/middleware.js';
import { ApiKeyService } from '../../security/api-keys.js';
import { roleSatisfies, roleSchema, type Role } from '../../security/roles.js';
import { GATEWAY_OPTIONS, LOGGER, PG_POOL, type ResolvedGatewayOptions } from '../../tokens.js';
import { McpGatewayClient } from '../mcp/mcp-client.js';
import { WorkflowsService } from '../workflows/workflows.service.js';
import { ExecutionWaits } from '../workflows/execution-waits.js';
import { TaskMoves } from '../agents/task-moves.js';
import type { CapabilitiesReply } from '@switchyard/contracts';
import type { DefinitionListed } from '../workflows/queries/list-workflow-definitions.js';
import { AgentBackend, CachedValue, capabilitiesCache, definitionsCache, WorkflowBackend } from './backends.js';
import {
  A2A_BASE,
  agentSkills,
  buildCard,
  CARD_PATH,
  cardUrl,
  DIRECTORY_EXTENSION_URI,
  endpointUrl,
  exampleFromSchema,
  WORKFLOWS_ENDPOINT,
  type SkillSource,
} from './cards.js';
import type { Backend } from './executor.js';
import { SwitchyardRequestHandler } from './handler.js';
import { PushDelivery, type PushDeliveryOptions } from './push.js';
import {
  DEFAULT_A2A_TASK_RETENTION_DAYS,
  migrateA2a,
  PgPushNotificationStore,
  PgTaskStore,
  purgeEndedA2aTasks,
} from './store.js';
import type { GatewayA2aUser } from './redaction.js';
import { redactsPayloadsFor } from '../../events/redaction.js';

/** Options of the A2A feature (`A2aFeatureModule.withOptions`). */
export interface A2aFeatureOptions {
  /** Egress policy for push notification URLs when a config is set. Default EGRESS_ALLOW_HOSTS / EGRESS_ALLOW_CIDRS. */
  readonly egress?: EgressPolicy;
  /** Hand-off of push notifications to the automation server (which delivers and retries them). */
  readonly push?: PushDeliveryOptions;
  /** Days an ended task is kept after its last change; 0 keeps every task. Default A2A_TASK_RETENTION_DAYS (30). */
  readonly taskRetentionDays?: number;
}

const a2aEnvSchema = z.object({
  A2A_TASK_RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(DEFAULT_A2A_TASK_RETENTION_DAYS),
});

/** How often a gateway purges ended A2A tasks past their retention (each gateway; rounds take rows apart). */
export const A2A_PURGE_INTERVAL_MS = 10 * 60_000;
/** Batches one round deletes at most (A2A_PURGE_BATCH tasks each): the rest waits for the next round. */
const A2A_PURGE_BATCHES_PER_ROUND = 20;
export const A2A_FEATURE_OPTIONS = Symbol.for('switchyard.gateway.a2aFeatureOptions');

const WORKFLOWS_DESCRIPTION =
  "Starts Switchyard workflows: one skill per definition (the templates here; a key holder's extended card, GetExtendedAgentCard, lists the registered definitions too); the task ends with the workflow's outputs.";

/** Longest task, context or push config id a call may name. */
const A2A_ID_MAX_CHARS = 256;

/** The first id field of `params` (or of its `message`) longer than A2A_ID_MAX_CHARS, if any. */
function overlongIdOf(params: unknown, prefix = ''): string | undefined {
  if (!params || typeof params !== 'object') return undefined;
  const p = params as Record<string, unknown>;
  for (const field of ['id', 'taskId', 'contextId', 'messageId', 'name', 'pushNotificationConfigId']) {
    const value = p[field];
    if (typeof value === 'string' && value.length > A2A_ID_MAX_CHARS) return `${prefix}${field}`;
  }
  // A message names its task and context too (a follow-up), and they are kept and quoted back.
  return prefix === '' ? overlongIdOf(p['message'], 'message.') : undefined;
}

/** JSON-RPC methods a viewer key may call (reads); every other method needs operator. Both the A2A 1.0 and 0.3 names. */
const VIEWER_METHODS = new Set([
  'GetTask',
  'tasks/get',
  'ListTasks',
  'SubscribeToTask',
  'tasks/resubscribe',
  'GetTaskPushNotificationConfig',
  'tasks/pushNotificationConfig/get',
  'ListTaskPushNotificationConfigs',
  'tasks/pushNotificationConfig/list',
  'GetExtendedAgentCard',
  'agent/getAuthenticatedExtendedCard',
]);

/** JSON-RPC methods answered with a stream that stays open while the task runs (1.0 and 0.3 names). */
const STREAM_METHODS = new Set(['SendStreamingMessage', 'message/stream', 'SubscribeToTask', 'tasks/resubscribe']);

/** Role a JSON-RPC call needs. */
export const roleForMethod = (method: unknown): Role =>
  typeof method === 'string' && VIEWER_METHODS.has(method) ? 'viewer' : 'operator';

/** A JSON-RPC error answer with an HTTP status (auth and routing happen before the SDK sees the call). */
function rpcError(
  req: Request,
  res: Response,
  status: number,
  code: number,
  message: string,
  data?: Record<string, unknown>,
) {
  const body = req.body as { id?: unknown } | undefined;
  const id =
    body &&
    typeof body === 'object' &&
    !Array.isArray(body) &&
    (typeof body.id === 'string' || typeof body.id === 'number')
      ? body.id
      : null;
  if (status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
  res
    .status(status)
    .json({ jsonrpc: '2.0', id, error: { code, message, data: { correlation_id: correlationIdOf(req), ...data } } });
}

/**
 * Aborted when the response closes: it was answered, or the client's connection went. The SDK's
 * HTTP handler writes a stream's updates for as long as the stream yields them and never
 * listens for the close itself.
 */
function closeSignalOf(res: Response | undefined): AbortSignal | undefined {
  if (!res) return undefined;
  const closed = new AbortController();
  if (res.destroyed) closed.abort();
  else res.once('close', () => closed.abort());
  return closed.signal;
}

interface Endpoint {
  readonly name: string;
  readonly backend: Backend;
  readonly handler: SwitchyardRequestHandler;
  readonly rpc: RequestHandler;
}

/**
 * The A2A peer: one JSON-RPC endpoint per built-in agent (`/a2a/<agent>`) and one for the
 * workflows (`/a2a/workflows`), their cards, and the directory card at
 * `/.well-known/agent-card.json`. Served as an Express router in front of Nest's routes
 * (JSON-RPC answers its own errors; problem+json is for the REST API).
 */
@Injectable()
export class A2aPeer implements OnModuleInit, OnModuleDestroy {
  private readonly log: Logger;
  private readonly caps: CachedValue<CapabilitiesReply>;
  /** The definitions the workflows endpoint's skills and card list (cards are public: one read every few seconds at most). */
  private readonly definitions: CachedValue<{ definitions: DefinitionListed[] }>;
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly pushStore: PgPushNotificationStore;
  readonly push: PushDelivery;
  private readonly guard: EgressGuard;
  /**
   * Open `message/stream` and `tasks/resubscribe` answers: the same share per caller as the live
   * event streams (GATEWAY_EVENT_STREAMS_*), counted apart, so that one key cannot hold every
   * stream the gateway can serve.
   */
  private readonly streams: ConnectionQuota;
  /** Other calls in flight (a blocking message/send holds its request until the work ends). */
  private readonly heldCalls: ConnectionQuota;
  private readonly taskRetentionDays: number;
  private purgeTimer: NodeJS.Timeout | undefined;
  private purgeRound: Promise<unknown> | undefined;

  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(LOGGER) logger: Logger,
    @Inject(GATEWAY_OPTIONS) private readonly options: ResolvedGatewayOptions,
    private readonly workflows: WorkflowsService,
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    mcp: McpGatewayClient,
    @Inject(A2A_FEATURE_OPTIONS) featureOptions: A2aFeatureOptions,
    @Inject(ExecutionWaits) private readonly waits: ExecutionWaits,
    @Inject(TaskMoves) private readonly taskMoves: TaskMoves,
    @Inject(ApiKeyService) private readonly keys: ApiKeyService,
  ) {
    this.log = logger.child({ component: 'a2a' });
    this.caps = capabilitiesCache(this.queries);
    this.definitions = definitionsCache(this.queries);
    this.guard = new EgressGuard(featureOptions.egress ?? egressPolicyFromEnv());
    this.streams = new ConnectionQuota('A2A streams', {
      perCaller: options.eventStreams.perCaller,
      total: options.eventStreams.total,
      perCallerSetting: 'GATEWAY_EVENT_STREAMS_PER_CALLER',
      totalSetting: 'GATEWAY_EVENT_STREAMS_MAX',
    });
    this.heldCalls = heldCallsQuota('A2A requests in flight', options.heldCalls);
    this.taskRetentionDays =
      featureOptions.taskRetentionDays ?? parseConfig(process.env, a2aEnvSchema).A2A_TASK_RETENTION_DAYS;
    this.pushStore = new PgPushNotificationStore(pool);
    this.push = new PushDelivery(this.pushStore, mcp, this.log.child({ part: 'push' }), featureOptions.push);
  }

  async onModuleInit(): Promise<void> {
    await migrateA2a(this.pool);
    if (this.taskRetentionDays > 0) {
      this.purgeTimer = setInterval(() => {
        if (this.purgeRound) return;
        this.purgeRound = this.purgeEndedTasks(new Date())
          .catch((err: unknown) => this.log.warn({ err }, 'purging ended A2A tasks failed; the next round tries again'))
          .finally(() => (this.purgeRound = undefined));
      }, A2A_PURGE_INTERVAL_MS);
      this.purgeTimer.unref();
    }
  }

  /**
   * One purge round at `now`: ended tasks last changed more than the retention before it, with
   * their push configs, up to the round's bound, and claims on new-task messages an hour old (a
   * gateway that died while making the task left them). Returns what went.
   */
  async purgeEndedTasks(now: Date): Promise<{ tasks: number; push_configs: number; claims: number }> {
    const gone = { tasks: 0, push_configs: 0, claims: 0 };
    if (this.taskRetentionDays <= 0) return gone;
    const cutoff = new Date(now.getTime() - this.taskRetentionDays * 86_400_000);
    for (let i = 0; i < A2A_PURGE_BATCHES_PER_ROUND; i++) {
      const batch = await purgeEndedA2aTasks(this.pool, cutoff);
      gone.tasks += batch.tasks;
      gone.push_configs += batch.push_configs;
      gone.claims += batch.claims;
      if (batch.tasks === 0 && batch.claims === 0) break;
    }
    if (gone.tasks > 0 || gone.claims > 0)
      this.log.info({ ...gone, cutoff: cutoff.toISOString() }, 'purged ended A2A tasks');
    return gone;
  }

  /**
   * Stop following running tasks (their work goes on in Switchyard and the next read of each
   * catches up), then wait for push notifications still being handed to the automation server.
   */
  async onModuleDestroy(): Promise<void> {
    clearInterval(this.purgeTimer);
    await this.purgeRound;
    for (const ep of this.endpoints.values()) ep.handler.executor.stop();
    await this.push.drain();
  }

  /** Listeners on the event bus of an endpoint's task (0 when it has none): what the streams following it hold. */
  taskListeners(endpoint: string, taskId: string): number {
    return this.endpoints.get(endpoint)?.handler.busListeners(taskId) ?? 0;
  }

  /** The built-in agents (served by this system over NATS); external agents are not re-exported. */
  private async agentNames(): Promise<string[]> {
    return (await this.caps.get()).agents.filter((a) => a.kind === 'nats').map((a) => a.agent);
  }

  private async endpoint(name: string): Promise<Endpoint | undefined> {
    const known = this.endpoints.get(name);
    if (known) return known;
    let backend: Backend;
    if (name === WORKFLOWS_ENDPOINT)
      backend = new WorkflowBackend(this.workflows, this.commands, this.queries, this.waits, this.definitions);
    else if ((await this.agentNames()).includes(name))
      backend = new AgentBackend(name, this.commands, this.queries, this.caps, this.taskMoves);
    else return undefined;
    // The card the handler holds is only used for what the SDK checks (interfaces, modes);
    // clients get a card built per request with the address they called.
    const card = await this.card(name, 'http://127.0.0.1');
    const handler = new SwitchyardRequestHandler(
      card!,
      new PgTaskStore(this.pool, name),
      backend,
      this.pushStore,
      this.push,
      this.guard,
      this.log.child({ endpoint: name }),
      name === WORKFLOWS_ENDPOINT
        ? async (context) => {
            const user = context.user as Partial<GatewayA2aUser> | undefined;
            return this.workflowsCard(user?.base ?? 'http://127.0.0.1', 'workflows', WORKFLOWS_DESCRIPTION, [], {
              extended: true,
              values: user?.seesPayloads !== false,
            });
          }
        : undefined,
    );
    const userBuilder: UserBuilder = async (req: Request): Promise<GatewayA2aUser> => {
      const res = req.res;
      const key = (req as Partial<GatewayRequest>).apiKey;
      const userName = actorOf(req);
      return {
        isAuthenticated: key !== undefined,
        userName,
        seesPayloads: !redactsPayloadsFor(key?.role),
        actsForAllKeys: key === undefined || key.role === 'admin',
        base: `${req.protocol}://${req.get('host') ?? '127.0.0.1'}`,
        clientGone: closeSignalOf(res),
      };
    };
    const rpc = jsonRpcHandler({ requestHandler: handler, userBuilder, legacyCompat: { enabled: true } });
    const ep = this.endpoints.get(name) ?? { name, backend, handler, rpc };
    this.endpoints.set(name, ep);
    return ep;
  }

  /** The card of one endpoint as seen from `base` (scheme://host of the request), undefined for an unknown one. */
  async card(name: string, base: string): Promise<AgentCard | undefined> {
    if (name === WORKFLOWS_ENDPOINT) return this.workflowsCard(base, 'workflows', WORKFLOWS_DESCRIPTION);
    const caps = (await this.caps.get()).agents.find((a) => a.agent === name && a.kind === 'nats');
    if (!caps) return undefined;
    return buildCard({
      name,
      description: caps.description,
      url: endpointUrl(base, name),
      base,
      skills: agentSkills(caps),
    });
  }

  /**
   * The public cards' skills are the built-in templates; the registered definitions (an
   * operator's names, descriptions, defaults) are in the extended card a key holder asks for,
   * with example values from the definition only for a key that sees payloads.
   */
  private async workflowSkills(o: { extended: boolean; values: boolean }): Promise<SkillSource[]> {
    const { definitions } = await this.definitions.get();
    return definitions
      .filter((d) => o.extended || d.source === 'builtin')
      .map((d) => ({
        id: d.id,
        name: d.name,
        description: d.description || d.name,
        tags: ['workflow', d.source],
        exampleInput: d.source === 'builtin' || o.values ? exampleFromSchema(d.input) : {},
      }));
  }

  private async workflowsCard(
    base: string,
    name: string,
    description: string,
    extensions: AgentCard['capabilities'] extends infer C
      ? C extends { extensions: infer E }
        ? E
        : never
      : never = [],
    o: { extended: boolean; values: boolean } = { extended: false, values: false },
  ) {
    return buildCard({
      name,
      description,
      url: endpointUrl(base, WORKFLOWS_ENDPOINT),
      base,
      skills: await this.workflowSkills(o),
      extended: true,
      extensions,
    });
  }

  /** The directory: "Switchyard", whose skills are the workflows and whose extension lists every agent's card. */
  async directoryCard(base: string): Promise<AgentCard> {
    const agents = (await this.caps.get()).agents.filter((a) => a.kind === 'nats');
    const list = [
      ...agents.map((a) => ({
        name: a.agent,
        description: a.description,
        url: endpointUrl(base, a.agent),
        card_url: cardUrl(base, a.agent),
      })),
      {
        name: WORKFLOWS_ENDPOINT,
        description: 'Workflow starts',
        url: endpointUrl(base, WORKFLOWS_ENDPOINT),
        card_url: cardUrl(base, WORKFLOWS_ENDPOINT),
      },
    ];
    const description =
      'Switchyard: an orchestration backend for MCP tool servers and AI agents. This card starts workflows (its skills); ' +
      `each agent is an A2A agent of its own: ${list.map((a) => `${a.name} (${a.card_url})`).join(', ')}.`;
    return this.workflowsCard(base, 'Switchyard', description, [
      {
        uri: DIRECTORY_EXTENSION_URI,
        description: 'The agents of this system and their cards',
        required: false,
        params: { agents: list },
      },
    ]);
  }

  /** The Express router of the peer. */
  router(): express.Router {
    const r = express.Router();
    const baseOf = (req: Request) => `${req.protocol}://${req.get('host') ?? '127.0.0.1'}`;
    const serveCard =
      (provider: (req: Request) => Promise<AgentCard | undefined>): RequestHandler =>
      (req, res, next) => {
        void provider(req)
          .then((card) => {
            if (!card) return rpcError(req, res, 404, -32601, `no A2A agent at ${req.originalUrl}`);
            // A 1.x client gets the card in the protocol's JSON form; others (no header: 0.3) the 0.3 card.
            if (/^1(\.|$)/.test(req.header('A2A-Version') ?? '')) {
              res.setHeader('Cache-Control', 'public, max-age=60');
              res.append('Vary', 'A2A-Version');
              return void res.status(200).json(AgentCard.toJSON(card));
            }
            agentCardHandler({
              agentCardProvider: async () => card,
              cache: { maxAge: 60 },
              legacyCompat: { enabled: true },
            })(req, res, next);
          })
          .catch((err: unknown) => {
            this.log.warn({ err, correlationId: correlationIdOf(req) }, 'agent card unavailable');
            rpcError(req, res, 503, -32603, 'the agent card cannot be built now (the dispatcher does not answer)');
          });
      };
    r.use(
      CARD_PATH,
      serveCard((req) => this.directoryCard(baseOf(req))),
    );
    r.use(
      `${A2A_BASE}/:endpoint${CARD_PATH}`,
      serveCard((req) => this.card(String(req.params.endpoint), baseOf(req))),
    );
    r.use(`${A2A_BASE}/:endpoint`, (req, res, next) => {
      if (req.path !== '/' && req.path !== '') return next();
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST');
        return rpcError(req, res, 405, -32600, 'A2A JSON-RPC takes POST');
      }
      // 1. who: a key is required when auth is on; 2. what it may do: by the JSON-RPC method.
      if (this.options.auth.enabled) {
        const key = (req as unknown as Partial<GatewayRequest>).apiKey;
        if (!key)
          return rpcError(
            req,
            res,
            401,
            -32000,
            (req as unknown as AuthRequest)[AUTH_FAILED]
              ? 'the API key is invalid or revoked'
              : 'an API key is required (Authorization: Bearer sy_...)',
          );
        const need = roleForMethod((req.body as { method?: unknown } | undefined)?.method);
        const have = roleSchema.safeParse(key.role);
        if (!have.success || !roleSatisfies(have.data, need))
          return rpcError(req, res, 403, -32000, `this call needs the ${need} role`, { required_role: need });
      }
      // 3. a body the gateway's parser refused (not JSON, too large, in a coding, charset or type
      // it does not read) is a JSON-RPC parse error, with the HTTP status the REST routes give it.
      const inputError = deferredInputError(req);
      const inputStatus =
        inputError instanceof HttpException ? inputError.getStatus() : (inputError as { status?: number })?.status;
      if (inputError !== undefined)
        return rpcError(
          req,
          res,
          inputStatus === 413 || inputStatus === 415 ? inputStatus : 400,
          -32700,
          `the body is not acceptable JSON: ${(inputError as Error).message ?? 'parse error'}`,
        );
      // 3b. a task or config id is a name, not a document: the SDK echoes an unknown one in its error.
      const tooLong = overlongIdOf((req.body as { params?: unknown } | undefined)?.params);
      if (tooLong !== undefined)
        return rpcError(req, res, 400, -32602, `params.${tooLong} is longer than ${A2A_ID_MAX_CHARS} characters`);
      // 4. a stream holds a slot of the caller's share while it is open, and any other call while
      // it runs (a blocking message/send until its work ends): 429 / 503 past it.
      const streaming = STREAM_METHODS.has(String((req.body as { method?: unknown } | undefined)?.method));
      let release: () => void;
      try {
        release = (streaming ? this.streams : this.heldCalls).take(connectionHolderOf(req, req.ip));
      } catch (err) {
        const refused = err as AppError;
        const retryAfter = retryAfterSeconds(refused.details.retry_after_ms);
        if (retryAfter !== undefined) res.setHeader('Retry-After', retryAfter);
        return rpcError(req, res, errorCodes[refused.code] ?? 429, -32000, refused.message, refused.details);
      }
      res.on('close', release);
      if (res.destroyed) release();
      if (streaming) {
        // The key was checked once, as the stream opened; a task can stream for hours (a wait
        // step): the stream ends when the key is revoked.
        const keyId = (req as unknown as Partial<GatewayRequest>).apiKey?.id;
        if (keyId !== undefined) {
          const unwatch = this.keys.whileActive(keyId, () => {
            this.log.info({ keyId, correlationId: correlationIdOf(req) }, 'A2A stream ended: its API key was revoked');
            res.destroy();
          });
          res.on('close', unwatch);
          if (res.destroyed) unwatch(); // the client left before we listened
        }
      }
      const name = String(req.params.endpoint);
      void this.endpoint(name)
        .then((ep) => {
          if (!ep) {
            release();
            return rpcError(req, res, 404, -32601, `no A2A agent named ${name}`);
          }
          ep.rpc(req, res, next);
        })
        .catch((err: unknown) => {
          this.log.warn({ err, correlationId: correlationIdOf(req) }, 'A2A endpoint unavailable');
          rpcError(req, res, 503, -32603, 'the A2A endpoint is unavailable now (the dispatcher does not answer)');
        });
    });
    return r;
  }
}
