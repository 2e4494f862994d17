import { Inject, Injectable } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { ServerNotification } from '@modelcontextprotocol/sdk/types.js';
import { sizePayload, AppError, isAppError, newId, redactedHead, type Logger } from '@switchyard/platform';
import { isAdminListingTool, listingSummary } from '@switchyard/contracts';
import type { EventStore } from '@switchyard/event-store';
import { EVENT_STORE, LOGGER } from '../../tokens.js';
import { CancelTask, DelegateTask } from '../agents/commands/index.js';
import { CallMcpTool } from '../mcp/commands/index.js';
import { CancelWorkflowExecution } from '../workflows/commands/index.js';
import { executionResult } from '../workflows/deps.js';
import { WorkflowsService } from '../workflows/workflows.service.js';
import { GetWorkflowDefinition } from '../workflows/queries/index.js';
import type { CatalogTool } from './catalog.js';
import { ExecutionWatch } from './execution-watch.js';
import { EXECUTION_END_EVENTS } from '../workflows/execution-waits.js';
import { ExecutionFolds } from '../workflows/execution-folds.js';
import {
  mcpGatewayCallDecider,
  mcpGatewayCallStream,
  type McpGatewayCallCommand,
  type McpGatewayCallEvent,
  type McpGatewayCallState,
} from './tool-call.decider.js';

const EXECUTION_ENDS: ReadonlySet<string> = new Set(EXECUTION_END_EVENTS);
/** Largest arguments / result kept in a call's events (characters of JSON). */
const EVENT_PAYLOAD_CHARS = 8_192;
/**
 * An upstream call that ends within this long is recorded with one append (McpToolCalled and
 * its outcome together); one still running then gets McpToolCalled appended on its own.
 */
const CALLED_RECORD_DELAY_MS = 100;
/** A call waits at most this long for its workflow or task (the client's own timeout is usually shorter). */
const MAX_WAIT_MS = 30 * 60_000;
/** After a cancel, how long the call waits for the execution or task to say it ended. */
const CANCEL_SETTLE_MS = 30_000;

/** Who called, from the API key the request presented (auth disabled: anonymous with every right). */
export interface Caller {
  readonly keyId: string | null;
  readonly keyName: string | null;
  readonly actor: string;
}

/** Where the call came from. */
export interface CallContext {
  readonly caller: Caller;
  readonly sessionId: string | null;
  readonly transport: 'streamable-http' | 'sse';
  readonly virtualServer: string | null;
  readonly correlationId: string;
  readonly signal: AbortSignal;
  readonly progressToken?: string | number;
  readonly idempotencyKey?: string;
  readonly sendNotification: (n: ServerNotification) => Promise<void>;
}

/** The MCP answer of a tool call. */
export interface ToolResult {
  [k: string]: unknown;
  content: { type: string; [k: string]: unknown }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

const asObject = (v: unknown): Record<string, unknown> | undefined =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
const textResult = (value: unknown, isError = false): ToolResult => {
  const structured = asObject(value);
  return {
    content: [{ type: 'text', text: JSON.stringify(value, null, 2) ?? 'null' }],
    ...(structured ? { structuredContent: structured } : {}),
    ...(isError ? { isError: true } : {}),
  };
};
const errorResult = (code: string, message: string, details?: Record<string, unknown>): ToolResult => ({
  content: [{ type: 'text', text: `${code}: ${message}` }],
  structuredContent: { error: { code, message, ...(details ? { details } : {}) } },
  isError: true,
});

/**
 * Runs a tool call that came through `/mcp`, through the same services as the REST routes:
 * 1. McpToolCalled is decided (stream `mcpgw_call-<id>`: caller's key, MCP session, tool) and
 *    appended with the outcome in one commit for a quick call, on its own for a long one;
 * 2. the call goes where its name points: an upstream tool over NATS to the connectors
 *    (breaker, retry, bulkhead, the connector's own McpTool* events), a workflow start through
 *    the CommandBus (as POST /workflows/start), a delegation through the dispatcher (as POST
 *    /agents/delegate);
 * 3. a client's cancel (the request's abort signal) cancels the execution or task it started,
 *    with the same commands as the REST cancel routes;
 * 4. McpToolSucceeded or McpToolFailed closes the call's stream.
 * A failure is a tool result with `isError` and the code and message (never a hang).
 */
@Injectable()
export class McpToolCalls {
  private readonly log: Logger;

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(LOGGER) logger: Logger,
    @Inject(WorkflowsService) private readonly workflows: WorkflowsService,
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(QueryBus) private readonly queries: QueryBus,
    @Inject(ExecutionWatch) private readonly watch: ExecutionWatch,
    @Inject(ExecutionFolds) private readonly folds: ExecutionFolds,
  ) {
    this.log = logger.child({ component: 'mcp-server-calls' });
  }

  async call(tool: CatalogTool, args: Record<string, unknown>, ctx: CallContext): Promise<ToolResult> {
    const callId = newId();
    const started = performance.now();
    const logged = { correlationId: ctx.correlationId, callId, tool: tool.name, sessionId: ctx.sessionId };
    const called = this.command(ctx, {
      type: 'RecordToolCall',
      data: {
        call_id: callId,
        tool: tool.name,
        kind: tool.kind,
        target: tool.target,
        arguments: sizePayload(args, EVENT_PAYLOAD_CHARS).value,
        session_id: ctx.sessionId,
        transport: ctx.transport,
        virtual_server: ctx.virtualServer,
        key_id: ctx.caller.keyId,
        key_name: ctx.caller.keyName,
        at: new Date().toISOString(),
      },
    });
    // McpToolCalled and the outcome go to the store in ONE append (one commit) when the call
    // ends within CALLED_RECORD_DELAY_MS, as an upstream tool call usually does. A call still
    // running then (a workflow or a task from the start, an upstream call past the delay) gets
    // McpToolCalled appended on its own, so the audit log shows it while it runs; its outcome
    // is chained after it, so the stream stays in order. Either way the answer waits for the
    // outcome's commit: a client that got an answer knows the call is in the audit log. A record
    // that fails is logged and the answer still goes out; the call's work is recorded by its own
    // streams (mcpserver-*, workflow_execution-*, task-*) either way.
    let recorded: Promise<McpGatewayCallState> | undefined;
    const recordCalled = () => {
      recorded ??= this.record(callId, mcpGatewayCallDecider.initialState, [called]);
      // Handled here at once (the chain below logs it), so a failure while the call runs is not an unhandled rejection.
      recorded.catch(() => undefined);
    };
    let timer: NodeJS.Timeout | undefined;
    if (tool.kind === 'upstream') {
      timer = setTimeout(recordCalled, CALLED_RECORD_DELAY_MS);
      timer.unref();
    } else recordCalled();
    const work: { execution_id?: string; task_id?: string } = {};
    let result: ToolResult;
    let failure: { code: string; message: string } | undefined;
    try {
      result = await this.dispatch(tool, args, ctx, work);
      if (result.isError) {
        const err = asObject(result.structuredContent?.error);
        failure = {
          code: typeof err?.code === 'string' ? err.code : 'tool_error',
          message:
            typeof err?.message === 'string' ? err.message : String(result.content.map((c) => c.text ?? '').join('\n')),
        };
      }
    } catch (err) {
      const e = isAppError(err) ? err : new AppError('internal', err instanceof Error ? err.message : String(err));
      if (!isAppError(err)) this.log.error({ ...logged, err }, 'MCP tool call failed unexpectedly');
      // What tool_error carried (the upstream's own content) goes back as it came.
      const upstreamContent = Array.isArray(e.details.content)
        ? (e.details.content as ToolResult['content'])
        : undefined;
      result = upstreamContent ? { content: upstreamContent, isError: true } : errorResult(e.code, e.message);
      failure = { code: e.code, message: e.message };
    } finally {
      clearTimeout(timer);
    }
    const duration_ms = Math.round((performance.now() - started) * 100) / 100;
    const at = new Date().toISOString();
    const refs = {
      ...(work.execution_id ? { execution_id: work.execution_id } : {}),
      ...(work.task_id ? { task_id: work.task_id } : {}),
    };
    const outcome = this.command(
      ctx,
      failure
        ? {
            type: 'RecordToolFailure',
            data: {
              call_id: callId,
              tool: tool.name,
              target: tool.target,
              duration_ms,
              error_code: failure.code,
              error_message: redactedHead(failure.message, 2_000),
              ...refs,
              at,
            },
          }
        : {
            type: 'RecordToolSuccess',
            data: {
              call_id: callId,
              tool: tool.name,
              target: tool.target,
              duration_ms,
              // An admin listing (the mailbox, the queued deliveries) is recorded as counts and ids, as the connectors record it.
              result: sizePayload(
                tool.kind === 'upstream' && isAdminListingTool(tool.server, tool.upstreamName)
                  ? listingSummary(result.structuredContent ?? {})
                  : (result.structuredContent ?? result.content),
                EVENT_PAYLOAD_CHARS,
              ).value,
              ...refs,
              at,
            },
          },
    );
    await (
      recorded
        ? recorded.then((running) => this.record(callId, running, [outcome]))
        : this.record(callId, mcpGatewayCallDecider.initialState, [called, outcome])
    ).catch((err: unknown) => this.log.error({ ...logged, err: String(err) }, 'recording an MCP tool call failed'));
    this.log.info(
      { ...logged, duration_ms, outcome: failure ? 'failed' : 'succeeded', code: failure?.code, ...refs },
      'MCP tool call',
    );
    return result;
  }

  /** A command of this call, stamped now (the decider's clock comes in the command). */
  private command(ctx: CallContext, c: Omit<McpGatewayCallCommand, 'metadata'>): McpGatewayCallCommand {
    return {
      ...c,
      metadata: { timestamp: new Date().toISOString(), correlationId: ctx.correlationId, actor: ctx.caller.actor },
    } as McpGatewayCallCommand;
  }

  /**
   * Decide the commands in turn on the state this call already holds and append their events
   * in one go with the matching expectation: the call's stream is new (a fresh id) and only
   * this request writes it, so there is nothing to read back first (a conflict would still be
   * refused by the store).
   */
  private async record(
    callId: string,
    state: McpGatewayCallState,
    commands: readonly McpGatewayCallCommand[],
  ): Promise<McpGatewayCallState> {
    const events: McpGatewayCallEvent[] = [];
    let next = state;
    for (const command of commands) {
      const decided = mcpGatewayCallDecider.decide(command, next);
      next = decided.reduce((s, e) => mcpGatewayCallDecider.evolve(s, e), next);
      events.push(...decided);
    }
    if (events.length === 0) return state;
    await this.store.append(
      mcpGatewayCallStream(callId),
      events.map((e) => ({ type: e.type, data: e.data, metadata: e.metadata })),
      { expectedRevision: state.status === 'absent' ? 'no_stream' : 0 },
    );
    return next;
  }

  private dispatch(
    tool: CatalogTool,
    args: Record<string, unknown>,
    ctx: CallContext,
    work: { execution_id?: string; task_id?: string },
  ): Promise<ToolResult> {
    switch (tool.kind) {
      case 'upstream':
        return this.upstream(tool, args, ctx);
      case 'workflow':
        return this.workflow(tool, args, ctx, work);
      case 'agent':
        return this.agent(tool, args, ctx, work);
    }
  }

  /** Over NATS to the connectors, as POST /api/v1/integration/mcp/call does. */
  private async upstream(tool: CatalogTool, args: Record<string, unknown>, ctx: CallContext): Promise<ToolResult> {
    // The caller's `_meta.idempotency_key` (scoped to its API key) goes to the connectors bound to
    // the call: a repeat on any gateway is answered from their record instead of running the tool again.
    const out = await this.commands.execute(
      new CallMcpTool(tool.server!, tool.upstreamName!, args, ctx.correlationId, {
        ...(ctx.idempotencyKey !== undefined ? { scopedKey: ctx.idempotencyKey } : {}),
      }),
    );
    const structured = out.result !== out.content ? asObject(out.result) : undefined;
    return { content: out.content, ...(structured ? { structuredContent: structured } : {}) };
  }

  /** As POST /api/v1/workflows/start/{id}; then progress per step until it ends (or at once with wait=false). */
  private async workflow(
    tool: CatalogTool,
    args: Record<string, unknown>,
    ctx: CallContext,
    work: { execution_id?: string },
  ): Promise<ToolResult> {
    const { wait, ...input } = args;
    const { definition } = await this.queries.execute(new GetWorkflowDefinition(tool.target));
    const started = await this.workflows.start(definition, input, ctx.correlationId, {
      wait: false,
      waitMs: 0,
      idempotencyKey: ctx.idempotencyKey,
    });
    const executionId = started.body.execution_id;
    work.execution_id = executionId;
    if (wait === false) return textResult(started.body);

    const total = definition.steps.length;
    const settled = new Set<string>();
    let ended = false;
    let canceledAt: number | undefined;
    const until = Date.now() + MAX_WAIT_MS;
    // The wait ends at MAX_WAIT_MS, or CANCEL_SETTLE_MS after a client cancel: a timer stops following then.
    let stop: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      const deadline = Math.min(until, canceledAt !== undefined ? canceledAt + CANCEL_SETTLE_MS : until);
      timer = setTimeout(() => stop?.(), Math.max(0, deadline - Date.now()));
    };
    const onAbort = () => {
      canceledAt = Date.now();
      arm();
      void this.commands
        .execute(
          new CancelWorkflowExecution(executionId, 'canceled by the MCP client', ctx.correlationId, ctx.caller.actor),
        )
        .then(() =>
          this.log.info({ correlationId: ctx.correlationId, executionId }, 'workflow canceled by the MCP client'),
        )
        .catch((err: unknown) =>
          this.log.warn(
            { correlationId: ctx.correlationId, executionId, err: String(err) },
            'canceling the workflow failed',
          ),
        );
    };
    const progressOf = async (e: { type: string; data: unknown }) => {
      const d = asObject(e.data) ?? {};
      const stepId = typeof d.stepId === 'string' ? d.stepId : undefined;
      const stepLevel = d.itemIndex === undefined || d.itemIndex === null;
      const final =
        e.type === 'StepSucceeded' || e.type === 'StepSkipped' || (e.type === 'StepFailed' && d.final === true);
      if (stepId && stepLevel && final && !settled.has(stepId)) {
        settled.add(stepId);
        await this.progress(
          ctx,
          settled.size,
          total,
          `${stepId} ${e.type === 'StepSucceeded' ? 'succeeded' : e.type === 'StepSkipped' ? 'skipped' : 'failed'}`,
        );
      } else if (stepId && stepLevel && e.type === 'StepScheduled') {
        await this.progress(ctx, settled.size, total, `${stepId} running`);
      }
      if (EXECUTION_ENDS.has(e.type)) ended = true;
    };
    arm();
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      // The stream as it stands, then the rest as it is appended (one subscription for the gateway).
      const followed = this.watch.follow(executionId);
      stop = followed.stop;
      arm(); // a deadline that passed while the execution started stops the wait at once
      for await (const e of followed.events) {
        await progressOf(e);
        if (ended) break;
      }
      if (!ended)
        return textResult({ ...started.body, status: 'running', note: 'the wait ran out; the execution goes on' });
    } finally {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onAbort);
    }
    let state;
    try {
      state = await this.folds.stateOf(executionId);
    } catch (err) {
      // The run went on (or ended) all the same: the error says where its result is.
      if (isAppError(err) && err.code === 'unavailable')
        return textResult({ ...started.body, note: err.message }, true);
      throw err;
    }
    const result = { ...started.body, ...executionResult(executionId, state) };
    return textResult(result, state.status !== 'completed');
  }

  /** As POST /api/v1/integration/agents/delegate?wait=true; a client cancel cancels the task. */
  private async agent(
    tool: CatalogTool,
    args: Record<string, unknown>,
    ctx: CallContext,
    work: { task_id?: string },
  ): Promise<ToolResult> {
    const key = ctx.idempotencyKey ?? `mcp-${newId()}`;
    const req = { task_type: tool.target, context: args, priority: 'normal' as const };
    // Submitted first, so the task id is known before the wait (a cancel needs it).
    const { outcome: first } = await this.commands.execute(new DelegateTask(req, ctx.correlationId, key, undefined));
    const taskId = first.submitted.task_id;
    work.task_id = taskId;
    const onAbort = () => {
      void this.commands
        .execute(new CancelTask(taskId, 'canceled by the MCP client', ctx.correlationId, ctx.caller.actor))
        .catch((err: unknown) =>
          this.log.warn({ correlationId: ctx.correlationId, taskId, err: String(err) }, 'canceling the task failed'),
        );
    };
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.progress(ctx, 0, 1, `task ${taskId} ${first.submitted.status}`);
      const { outcome: out } = await this.commands.execute(
        new DelegateTask(req, ctx.correlationId, key, ctx.signal.aborted ? CANCEL_SETTLE_MS : MAX_WAIT_MS),
      );
      if (!out.done) return textResult({ ...out.submitted, note: 'the wait ran out; the task goes on' });
      await this.progress(ctx, 1, 1, `task ${taskId} ${String(asObject(out.result)?.status ?? 'ended')}`);
      const r = asObject(out.result) ?? {};
      return textResult({ ...r, task_id: taskId }, r.status !== undefined && r.status !== 'completed');
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
    }
  }

  private async progress(ctx: CallContext, progress: number, total: number, message: string): Promise<void> {
    if (ctx.progressToken === undefined || ctx.signal.aborted) return;
    await ctx
      .sendNotification({
        method: 'notifications/progress',
        params: { progressToken: ctx.progressToken, progress, total, message },
      })
      .catch(() => undefined);
  }
}
