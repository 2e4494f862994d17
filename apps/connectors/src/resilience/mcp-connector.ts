import type {
  CallToolResult,
  GetPromptResult,
  Prompt,
  ReadResourceResult,
  Resource,
  Tool,
} from '@modelcontextprotocol/sdk/types.js';
import {
  AppError,
  isAppError,
  newId,
  pathRoots,
  relativizeDeep,
  REDACTED,
  redactSecretValues,
  redactedHead,
  hideHostPaths,
  type Logger,
  sizePayload,
  type StdioSandbox,
} from '@switchyard/platform';
import type { McpServerConfig } from '../registry/schema.js';
import { McpSession, type McpSessionHealth } from '../session/mcp-session.js';
import {
  filesystemGlobRefusal,
  isAdminListingTool,
  listingSummary,
  mcpEvent,
  type McpBreakerState,
  type McpEvent,
  type McpEventSink,
  type McpHealth,
} from '@switchyard/contracts';
import { CALLERS_DEADLINE, CLAIM_LOST, errorText, toAppError } from '../errors.js';
import { ServerPolicy, type McpQueueStats } from './policy.js';
import { hostShortageError } from './host-shortage.js';

export interface McpConnectorOptions {
  readonly config: McpServerConfig;
  readonly logger: Logger;
  /** Every McpTool* / McpCircuit* / McpServer* event. Must not throw (errors are logged and dropped). */
  readonly onEvent?: McpEventSink;
  /** How long a finished call's result is kept for its idempotency key (default 10 min). */
  readonly idempotencyTtlMs?: number;
  /**
   * The largest result (characters of its JSON) kept for its idempotency key (default 1 MiB, the
   * most one NATS reply carries: a larger one reaches no caller). A larger result is remembered
   * as refused (`result_too_large`), so a retry with the key does not run the tool again.
   */
  readonly maxCachedResultChars?: number;
  /** The characters of all results kept for their keys together (default 64 MiB); the oldest go first. */
  readonly cachedResultsBudgetChars?: number;
  /**
   * Keyed calls shared with the other connectors processes (a NATS KV bucket): a retry with the
   * same key on another process gets the same result, and joins a call still running there.
   * Without it, only this process's cache holds.
   */
  readonly sharedCalls?: SharedCallCache;
  /** Where a stdio server runs (see StdioSandbox). */
  readonly stdioSandbox?: StdioSandbox;
}

/** Which keyed call: per server and tool, as the per-process cache. */
export interface SharedCallId {
  readonly server: string;
  readonly tool: string;
  readonly key: string;
}

/** A cache of keyed calls across processes: `execute` runs in one process per id within the TTL; the others get its outcome. */
/** A shared call's claim as its owner holds it: whether no other process can have taken the key over yet. */
export interface SharedCallLease {
  held(): boolean;
}

export interface SharedCallCache {
  run(id: SharedCallId, execute: (lease: SharedCallLease) => Promise<CallToolResult>): Promise<CallToolResult>;
}

export interface CallToolRequest {
  readonly tool: string;
  readonly arguments?: Record<string, unknown>;
  /** Same key (per server and tool) within the TTL -> the first call's result, the tool runs once. */
  readonly idempotency_key?: string;
  readonly correlation_id?: string;
  /** Who asked (`apikey:<id>`); recorded on the call's events. */
  readonly actor?: string;
  /** For whom a `system:...` actor asks (a workflow's starter): whose turn it takes at a busy server. */
  readonly on_behalf_of?: string;
  /** Arguments recorded as `[redacted]` in the call's events (the server still gets them). */
  readonly private_arguments?: readonly string[];
  /** Per-attempt bound for this call, capped by the server's `timeouts.call_ms`. */
  readonly timeout_ms?: number;
  /**
   * How long the call may wait for a slot before it is refused `rate_limited` (retryable) instead
   * of run; default `timeout_ms` (a caller that times the whole call gave up by then).
   */
  readonly queue_wait_ms?: number;
  /** Told when the call has to wait for a slot and when it leaves the queue (also to a caller joining it by key). */
  readonly onProgress?: (state: CallState) => void;
  readonly signal?: AbortSignal;
}

/** Where a call that had to wait is: in the queue, or running. */
export type CallState = 'queued' | 'started';

/** Health as the outside sees it: the session's, worsened to `degraded` while the breaker is not closed. */
export interface McpConnectorHealth extends Omit<McpSessionHealth, 'state'> {
  readonly state: McpHealth;
  readonly role: McpServerConfig['role'];
  readonly transport: 'stdio' | 'http';
  readonly breaker: McpBreakerState;
  readonly enabled: boolean;
  readonly tools: string[];
  /** Calls running and waiting for a slot, and how long they waited (the bulkhead's queue). */
  readonly queue: McpQueueStats;
}

/** Tool info as listed to callers (the MCP Tool minus nothing: name, description, schemas, annotations). */
export type ToolInfo = Tool;

const IDEMPOTENCY_MAX = 1_000;
const MAX_CACHED_RESULT_CHARS = 1_048_576;
const CACHED_RESULTS_BUDGET_CHARS = 64 * 1_048_576;

/** A finished or running keyed call, kept for its key: `chars` counts once the result is in. */
interface RememberedCall {
  readonly expires: number;
  result: Promise<CallToolResult>;
  chars: number;
}

/**
 * One server behind its resilience policies: the McpSession plus timeout, retry (transient
 * errors only, jittered exponential), circuit breaker and bulkhead, and the events that
 * record every call and every breaker / health transition.
 *
 * A result with `isError: true` is returned (not thrown), never retried, and does not
 * count against the breaker: the server worked, the tool said no. Except a filesystem server's
 * error that its host is short of a resource (`ENOSPC`...: see host-shortage.ts): thrown as
 * `unavailable`, retryable, still outside the breaker.
 */
export class McpConnector {
  readonly name: string;
  readonly session: McpSession;
  private readonly policy: ServerPolicy;
  private readonly log: Logger;
  private probeTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly idempotent = new Map<string, RememberedCall>();
  /** The characters of the results `idempotent` holds (see cachedResultsBudgetChars). */
  private idempotentChars = 0;
  /** The size runCall measured of a result it returned (its redacted JSON), so it is not measured twice. */
  private readonly resultChars = new WeakMap<CallToolResult, number>();
  /** Keyed calls in flight, so a cancel naming the key can stop them (see cancelCall). */
  private readonly running = new Map<string, KeyedFlight>();
  /** Keyed calls in flight that had to wait: where they are and who wants to know. */
  private readonly progress = new Map<string, { state: CallState; listeners: ((s: CallState) => void)[] }>();

  /** A filesystem server's sandbox roots (its absolute path arguments): results and errors show paths relative to them. */
  private readonly roots: string[];

  constructor(private readonly opts: McpConnectorOptions) {
    const t = opts.config.transport;
    this.roots = opts.config.role === 'filesystem' && t.kind === 'stdio' ? pathRoots(t.args.slice(1)) : [];
    this.name = opts.config.name;
    this.log = opts.logger.child({ component: 'mcp-connector', server: this.name });
    this.session = new McpSession({
      config: opts.config,
      logger: opts.logger,
      onEvent: (e) => this.emit(e),
      ...(opts.stdioSandbox && { stdioSandbox: opts.stdioSandbox }),
    });
    const at = () => new Date().toISOString();
    this.policy = new ServerPolicy(opts.config, {
      opened: (lastError) => {
        this.log.warn({ lastError }, 'circuit opened');
        this.emit(
          mcpEvent('McpCircuitOpened', {
            server: this.name,
            last_error: lastError,
            half_open_after_ms: opts.config.breaker.half_open_after_ms,
            at: at(),
          }),
        );
        this.scheduleProbe();
      },
      halfOpened: () => this.emit(mcpEvent('McpCircuitHalfOpened', { server: this.name, at: at() })),
      closed: () => {
        this.log.info({}, 'circuit closed');
        this.emit(mcpEvent('McpCircuitClosed', { server: this.name, at: at() }));
      },
    });
    // Server back while the circuit is open: probe soon rather than waiting for traffic.
    this.session.onHealthChange((h) => {
      if (h.state === 'up' && this.breakerState === 'open') this.scheduleProbe(10);
    });
  }

  get config(): McpServerConfig {
    return this.opts.config;
  }

  get breakerState(): McpBreakerState {
    return this.policy.breakerState;
  }

  async start(): Promise<void> {
    await this.session.start();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.probeTimer);
    await this.session.close();
  }

  /** Current health without any I/O. */
  health(): McpConnectorHealth {
    const h = this.session.health();
    const breaker = this.breakerState;
    const state: McpHealth =
      (h.state === 'up' || h.state === 'degraded') && breaker !== 'closed' ? 'degraded' : h.state;
    return {
      ...h,
      state,
      role: this.opts.config.role,
      transport: this.opts.config.transport.kind,
      breaker,
      enabled: this.opts.config.enabled,
      tools: this.session.tools.map((t) => t.name),
      queue: this.policy.queueStats(),
    };
  }

  /** Ping now (bounded by call_ms, outside the breaker so a health check never trips it), then report health. */
  async checkHealth(): Promise<McpConnectorHealth> {
    if (this.session.isConnected) await this.session.ping().catch(() => undefined);
    return this.health();
  }

  /**
   * Call a tool under the policies. Emits McpToolCalled, then McpToolSucceeded or McpToolFailed.
   * Throws AppError: not_found (unknown tool; details.valid_tools), unavailable (down,
   * unconfigured, circuit open: details.breaker = 'open'), timeout, rate_limited (bulkhead full),
   * validation (the server rejected the params), unavailable (retryable) for a filesystem server
   * short of disk space, memory or descriptors. Any other isError result is returned, not thrown.
   */
  async callTool(req: CallToolRequest): Promise<CallToolResult> {
    const key = req.idempotency_key ? `${req.tool}\u0000${req.idempotency_key}` : undefined;
    if (key) {
      const hit = this.idempotent.get(key);
      if (hit && hit.expires > Date.now()) {
        // A caller sending the call again (after its own restart) joins it: tell it where the call is.
        const p = this.progress.get(key);
        if (p && req.onProgress) {
          p.listeners.push(req.onProgress);
          notify(req.onProgress, p.state);
        }
        return hit.result;
      }
    }
    let run: Promise<CallToolResult>;
    if (req.idempotency_key) {
      const id = req.idempotency_key;
      const flight: KeyedFlight = { stop: new AbortController(), withEffects: false, cancelAsked: undefined };
      this.running.set(id, flight);
      const execute = (lease?: SharedCallLease) => {
        flight.lease = lease;
        const tracked = key ? this.track(key, req.onProgress) : req.onProgress;
        return this.runCall({ ...req, ...(tracked && { onProgress: tracked }) }, flight.stop.signal, flight).finally(
          () => {
            if (this.running.get(id) === flight) this.running.delete(id);
            if (key) this.progress.delete(key);
          },
        );
      };
      const shared = this.opts.sharedCalls;
      run = shared
        ? shared.run({ server: this.name, tool: req.tool, key: id }, execute).finally(() => {
            // Joined a call of another process: nothing of ours ran.
            if (this.running.get(id) === flight) this.running.delete(id);
          })
        : execute();
    } else run = this.runCall(req);
    if (key) {
      const entry = this.remember(key, run);
      run.then(
        (result) => this.settled(key, entry, result),
        // Only a definitive answer is kept: a failed call may be tried again with the same key.
        () => this.forget(key, entry),
      );
    }
    return run;
  }

  /** A keyed call's notices go to every caller that joined it; the state is kept for later joiners. */
  private track(key: string, first: ((s: CallState) => void) | undefined): (s: CallState) => void {
    const entry = { state: 'started' as CallState, listeners: first ? [first] : [] };
    return (state) => {
      entry.state = state;
      if (state === 'queued') this.progress.set(key, entry);
      for (const l of entry.listeners) notify(l, state);
    };
  }

  /**
   * Stop the call in flight under `idempotencyKey`, if this connector runs it. Returns whether
   * there was such a call.
   * - Waiting for a slot, or sent to a read-only tool: the SDK sends the server
   *   `notifications/cancelled`, and the caller gets a `canceled` error at once (not retried, not
   *   counted against the breaker).
   * - Sent to a tool that may have effects (not `readOnlyHint`): it is let finish and the caller
   *   gets its real outcome. The protocol has a canceled request answered by nobody, so cutting it
   *   off would leave its effect unknown: a row inserted after the caller was told "canceled",
   *   which a workflow's compensation, run on that answer, ran too early to remove. No new
   *   attempt of it starts.
   */
  cancelCall(idempotencyKey: string, reason: string): boolean {
    const flight = this.running.get(idempotencyKey);
    if (!flight) return false;
    const why = new AppError('canceled', reason, { server: this.name }, false);
    if (flight.withEffects) {
      flight.cancelAsked = why;
      this.log.info(
        { idempotencyKey, reason },
        'a canceled tool call with effects is already with the server: letting it finish, its outcome stands',
      );
      return true;
    }
    this.log.info({ idempotencyKey, reason }, 'canceling a tool call on request');
    flight.stop.abort(why);
    return true;
  }

  /** `cancel`: aborted by cancelCall; only the attempt in flight sees it, so the policies take it as the tool's answer, not a timeout. */
  private async runCall(req: CallToolRequest, cancel?: AbortSignal, flight?: KeyedFlight): Promise<CallToolResult> {
    const cfg = this.opts.config;
    const callId = newId();
    const args = req.arguments ?? {};
    const t0 = performance.now();
    // Fields, not a child logger: a child per call costs its bindings' serialisation even when nothing is logged.
    const logged = { correlationId: req.correlation_id, callId, tool: req.tool };
    const corr = {
      ...(req.correlation_id ? { correlation_id: req.correlation_id } : {}),
      ...(req.actor ? { actor: req.actor } : {}),
      ...(req.on_behalf_of && req.actor?.startsWith('system:') ? { on_behalf_of: req.on_behalf_of } : {}),
    };
    this.emit(
      mcpEvent('McpToolCalled', {
        server: this.name,
        tool: req.tool,
        call_id: callId,
        arguments: sizePayload(withPrivateHidden(args, req.private_arguments), cfg.payload_log.max_chars),
        ...(req.idempotency_key && { idempotency_key: req.idempotency_key }),
        ...corr,
        at: new Date().toISOString(),
      }),
    );
    const failed = (raw: AppError, attempts: number, outcome: 'error' | 'rejected'): AppError => {
      // A credential an upstream echoed in its error (a request's headers, a path or URL it was
      // given) goes neither into the event nor back to the caller.
      // Credentials first: hiding a path could take the word that marks one ("Bearer").
      const message = this.roots.length
        ? hideHostPaths(redactSecretValues(raw.message), this.roots)
        : redactSecretValues(raw.message);
      const err =
        this.roots.length || message !== raw.message
          ? new AppError(
              raw.code,
              message,
              this.roots.length ? relativizeDeep(raw.details, this.roots) : raw.details,
              raw.retryable,
            )
          : raw;
      const duration = Math.round(performance.now() - t0);
      // What the server's host ran out of (ENOSPC...), so the log says why, not only `unavailable`.
      const ranOutOf = err.details.host_shortage;
      this.log.warn(
        {
          ...logged,
          code: err.code,
          ...(typeof ranOutOf === 'string' && { hostShortage: ranOutOf }),
          attempts,
          duration,
        },
        'MCP tool call failed',
      );
      this.emit(
        mcpEvent('McpToolFailed', {
          server: this.name,
          tool: req.tool,
          call_id: callId,
          duration_ms: duration,
          outcome,
          error_code: err.code,
          error_message: err.message,
          attempts,
          ...corr,
          at: new Date().toISOString(),
        }),
      );
      return err;
    };
    let tool: Tool;
    try {
      this.assertConfigured('call_tool');
      tool = await this.findTool(req.tool);
      // A glob the filesystem server would match without bound (see filesystem-globs.ts) is
      // refused here, before it reaches the server every caller shares.
      const globRefused = this.opts.config.role === 'filesystem' ? filesystemGlobRefusal(args) : undefined;
      if (globRefused)
        throw new AppError('validation', `MCP server ${this.name}: ${globRefused}`, {
          server: this.name,
          tool: req.tool,
        });
    } catch (err) {
      const e = toAppError(err, this.name, 'call_tool');
      throw failed(e, 0, e.code === 'not_found' || e.details.breaker === 'open' ? 'rejected' : 'error');
    }
    // A timed-out call may have run: repeat it only when the tool says that is harmless. A key
    // does not: it lets a repeat of the request share this call's result, but the server, asked
    // again, runs the effect again (a timed-out insert made three rows).
    const retryTimeouts = tool.annotations?.readOnlyHint === true || tool.annotations?.idempotentHint === true;
    let result: CallToolResult;
    let attempts: number;
    try {
      // The caller's deadline for the wait (its queue budget, else its timeout): a call that waited in the
      // queue past it is not run, since nobody waits for its answer any more (under load, running it would
      // only delay the calls behind it). Only the first attempt is checked: retries run in the slot already
      // held, on their own timeout.
      const maxWait = req.queue_wait_ms ?? req.timeout_ms;
      const deadline = maxWait !== undefined ? t0 + maxWait : undefined;
      const person = personOf(req);
      let first = true;
      ({ value: result, attempts } = await this.policy.execute(
        (signal) => {
          if (cancel?.aborted) throw canceledError(cancel, this.name, req.tool);
          // Canceled while an earlier attempt with effects ran: that one's outcome was awaited and is
          // the answer (it failed: a timed-out one may have taken effect, which "canceled" would hide); no other starts.
          if (flight?.cancelAsked)
            throw flight.lastError ?? canceledError(AbortSignal.abort(flight.cancelAsked), this.name, req.tool);
          const queued = first;
          first = false;
          if (queued && deadline !== undefined && performance.now() > deadline) {
            throw new AppError(
              'rate_limited',
              `MCP server ${this.name}: the call waited for a slot past its caller's ${maxWait} ms; not run`,
              { server: this.name, tool: req.tool, queue: 'expired', retry_after_ms: 1_000 },
              true,
            );
          }
          // Held up (paused, or waiting for a slot) until another connectors process could take the
          // key over: that one runs the call; sent from here too it would run twice.
          if (flight?.lease && !flight.lease.held()) {
            throw new AppError(
              'unavailable',
              `MCP server ${this.name}: this process no longer holds the call's key (held up past its lease); not sent`,
              { server: this.name, tool: req.tool, [CLAIM_LOST]: true, fail_fast: true },
              true,
            );
          }
          // From here the server has it: a cancel lets a tool with effects finish (see cancelCall).
          if (flight) flight.withEffects = tool.annotations?.readOnlyHint !== true;
          return this.session
            .callTool(req.tool, args, {
              signal: anySignal(anySignal(signal, req.signal), cancel),
              timeoutMs: Math.min(req.timeout_ms ?? cfg.timeouts.call_ms, cfg.timeouts.call_ms),
              ...(req.correlation_id ? { correlationId: req.correlation_id } : {}),
              ...(person ? { actor: person } : {}),
              // The server's own record of a keyed effect then recognises a repeat this process forgot (a restart).
              ...(req.idempotency_key ? { idempotencyKey: req.idempotency_key } : {}),
            })
            .catch((err: unknown) => {
              // Stopped on request: say so (not a timeout, not the server's fault, nothing to retry).
              if (cancel?.aborted) throw canceledError(cancel, this.name, req.tool);
              const e = toAppError(err, this.name, 'call_tool');
              if (flight) flight.lastError = e;
              if (e.code === 'timeout' && req.timeout_ms !== undefined && req.timeout_ms < cfg.timeouts.call_ms / 2)
                throw new AppError(e.code, e.message, { ...e.details, [CALLERS_DEADLINE]: true }, e.retryable);
              throw err;
            });
        },
        {
          retryTimeouts,
          caller: fairnessKey(req),
          ...(cancel && { leaveQueueOn: cancel }),
          ...(req.signal && { signal: req.signal }),
          ...(req.onProgress && {
            onQueued: () => req.onProgress!('queued'),
            onStarted: () => req.onProgress!('started'),
          }),
        },
      ));
    } catch (err) {
      const n = (err as { attempts?: number }).attempts ?? 1;
      // Canceled while it waited for a slot: it left the queue without running.
      const e =
        cancel?.aborted && n === 0
          ? canceledError(cancel, this.name, req.tool)
          : toAppError(err, this.name, 'call_tool');
      throw failed(e, n, e.details.breaker === 'open' || e.code === 'rate_limited' ? 'rejected' : 'error');
    }
    result = relativizeDeep(result, this.roots);
    // A tool's error result is an error text too (server-filesystem answers its refusals so):
    // absolute paths outside the sandbox are hidden as in thrown errors.
    if (result.isError && this.roots.length) result = hideHostPathsInError(result, this.roots);
    // The filesystem server answers a call its host has no room for (a full disk, no descriptor
    // left) with an error result, as it answers a refusal; but the same call works once the host
    // has the resource again. So it is `unavailable`, retryable, for the caller (a step's retry
    // policy, a REST client's Retry-After) and not kept for the call's key; not retried here (a
    // disk is not freed within the retry's few hundred ms), and not counted against the breaker:
    // the server works, and its reads go on working. Only this role's: its tools may be repeated
    // after such a failure (write_file rewrites the whole file, edit_file renames a full copy into
    // place, create_directory is idempotent), and the text is its own host's; another server's
    // tool may have done part of its effect, or relay a machine nobody here knows recovers.
    const shortage =
      result.isError && cfg.role === 'filesystem'
        ? hostShortageError(this.name, req.tool, firstText(result))
        : undefined;
    if (shortage) throw failed(shortage, attempts, 'error');
    const duration = Math.round(performance.now() - t0);
    const sized = sizePayload(result, cfg.payload_log.max_chars);
    this.resultChars.set(result, sized.size);
    if (result.isError) {
      const text = firstText(result);
      this.log.info({ ...logged, attempts, duration }, 'MCP tool returned an error result');
      this.emit(
        mcpEvent('McpToolFailed', {
          server: this.name,
          tool: req.tool,
          call_id: callId,
          duration_ms: duration,
          outcome: 'tool_error',
          error_code: 'tool_error',
          error_message: redactedHead(text, 500),
          attempts,
          result: sized,
          ...corr,
          at: new Date().toISOString(),
        }),
      );
    } else {
      this.log.debug({ ...logged, attempts, duration }, 'MCP tool call succeeded');
      this.emit(
        mcpEvent('McpToolSucceeded', {
          server: this.name,
          tool: req.tool,
          call_id: callId,
          duration_ms: duration,
          outcome: 'success',
          attempts,
          // An admin listing (the mailbox, the queued deliveries) is recorded as counts and ids:
          // the caller has it, and the log need not hold a copy of it per read.
          result: isAdminListingTool(this.name, req.tool)
            ? sizePayload(listingSummary(result), cfg.payload_log.max_chars)
            : sized,
          ...corr,
          at: new Date().toISOString(),
        }),
      );
    }
    return result;
  }

  /** Tools of the server (cached; `refresh` re-lists through the policies). */
  async listTools(opts: { refresh?: boolean } = {}): Promise<ToolInfo[]> {
    if (opts.refresh || !this.session.isConnected || this.session.tools.length === 0) {
      await this.guard((signal) => this.session.refreshTools({ signal }));
    }
    return [...this.session.tools];
  }

  async listResources(opts: { refresh?: boolean } = {}): Promise<Resource[]> {
    if (opts.refresh || !this.session.isConnected)
      await this.guard((signal) => this.session.refreshResources({ signal }));
    return [...this.session.resources];
  }

  async listPrompts(opts: { refresh?: boolean } = {}): Promise<Prompt[]> {
    if (opts.refresh || !this.session.isConnected)
      await this.guard((signal) => this.session.refreshPrompts({ signal }));
    return [...this.session.prompts];
  }

  async readResource(uri: string): Promise<ReadResourceResult> {
    return this.guard((signal) => this.session.readResource(uri, { signal }));
  }

  async getPrompt(name: string, args: Record<string, string> = {}): Promise<GetPromptResult> {
    return this.guard((signal) => this.session.getPrompt(name, args, { signal }));
  }

  /** Reads are safe to repeat: full policy, timeouts retried. */
  private async guard<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.assertConfigured('read');
    return (await this.policy.execute(fn, { retryTimeouts: true })).value;
  }

  /** An unconfigured (or disabled) server answers at once, outside the breaker: it is not failing, it is not set up. */
  private assertConfigured(op: string): void {
    const h = this.session.health();
    if (h.state !== 'unconfigured') return;
    // Not retryable: it stays so until someone configures it.
    throw new AppError(
      'unavailable',
      `MCP server ${this.name} is unconfigured: ${h.last_error ?? 'see registry'}`,
      { server: this.name, op, health: 'unconfigured', fail_fast: true },
      false,
    );
  }

  /** The tool's definition; unknown names re-list once (the cache may be stale) before not_found. */
  private async findTool(name: string): Promise<Tool> {
    let tool = this.session.tools.find((t) => t.name === name);
    if (tool) return tool;
    const tools = await this.listTools({ refresh: true });
    tool = tools.find((t) => t.name === name);
    if (tool) return tool;
    const valid = tools.map((t) => t.name);
    throw new AppError('not_found', `MCP server ${this.name} has no tool "${name}"`, {
      server: this.name,
      tool: name,
      valid_tools: valid,
    });
  }

  /**
   * With no traffic an open circuit would stay open forever: after the half-open delay,
   * send one ping through the breaker as the probe (closes it on success, re-opens on failure).
   */
  private scheduleProbe(delay = this.opts.config.breaker.half_open_after_ms + 10): void {
    clearTimeout(this.probeTimer);
    if (this.closed) return;
    this.probeTimer = setTimeout(() => {
      if (this.closed || this.breakerState !== 'open') return;
      // While the session is still down a probe would only fail: wait for the reconnect instead.
      if (!this.session.isConnected)
        return this.scheduleProbe(Math.min(1_000, this.opts.config.breaker.half_open_after_ms));
      void this.policy.breaker
        .execute(() => this.session.ping())
        .catch((err: unknown) => {
          this.log.debug({ err: errorText(err) }, 'breaker probe failed');
          if (this.breakerState === 'open') this.scheduleProbe();
        });
    }, delay);
    this.probeTimer.unref();
  }

  private remember(key: string, result: Promise<CallToolResult>): RememberedCall {
    const now = Date.now();
    if (this.idempotent.size >= IDEMPOTENCY_MAX) {
      for (const [k, v] of this.idempotent)
        if (v.expires <= now || this.idempotent.size >= IDEMPOTENCY_MAX) this.forget(k, v);
    }
    const previous = this.idempotent.get(key);
    if (previous) this.forget(key, previous);
    const entry: RememberedCall = { expires: now + (this.opts.idempotencyTtlMs ?? 600_000), result, chars: 0 };
    this.idempotent.set(key, entry);
    return entry;
  }

  /**
   * A keyed call's result is in: counted against the budget, or, too large for any reply,
   * kept as its refusal only. Without a bound on bytes, 1,000 keys of a 20 MB file read held
   * 20 GB for ten minutes, every one of them answered 413.
   */
  private settled(key: string, entry: RememberedCall, result: CallToolResult): void {
    if (this.idempotent.get(key) !== entry) return;
    const chars = this.resultChars.get(result) ?? (JSON.stringify(result) ?? '').length;
    const max = this.opts.maxCachedResultChars ?? MAX_CACHED_RESULT_CHARS;
    if (chars > max) {
      const refused = Promise.reject(
        new AppError(
          'result_too_large',
          `the result of ${this.name}/${key.split('\u0000')[0]} is larger than ${max} characters`,
          {
            server: this.name,
            chars,
            max_chars: max,
          },
        ),
      );
      refused.catch(() => undefined);
      entry.result = refused;
      return;
    }
    entry.chars = chars;
    this.idempotentChars += chars;
    const budget = this.opts.cachedResultsBudgetChars ?? CACHED_RESULTS_BUDGET_CHARS;
    for (const [k, v] of this.idempotent) {
      if (this.idempotentChars <= budget) break;
      if (v !== entry && v.chars > 0) this.forget(k, v);
    }
  }

  private forget(key: string, entry: RememberedCall): void {
    if (this.idempotent.get(key) !== entry) return;
    this.idempotent.delete(key);
    this.idempotentChars -= entry.chars;
  }

  private emit(event: McpEvent): void {
    try {
      this.opts.onEvent?.(event);
    } catch (err) {
      this.log.error({ err: errorText(err), type: event.type }, 'onEvent threw');
    }
  }
}

const firstText = (r: CallToolResult): string => {
  const c = r.content?.find((x) => x.type === 'text');
  return c && c.type === 'text' ? c.text : 'tool error';
};

/** A listener's failure is not the call's. */
function notify(listener: (s: CallState) => void, state: CallState): void {
  try {
    listener(state);
  } catch {
    // dropped: a notice is advisory
  }
}

/** A keyed call this connector runs: how cancelCall stops it. */
interface KeyedFlight {
  readonly stop: AbortController;
  /** An attempt is with the server and the tool may have effects: a cancel lets it finish. */
  withEffects: boolean;
  /** A cancel came while such an attempt ran: no further attempt starts. */
  cancelAsked: AppError | undefined;
  /** The last attempt's error: the answer when a cancel stops a retry of a call with effects. */
  lastError?: AppError;
  /** The shared claim this process runs the call under (none: not shared). */
  lease?: SharedCallLease | undefined;
}

function canceledError(cancel: AbortSignal, server: string, tool: string): AppError {
  const reason = isAppError(cancel.reason) ? cancel.reason.message : 'canceled';
  return new AppError('canceled', `tool call canceled: ${reason}`, { server, tool }, false);
}

/** A signal that aborts when any of the given ones does. */
function anySignal(a: AbortSignal, b: AbortSignal | undefined): AbortSignal {
  return b ? AbortSignal.any([a, b]) : a;
}

/** An error result with hideHostPaths applied to its text blocks (nothing else of it is touched). */
function hideHostPathsInError<T extends { content?: unknown }>(result: T, roots: readonly string[]): T {
  if (!Array.isArray(result.content)) return result;
  return {
    ...result,
    content: (result.content as { type?: unknown; text?: unknown }[]).map((c) =>
      c && c.type === 'text' && typeof c.text === 'string'
        ? { ...c, text: hideHostPaths(redactSecretValues(c.text), roots) }
        : c,
    ),
  };
}

/**
 * Whose turn a waiting call takes in the server's queue: the person who asked (an API key, the
 * MCP token, or nobody signed in), also for the workflows they started (the engine, a
 * `system:...` actor, names the starter in `on_behalf_of`; a sub-workflow's is its parent's), so
 * starting many executions, or choosing their correlation ids, gets a key no more turns; within
 * that turn, each workflow (correlation id) in turn, so a person's small workflow does not wait
 * behind their own large one. A call for no person (a trigger's workflow, an execution from
 * before the starter was passed on) goes by its correlation id alone.
 */
function fairnessKey(req: {
  actor?: string | undefined;
  on_behalf_of?: string | undefined;
  correlation_id?: string | undefined;
}): { who: string; within: string } {
  const who = personOf(req);
  const within = req.correlation_id ?? '';
  if (who) return { who: `actor:${who}`, within };
  if (req.correlation_id) return { who: `correlation:${req.correlation_id}`, within };
  return { who: `actor:${req.actor ?? ''}`, within };
}

/** The arguments as the call's events record them: those the caller named private replaced. */
function withPrivateHidden(
  args: Record<string, unknown>,
  names: readonly string[] | undefined,
): Record<string, unknown> {
  if (!names?.length) return args;
  const shown = { ...args };
  for (const n of names) if (Object.prototype.hasOwnProperty.call(shown, n)) shown[n] = REDACTED;
  return shown;
}

/** The person a call is for: its actor, or for a part of the system its `on_behalf_of`; none for the system on its own. */
function personOf(req: { actor?: string | undefined; on_behalf_of?: string | undefined }): string | undefined {
  const who = req.actor?.startsWith('system:') ? req.on_behalf_of : req.actor;
  return who && isPerson(who) ? who : undefined;
}

/** Actors that are someone calling in (not a part of the system acting on its own). */
const isPerson = (actor: string): boolean =>
  actor.startsWith('apikey:') || actor.startsWith('token:') || actor === 'anonymous';
