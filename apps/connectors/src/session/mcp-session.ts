import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  ErrorCode,
  PingRequestSchema,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ToolListChangedNotificationSchema,
  type CallToolResult,
  type GetPromptResult,
  type Prompt,
  type ReadResourceResult,
  type Resource,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import {
  AppError,
  backoffMs,
  logAtMostEvery,
  type Logger,
  sandboxed,
  type StdioSandbox,
  valueNestsDeeperThan,
} from '@switchyard/platform';
import type { McpServerConfig } from '../registry/schema.js';
import { unconfiguredReason } from '../registry/load.js';
import { mcpEvent, SafeMcpSchemaValidator, type McpEventSink, type McpHealth } from '@switchyard/contracts';
import { causeCode, errorText, isConnectionLoss, isSessionExpired, toAppError } from '../errors.js';
import { fetchWithOwnSignals } from './own-signal-fetch.js';
import { fetchWithResponseCap } from './capped-fetch.js';
import { UnaskedTraffic } from './unasked-traffic.js';
import { listedItemName, MAX_LISTED_ITEM_DEPTH } from './listed-depth.js';

/** Health of one server as the session sees it. */
export interface McpSessionHealth {
  readonly server: string;
  readonly state: McpHealth;
  /** Last connection / ping / transport error (message only, never secrets). */
  readonly last_error?: string;
  /** Round trip of the last successful ping or connect handshake, in ms. */
  readonly response_ms?: number;
  /** When the current connection was made (ISO), while connected. */
  readonly connected_since?: string;
  /** Pid of the stdio child, while running. */
  readonly pid?: number;
  /** Reconnect attempts since the connection was lost. */
  readonly reconnect_attempt: number;
}

export interface McpSessionOptions {
  readonly config: McpServerConfig;
  readonly logger: Logger;
  /** McpServerWentDown / McpServerRecovered go here. Must not throw. */
  readonly onEvent?: McpEventSink;
  readonly clientInfo?: { readonly name: string; readonly version: string };
  /** Where stdio servers run (see StdioSandbox); none: as plain children. */
  readonly stdioSandbox?: StdioSandbox;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  /** Per-request bound; default the server's `timeouts.call_ms`. */
  readonly timeoutMs?: number;
  /** Sent as `_meta.correlationId`, so the server's own record of the call carries the request's id. */
  readonly correlationId?: string;
  /**
   * Sent as `_meta.actor`: the person the call is for (`apikey:<id>`, `token:<name>`), so a server
   * that keeps something on their behalf (the automation server's schedules) can name its owner.
   */
  readonly actor?: string;
  /**
   * Sent as `_meta["io.switchyard/idempotency_key"]`: the call's key (a workflow step's, a keyed
   * request's), the same on every repeat of the call. A server whose effects take a key (the
   * automation server's sends) uses it when the arguments name none, so a repeat after a restart,
   * which this process cannot answer from memory, is recognised by the server and not done again.
   */
  readonly idempotencyKey?: string;
}

/** The `_meta` entry that carries a call's idempotency key upstream (namespaced, as MCP asks of `_meta` keys). */
export const IDEMPOTENCY_KEY_META = 'io.switchyard/idempotency_key';

type Phase = 'idle' | 'connecting' | 'connected' | 'backoff' | 'closed' | 'unconfigured';

interface Live {
  readonly client: Client;
  readonly transport: Transport;
  readonly gen: number;
}

/**
 * One MCP server connection: a single SDK `Client` over stdio or Streamable HTTP.
 *
 * - Connects at `start()` (or lazily on the first call), then lists and caches tools,
 *   resources and prompts; re-lists on `notifications/*_list_changed` and after every reconnect.
 * - Notices a dead server (transport close, stdio child exit, connection errors on a call,
 *   failing pings) and reconnects by itself with jittered exponential backoff.
 * - While it is down every call fails at once with AppError('unavailable', fail_fast):
 *   no caller waits for a timeout against a server that is known to be gone.
 * - Health: `up | degraded | down | unconfigured`, with last error and ping time.
 *
 * No retries or breaker here: that is the resilience layer's job (McpConnector).
 */
export class McpSession {
  readonly name: string;
  private readonly log: Logger;
  /** A listing (all its pages) keeps at most max_response_bytes of JSON. */
  private readonly listBound: ListBound;
  /** Checks results against the server's output schemas without letting its patterns stall us (see SafeMcpSchemaValidator). */
  private readonly outputSchemas: SafeMcpSchemaValidator;
  private phase: Phase = 'idle';
  private live: Live | undefined;
  private gen = 0;
  private connecting: Promise<void> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  /** performance.now() of the last answered ping (the interval's or a health check's). */
  private lastPingAt = -Infinity;
  /** Re-lists asked for by the server's list_changed notices, one in flight per kind (see relist). */
  private readonly relists = new Map<ListKind, { running: boolean; again: boolean; lastStart: number }>();
  private readonly relistFailureLog = logAtMostEvery(10_000);
  private readonly misbehaviourLog = logAtMostEvery(10_000);
  /** Connections dropped for unasked traffic in a row (see misbehaved): each backs off longer. */
  private strikes = 0;
  private lastStrikeAt = -Infinity;
  private attempt = 0;
  private lastError: string | undefined;
  private responseMs: number | undefined;
  private slow = false;
  private pingTimeouts = 0;
  private connectedSince: Date | undefined;
  private downSince: number | undefined;
  /** Whether WentDown was reported for the current outage (so Recovered pairs with it). */
  private reportedDown = false;
  private everConnected = false;
  /** A session renewal is in progress: if it fails, the outage starts from `up`. */
  private renewing = false;
  private toolCache: Tool[] = [];
  private resourceCache: Resource[] = [];
  private promptCache: Prompt[] = [];
  private probeQueued = false;
  private readonly listeners = new Set<(h: McpSessionHealth) => void>();

  constructor(private readonly opts: McpSessionOptions) {
    this.name = opts.config.name;
    this.log = opts.logger.child({ component: 'mcp-session', server: this.name });
    this.listBound = {
      maxChars: opts.config.max_response_bytes,
      onCut: (kind, kept) =>
        this.log.warn(
          { kind, kept, max_response_bytes: opts.config.max_response_bytes },
          `the server's ${kind} list is over max_response_bytes: only the first pages are kept`,
        ),
      onTooDeep: (kind, names) =>
        this.log.warn(
          { kind, left_out: names.slice(0, 10), count: names.length, max_depth: MAX_LISTED_ITEM_DEPTH },
          `the server lists ${names.length} ${kind} nested deeper than ${MAX_LISTED_ITEM_DEPTH} levels, left out: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', ...' : ''}`,
        ),
    };
    this.outputSchemas = new SafeMcpSchemaValidator((why) =>
      this.log.warn({ why }, "a tool's output schema cannot be used: its results are not checked against it"),
    );
    const reason = opts.config.enabled ? unconfiguredReason(opts.config) : `${this.name} is disabled in the registry`;
    if (reason) {
      this.phase = 'unconfigured';
      this.lastError = reason;
    }
  }

  get config(): McpServerConfig {
    return this.opts.config;
  }

  /** Connect now. Resolves after the first attempt either way; a failure schedules reconnects. */
  async start(): Promise<void> {
    if (this.phase !== 'idle') return;
    await this.connect().catch(() => undefined);
  }

  /** Disconnect and stop reconnecting; later calls fail with unavailable. */
  async close(): Promise<void> {
    if (this.phase === 'closed') return;
    const wasUnconfigured = this.phase === 'unconfigured';
    this.phase = wasUnconfigured ? 'unconfigured' : 'closed';
    this.gen++;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.pingTimer);
    const live = this.live;
    this.live = undefined;
    if (live) await closeQuietly(live);
    if (!wasUnconfigured) this.lastError = 'session closed';
  }

  /** The current health. `degraded`: connected, but pings are slow or timing out. */
  health(): McpSessionHealth {
    const state: McpHealth =
      this.phase === 'unconfigured'
        ? 'unconfigured'
        : this.phase === 'connected'
          ? this.slow
            ? 'degraded'
            : 'up'
          : 'down';
    const pid = this.pid;
    return {
      server: this.name,
      state,
      ...(this.lastError !== undefined && { last_error: this.lastError }),
      ...(this.responseMs !== undefined && { response_ms: this.responseMs }),
      ...(this.connectedSince && this.phase === 'connected' && { connected_since: this.connectedSince.toISOString() }),
      ...(pid !== undefined && { pid }),
      reconnect_attempt: this.attempt,
    };
  }

  /** Called on every health transition (and on ping-time changes of the degraded flag). */
  onHealthChange(listener: (h: McpSessionHealth) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Pid of the running stdio child (tests kill it to simulate a crash). */
  get pid(): number | undefined {
    const t = this.live?.transport;
    return t instanceof StdioClientTransport ? (t.pid ?? undefined) : undefined;
  }

  get isConnected(): boolean {
    return this.phase === 'connected';
  }

  /** Cached tool list of the current connection (empty before the first connect). */
  get tools(): readonly Tool[] {
    return this.toolCache;
  }
  get resources(): readonly Resource[] {
    return this.resourceCache;
  }
  get prompts(): readonly Prompt[] {
    return this.promptCache;
  }

  /** Re-list tools now (also what list_changed triggers). */
  async refreshTools(opts: CallOptions = {}): Promise<readonly Tool[]> {
    return this.op('list_tools', async (c) => {
      this.toolCache = await listAll(c, 'tools', opts.signal, this.timeout(opts), this.listBound);
      return this.toolCache;
    });
  }

  async refreshResources(opts: CallOptions = {}): Promise<readonly Resource[]> {
    return this.op('list_resources', async (c) => {
      this.resourceCache = c.getServerCapabilities()?.resources
        ? await listAll(c, 'resources', opts.signal, this.timeout(opts), this.listBound)
        : [];
      return this.resourceCache;
    });
  }

  async refreshPrompts(opts: CallOptions = {}): Promise<readonly Prompt[]> {
    return this.op('list_prompts', async (c) => {
      this.promptCache = c.getServerCapabilities()?.prompts
        ? await listAll(c, 'prompts', opts.signal, this.timeout(opts), this.listBound)
        : [];
      return this.promptCache;
    });
  }

  /**
   * Call a tool. A result with `isError: true` is returned as is (the server worked; the
   * tool refused): the caller decides, and nothing here retries it.
   */
  async callTool(tool: string, args: Record<string, unknown>, opts: CallOptions = {}): Promise<CallToolResult> {
    return this.op('call_tool', async (c) => {
      const res = await c.callTool(
        {
          name: tool,
          arguments: args,
          ...(opts.correlationId || opts.actor || opts.idempotencyKey
            ? {
                _meta: {
                  ...(opts.correlationId ? { correlationId: opts.correlationId } : {}),
                  ...(opts.actor ? { actor: opts.actor } : {}),
                  ...(opts.idempotencyKey ? { [IDEMPOTENCY_KEY_META]: opts.idempotencyKey } : {}),
                },
              }
            : {}),
        },
        undefined,
        this.requestOptions(opts),
      );
      return res as CallToolResult;
    });
  }

  async readResource(uri: string, opts: CallOptions = {}): Promise<ReadResourceResult> {
    return this.op('read_resource', (c) => c.readResource({ uri }, this.requestOptions(opts)));
  }

  async getPrompt(name: string, args: Record<string, string>, opts: CallOptions = {}): Promise<GetPromptResult> {
    return this.op('get_prompt', (c) => c.getPrompt({ name, arguments: args }, this.requestOptions(opts)));
  }

  /** Protocol `ping`; returns the round trip in ms and updates health. */
  async ping(opts: CallOptions = {}): Promise<number> {
    return this.op('ping', async (c) => {
      const t0 = performance.now();
      await c.ping(this.requestOptions(opts));
      const ms = Math.round(performance.now() - t0);
      this.notePing(ms);
      return ms;
    });
  }

  // ---- internals ---------------------------------------------------------------------------

  private timeout(opts: CallOptions): number {
    return opts.timeoutMs ?? this.opts.config.timeouts.call_ms;
  }

  private requestOptions(opts: CallOptions): { signal?: AbortSignal; timeout: number; maxTotalTimeout: number } {
    const timeout = this.timeout(opts);
    return { ...(opts.signal && { signal: opts.signal }), timeout, maxTotalTimeout: timeout };
  }

  /**
   * Run one operation on the live client; a connection loss marks the session down and
   * starts reconnecting. An HTTP server that forgot our session gets a new one at once
   * and the operation runs once more on it (the server is alive, no outage to report).
   */
  private async op<T>(op: string, fn: (client: Client) => Promise<T>, renewed = false): Promise<T> {
    const live = await this.acquire(op);
    try {
      return await fn(live.client);
    } catch (err) {
      if (!renewed && isSessionExpired(err) && (await this.renew(live.gen))) return this.op(op, fn, true);
      // Our connection was closed under us by a renewal another call started: the server had
      // forgotten that session, so this request was refused too; run it on the new session.
      if (!renewed && live.gen !== this.gen && (this.renewing || this.phase === 'connected') && isConnectionLoss(err)) {
        await this.connecting?.catch(() => undefined);
        if (this.phase === 'connected') return this.op(op, fn, true);
      }
      if (isConnectionLoss(err)) this.lost(live.gen, err);
      throw toAppError(err, this.name, op);
    }
  }

  /** Replace the connection `gen` with a fresh one (callers that raced here share the attempt). True when connected. */
  private async renew(gen: number): Promise<boolean> {
    if (gen === this.gen && this.phase === 'connected') {
      this.log.info({}, 'MCP session expired on the server: opening a new one');
      this.gen++;
      const live = this.live;
      this.live = undefined;
      clearInterval(this.pingTimer);
      if (live) void closeQuietly(live);
      this.renewing = true;
      this.phase = 'idle';
      void this.connect().catch(() => undefined);
    }
    await this.connecting?.catch(() => undefined);
    return this.phase === 'connected';
  }

  private async acquire(op: string): Promise<Live> {
    // Lazy first connect: the first caller waits for it (bounded by connect_ms).
    if (this.phase === 'idle') await this.connect().catch(() => undefined);
    // So does everyone while a session renewal (server alive, session forgotten) is under way.
    else if (this.phase === 'connecting' && (!this.everConnected || this.renewing) && this.connecting)
      await this.connecting.catch(() => undefined);
    if (this.phase === 'connected' && this.live) return this.live;
    const state = this.phase === 'unconfigured' ? 'unconfigured' : 'down';
    const why = this.lastError ?? 'not connected';
    throw new AppError(
      'unavailable',
      state === 'unconfigured'
        ? `MCP server ${this.name} is unconfigured: ${why}`
        : `MCP server ${this.name} is down: ${why}`,
      { server: this.name, op, health: state, fail_fast: true },
      // A server that is not configured stays so until someone configures it: a retry cannot help.
      state !== 'unconfigured',
    );
  }

  private connect(): Promise<void> {
    if (this.connecting) return this.connecting;
    if (this.phase === 'closed' || this.phase === 'unconfigured') return Promise.resolve();
    this.phase = 'connecting';
    const gen = ++this.gen;
    this.connecting = this.doConnect(gen).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async doConnect(gen: number): Promise<void> {
    const cfg = this.opts.config;
    const t0 = performance.now();
    const transport = this.makeTransport();
    const client = new Client(this.opts.clientInfo ?? { name: 'switchyard-connectors', version: '0.1.0' }, {
      capabilities: {},
      jsonSchemaValidator: this.outputSchemas,
    });
    const live: Live = { client, transport, gen };
    const unasked = new UnaskedTraffic((reason) => this.misbehaved(live, reason));
    client.onclose = () => this.lost(gen, new Error('connection closed (server exited or transport closed)'));
    client.onerror = (err) => this.transportError(gen, err, unasked);
    // Requests from the server are answered within a budget (each answer is a POST over HTTP);
    // past it the connection is dropped and nothing more is answered on it.
    client.fallbackRequestHandler = (req, extra) => {
      if (!unasked.request(req.method)) return untilAborted(extra.signal);
      // As the SDK answers a method it has no handler for: we offer none (capabilities: {}).
      return Promise.reject(Object.assign(new Error('Method not found'), { code: ErrorCode.MethodNotFound }));
    };
    client.setRequestHandler(PingRequestSchema, (_req, extra) =>
      unasked.request('ping') ? {} : untilAborted(extra.signal),
    );
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => this.relist(gen, 'tools'));
    client.setNotificationHandler(ResourceListChangedNotificationSchema, () => this.relist(gen, 'resources'));
    client.setNotificationHandler(PromptListChangedNotificationSchema, () => this.relist(gen, 'prompts'));
    try {
      await withDeadline(
        client.connect(transport, { timeout: cfg.timeouts.connect_ms }),
        cfg.timeouts.connect_ms,
        'connect',
      );
      if (gen !== this.gen) throw new Error('superseded');
      const caps = client.getServerCapabilities();
      const t = cfg.timeouts.call_ms;
      // Lists are part of connecting: a session is `up` only once we know what it offers.
      const [tools, resources, prompts] = await Promise.all([
        caps?.tools ? listAll(client, 'tools', undefined, t, this.listBound) : Promise.resolve([] as Tool[]),
        caps?.resources
          ? listAll(client, 'resources', undefined, t, this.listBound).catch(() => [] as Resource[])
          : Promise.resolve([] as Resource[]),
        caps?.prompts
          ? listAll(client, 'prompts', undefined, t, this.listBound).catch(() => [] as Prompt[])
          : Promise.resolve([] as Prompt[]),
      ]);
      if (gen !== this.gen) throw new Error('superseded');
      this.toolCache = tools;
      this.resourceCache = resources;
      this.promptCache = prompts;
    } catch (err) {
      await closeQuietly(live, true);
      if (gen !== this.gen) return; // closed or superseded meanwhile: not a failure of this server
      this.live = undefined;
      // Dropped for unasked traffic while connecting: that is the reason, not the closed connection.
      const why = unasked.tripped !== undefined ? new Error(unasked.tripped) : err;
      const e = toAppError(why, this.name, 'connect');
      this.lastError = errorText(why);
      // The cause's code too: `fetch failed` alone does not tell a refused port from a process out of descriptors (EMFILE).
      this.log.warn({ err: e.message, code: causeCode(why), attempt: this.attempt }, 'MCP connect failed');
      this.enterDown();
      throw e;
    }
    this.live = live;
    this.phase = 'connected';
    this.renewing = false;
    this.everConnected = true;
    this.connectedSince = new Date();
    this.responseMs = Math.round(performance.now() - t0);
    this.slow = false;
    this.pingTimeouts = 0;
    const wasDown = this.reportedDown;
    const downFor = this.downSince !== undefined ? Date.now() - this.downSince : 0;
    this.attempt = 0;
    this.reportedDown = false;
    this.downSince = undefined;
    this.lastError = undefined;
    this.log.info({ tools: this.toolCache.length, ms: this.responseMs, pid: this.pid }, 'MCP server connected');
    if (wasDown) {
      this.emit(
        mcpEvent('McpServerRecovered', {
          server: this.name,
          down_for_ms: downFor,
          response_ms: this.responseMs,
          at: new Date().toISOString(),
        }),
      );
    }
    this.startPings(gen);
    this.notify();
  }

  private makeTransport(): Transport {
    const cfg = this.opts.config;
    const t = cfg.transport;
    if (t.kind === 'stdio') {
      const run = this.opts.stdioSandbox
        ? sandboxed(this.opts.stdioSandbox, t.command, t.args, t.writable)
        : { command: t.command, args: t.args };
      const transport = new StdioClientTransport({
        command: run.command,
        args: run.args,
        env: t.env,
        ...(t.cwd && { cwd: t.cwd }),
        stderr: 'pipe',
        // One message (a line) at most about this long: past it the SDK drops it and reports an
        // error. The SDK counts what it holds plus the chunk just read (up to 64 KiB of the pipe),
        // so a message under the bound straddling a chunk needs the margin.
        maxBufferSize: cfg.max_response_bytes + 256 * 1024,
      });
      // The child's stderr is its log: keep it, at debug, one line per entry.
      let buf = '';
      transport.stderr?.on('data', (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (line) this.log.debug({ stderr: line.slice(0, 500) }, 'MCP server stderr');
        }
        if (buf.length > 8192) buf = buf.slice(-4096);
      });
      return transport;
    }
    const headers: Record<string, string> = cfg.auth_token ? { Authorization: `Bearer ${cfg.auth_token}` } : {};
    return new StreamableHTTPClientTransport(new URL(t.url), {
      requestInit: { headers },
      // One abort listener on the transport's signal, not one per call (own-signal-fetch.ts); what
      // the server sends is bounded (capped-fetch.ts).
      fetch: fetchWithResponseCap(fetchWithOwnSignals(), cfg.max_response_bytes),
      // The SSE side stream's own reconnects: few, since the session reconnects as a whole.
      reconnectionOptions: {
        initialReconnectionDelay: 200,
        maxReconnectionDelay: 2_000,
        reconnectionDelayGrowFactor: 2,
        maxRetries: 2,
      },
    });
  }

  /** The connection is gone (or unusable): drop it, report, and schedule a reconnect. `quiet`: the caller logged it. */
  private lost(gen: number, err: unknown, quiet = false): void {
    if (gen !== this.gen || this.phase !== 'connected') return;
    this.gen++;
    const live = this.live;
    this.live = undefined;
    clearInterval(this.pingTimer);
    if (live) void closeQuietly(live, true);
    this.lastError = errorText(err);
    if (!quiet) this.log.warn({ err: this.lastError, code: causeCode(err) }, 'MCP server connection lost');
    this.enterDown();
  }

  /**
   * The server sent more unasked messages than a budget allows (unasked-traffic.ts): drop its
   * connection with that reason (it is reported down) and reconnect after the backoff, which
   * grows each time it does it again (a successful connect in between does not reset it).
   */
  private misbehaved(live: Live, reason: string): void {
    if (live.gen !== this.gen) return;
    const now = performance.now();
    if (now - this.lastStrikeAt > STRIKES_FORGOTTEN_AFTER_MS) this.strikes = 0;
    this.strikes++;
    this.lastStrikeAt = now;
    this.misbehaviourLog((held) =>
      this.log.warn({ reason, strikes: this.strikes, heldBack: held }, 'MCP server misbehaves: connection dropped'),
    );
    if (this.phase === 'connected') {
      this.attempt = Math.max(this.attempt, this.strikes - 1);
      this.lost(live.gen, new Error(reason), true);
    } else {
      // Still connecting: that attempt fails with the reason (doConnect) and backs off as usual.
      void live.client.close().catch(() => undefined);
    }
  }

  /** Common path into `down`: report once per outage, then back off and reconnect. */
  private enterDown(): void {
    const previous = this.phase === 'connected' || this.renewing ? (this.slow ? 'degraded' : 'up') : 'down';
    this.renewing = false;
    this.phase = 'backoff';
    this.downSince ??= Date.now();
    if (!this.reportedDown) {
      this.reportedDown = true;
      this.emit(
        mcpEvent('McpServerWentDown', {
          server: this.name,
          previous,
          error: this.lastError ?? 'unknown',
          at: new Date().toISOString(),
        }),
      );
    }
    this.notify();
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const { initial_delay_ms, max_delay_ms } = this.opts.config.reconnect;
    // Equal jitter, so a fleet of connectors does not reconnect in lockstep.
    const delay = backoffMs(this.attempt, { initialMs: initial_delay_ms, maxMs: max_delay_ms, jitter: 'equal' });
    this.attempt++;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (this.phase === 'backoff') void this.connect().catch(() => undefined);
    }, delay);
    this.reconnectTimer.unref();
    this.log.debug({ delay, attempt: this.attempt }, 'MCP reconnect scheduled');
  }

  /** Transport errors do not always mean death (an SSE side stream may drop): probe with a ping to find out. */
  private transportError(gen: number, err: Error, unasked: UnaskedTraffic): void {
    if (gen !== this.gen) return;
    // A message that answers nothing asked: the connection works; counted, not probed.
    const stray = strayMessage(err);
    if (stray) return void unasked.stray(stray);
    if (this.phase !== 'connected') return;
    this.log.debug({ err: err.message }, 'MCP transport error');
    if (isConnectionLoss(err) && this.opts.config.transport.kind === 'stdio') return this.lost(gen, err);
    if (this.probeQueued) return;
    this.probeQueued = true;
    setTimeout(() => {
      this.probeQueued = false;
      if (gen === this.gen && this.phase === 'connected') void this.probe(gen);
    }, 50).unref();
  }

  private startPings(gen: number): void {
    clearInterval(this.pingTimer);
    const every = this.opts.config.health.ping_interval_ms;
    if (every <= 0) return;
    this.pingTimer = setInterval(() => void this.probe(gen), every);
    this.pingTimer.unref();
  }

  /** One health ping: slow -> degraded; two timeouts in a row or a connection error -> lost. */
  private async probe(gen: number): Promise<void> {
    const live = this.live;
    if (!live || live.gen !== gen || this.phase !== 'connected') return;
    // Pinged lately by someone else (the monitor's health probes, every few seconds): this one
    // would tell nothing new.
    if (performance.now() - this.lastPingAt < this.opts.config.health.ping_interval_ms / 2) return;
    const timeout = Math.min(
      this.opts.config.timeouts.call_ms,
      Math.max(this.opts.config.health.degraded_after_ms * 2, 5_000),
    );
    const t0 = performance.now();
    try {
      await live.client.ping({ timeout });
      this.notePing(Math.round(performance.now() - t0));
    } catch (err) {
      if (gen !== this.gen) return;
      if (isConnectionLoss(err)) return this.lost(gen, err);
      this.pingTimeouts++;
      this.lastError = errorText(err);
      if (this.pingTimeouts >= 2) return this.lost(gen, new Error(`server stopped answering pings: ${this.lastError}`));
      this.setSlow(true);
    }
  }

  private notePing(ms: number): void {
    this.lastPingAt = performance.now();
    this.responseMs = ms;
    this.pingTimeouts = 0;
    this.setSlow(ms > this.opts.config.health.degraded_after_ms);
  }

  private setSlow(slow: boolean): void {
    if (slow === this.slow) return;
    this.slow = slow;
    this.notify();
  }

  /**
   * A server's list_changed notice: list again, one re-list of a kind at a time and at most one
   * per RELIST_MIN_GAP_MS; notices that come meanwhile make one more re-list after it. A server
   * sending the notice in a loop made one full listing per notice, all at once (3,600 listings of
   * 700 KB in 20 s: gigabytes of memory and a starved event loop for everyone).
   */
  private relist(gen: number, what: ListKind): void {
    if (gen !== this.gen) return;
    let r = this.relists.get(what);
    if (!r) this.relists.set(what, (r = { running: false, again: false, lastStart: -Infinity }));
    if (r.running) {
      r.again = true;
      return;
    }
    r.running = true;
    const state = r;
    const wait = Math.max(0, state.lastStart + RELIST_MIN_GAP_MS - performance.now());
    const run = async (): Promise<void> => {
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait).unref());
      state.lastStart = performance.now();
      state.again = false;
      if (gen !== this.gen) return;
      await (what === 'tools'
        ? this.refreshTools()
        : what === 'resources'
          ? this.refreshResources()
          : this.refreshPrompts());
    };
    run()
      .then(
        () => this.log.debug({ what }, 'MCP list changed: re-listed'),
        (err: unknown) =>
          this.relistFailureLog((held) =>
            this.log.warn({ what, err: errorText(err), heldBack: held }, 'MCP re-list failed'),
          ),
      )
      .finally(() => {
        state.running = false;
        // On the session's current connection: a notice of a newer one came while this ran.
        if (state.again) this.relist(this.gen, what);
      });
  }

  private emit(event: Parameters<McpEventSink>[0]): void {
    try {
      this.opts.onEvent?.(event);
    } catch (err) {
      this.log.error({ err: errorText(err), type: event.type }, 'onEvent threw');
    }
  }

  private notify(): void {
    const h = this.health();
    for (const l of this.listeners) {
      try {
        l(h);
      } catch (err) {
        this.log.error({ err: errorText(err) }, 'health listener threw');
      }
    }
  }
}

type ListKind = 'tools' | 'resources' | 'prompts';

/** A server that stayed within its budgets this long after its last dropped connection starts its backoff afresh. */
const STRIKES_FORGOTTEN_AFTER_MS = 5 * 60_000;

/** The SDK reports a message that answers nothing asked to onerror; which kind, or undefined for any other error. */
function strayMessage(err: Error): string | undefined {
  if (err.message.startsWith('Received a progress notification for an unknown token'))
    return 'notifications/progress of no call';
  if (err.message.startsWith('Received a response for an unknown message ID')) return 'a response to no request';
  return undefined;
}

/** Never settles until `signal` aborts (the connection closed): a request the server will get no answer to. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const stop = (): void => reject(new Error('connection dropped: not answered'));
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
  });
}

/** The least time between two re-lists of one kind that a server's list_changed notices ask for. */
const RELIST_MIN_GAP_MS = 1_000;
type ListItem<K extends ListKind> = K extends 'tools' ? Tool : K extends 'resources' ? Resource : Prompt;

/** Page through a list endpoint (servers may paginate with nextCursor). */
/** How much of a server's listing is kept: its pages add up to at most `maxChars` of JSON; `onCut` hears of the rest. */
interface ListBound {
  readonly maxChars: number;
  readonly onCut: (kind: ListKind, kept: number) => void;
  /** Items left out for nesting deeper than MAX_LISTED_ITEM_DEPTH, by name. */
  readonly onTooDeep: (kind: ListKind, names: string[]) => void;
}

async function listAll<K extends ListKind>(
  client: Client,
  kind: K,
  signal: AbortSignal | undefined,
  timeout: number,
  bound: ListBound,
): Promise<ListItem<K>[]> {
  const out: ListItem<K>[] = [];
  let cursor: string | undefined;
  let chars = 0;
  const opts = { ...(signal && { signal }), timeout };
  for (let page = 0; page < 100; page++) {
    const params = cursor ? { cursor } : undefined;
    const res =
      kind === 'tools'
        ? await client.listTools(params, opts)
        : kind === 'resources'
          ? await client.listResources(params, opts)
          : await client.listPrompts(params, opts);
    // Checked before anything stringifies them: the server's other items stay served.
    const items: ListItem<K>[] = [];
    const tooDeep: string[] = [];
    for (const item of (res as Record<string, unknown>)[kind] as ListItem<K>[]) {
      if (valueNestsDeeperThan(item, MAX_LISTED_ITEM_DEPTH)) tooDeep.push(listedItemName(item));
      else items.push(item);
    }
    if (tooDeep.length > 0) bound.onTooDeep(kind, tooDeep);
    // Each page is bounded by max_response_bytes, the pages together too: a server that pages on
    // and on would have us hold a hundred of them.
    chars += JSON.stringify(items).length;
    if (chars > bound.maxChars) {
      bound.onCut(kind, out.length);
      break;
    }
    out.push(...items);
    cursor = res.nextCursor;
    if (!cursor) break;
  }
  return out;
}

/** Close a client; `kill` (a connection we gave up on) SIGKILLs a stdio child instead of the SDK's 2+2 s grace periods. */
async function closeQuietly(live: Live, kill = false): Promise<void> {
  live.client.onclose = undefined;
  live.client.onerror = undefined;
  const t = live.transport;
  if (kill && t instanceof StdioClientTransport && t.pid) {
    try {
      process.kill(t.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await withDeadline(live.client.close(), 3_000, 'close').catch(() => undefined);
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { name: 'AbortError' })),
      ms,
    );
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
