/**
 * Tiny NATS responders standing in for the MCP connectors and the task service in tests and
 * benches: they honour idempotency keys like real workers (one effect per key; a repeat gets
 * the first result), record every request and every cancel, and can be told to fail, hang or be
 * slow (a behaviour can wait for `whenCanceled(key)` to stop like a real worker).
 */
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { z } from 'zod';
import type { Logger } from '@switchyard/platform';
import { addService, callProgressNotifier, type Service } from '@switchyard/messaging';
import { mcpCallToolSubject, mcpCancelCallSubject, TASKS_EXECUTE_SUBJECT } from '@switchyard/contracts';

export interface ResponderCall {
  readonly subject: string;
  readonly key: string;
  readonly tool: string;
  readonly args: unknown;
  readonly at: number;
}

/** How to answer one call: `effect` runs once per key; throw AppError for an error reply. */
export type Behaviour = (call: ResponderCall, attemptOfKey: number) => unknown; // a value or a promise of one

export class Responders {
  readonly calls: ResponderCall[] = [];
  /** Effects performed, by idempotency key (1 each when keys are honoured). */
  readonly effects = new Map<string, number>();
  /** Cancels heard: MCP ones by idempotency key, task ones by task id. */
  readonly cancels: { readonly subject: string; readonly key: string; readonly reason: string }[] = [];
  private readonly cancelWaiters = new Map<string, ((reason: string) => void)[]>();
  private readonly results = new Map<string, Promise<unknown>>();
  private readonly services: Service[] = [];
  private readonly subscriptions: Subscription[] = [];
  behaviours = new Map<string, Behaviour>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly logger: Logger,
  ) {}

  /** Serve `mcp:<server>/*` tools and `agent:*` tasks. */
  async start(
    servers: readonly string[],
    opts: {
      tasks?: boolean;
      queue?: string;
      mcpPrefix?: string;
      tasksSubject?: string;
      tasksCancelSubject?: string;
    } = {},
  ): Promise<this> {
    const callTool = z
      .object({
        tool: z.string(),
        arguments: z.record(z.string(), z.unknown()).default({}),
        idempotency_key: z.string().optional(),
        progress_subject: z.string().optional(),
      })
      .loose();
    const task = z
      .object({
        task_type: z.string(),
        context: z.unknown(),
        idempotency_key: z.string(),
        progress_subject: z.string().optional(),
      })
      .loose();
    // Like the real workers: while a followed call runs, its caller hears so every heartbeat.
    const following = <T>(
      b: { progress_subject?: string | undefined; idempotency_key?: string | undefined },
      run: () => Promise<T>,
    ) => {
      const progress =
        b.progress_subject && b.idempotency_key
          ? callProgressNotifier(this.nc, b.progress_subject, b.idempotency_key)
          : undefined;
      return run().finally(() => progress?.close());
    };
    for (const server of servers) {
      this.services.push(
        await addService(this.nc, {
          name: `test-mcp-${server}`,
          version: '1.0.0',
          logger: this.logger,
          ...(opts.queue ? { queue: opts.queue } : {}),
          endpoints: {
            call_tool: defineCall(mcpCallToolSubject(server, opts.mcpPrefix), callTool, async (b) => {
              const out = await following(b, () =>
                this.handle(
                  mcpCallToolSubject(server, opts.mcpPrefix),
                  `${server}/${b.tool}`,
                  b.idempotency_key ?? '',
                  b.arguments,
                ),
              );
              if (out && typeof out === 'object' && 'isError' in out) return out;
              return { content: [{ type: 'text', text: JSON.stringify(out) }], structuredContent: out };
            }),
          },
        }),
      );
    }
    for (const server of servers)
      this.listenForCancels(mcpCancelCallSubject(server, opts.mcpPrefix), 'idempotency_key');
    if (opts.tasksCancelSubject) this.listenForCancels(opts.tasksCancelSubject, 'task_id');
    if (opts.tasks !== false) {
      this.services.push(
        await addService(this.nc, {
          name: 'test-tasks',
          version: '1.0.0',
          ...(opts.queue ? { queue: opts.queue } : {}),
          logger: this.logger,
          endpoints: {
            execute: defineCall(opts.tasksSubject ?? TASKS_EXECUTE_SUBJECT, task, async (b) => {
              const result = await following(b, () =>
                this.handle(
                  opts.tasksSubject ?? TASKS_EXECUTE_SUBJECT,
                  `agent:${b.task_type}`,
                  b.idempotency_key,
                  b.context,
                ),
              );
              return { task_id: b.idempotency_key, agent: 'test', instance: 'test-1', status: 'completed', result };
            }),
          },
        }),
      );
    }
    return this;
  }

  /** Resolves with the reason when a cancel for `key` (an idempotency key, or a task id) arrives. */
  whenCanceled(key: string): Promise<string> {
    const heard = this.cancels.find((c) => c.key === key);
    if (heard) return Promise.resolve(heard.reason);
    return new Promise((resolve) => this.cancelWaiters.set(key, [...(this.cancelWaiters.get(key) ?? []), resolve]));
  }

  private listenForCancels(subject: string, keyField: 'idempotency_key' | 'task_id'): void {
    this.subscriptions.push(
      this.nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return;
          const body = msg.json<Record<string, string>>();
          const key = String(body[keyField] ?? '');
          const reason = String(body['reason'] ?? '');
          this.cancels.push({ subject, key, reason });
          for (const w of this.cancelWaiters.get(key) ?? []) w(reason);
          this.cancelWaiters.delete(key);
          if (msg.reply) msg.respond(JSON.stringify({ ok: true }));
        },
      }),
    );
  }

  private handle(subject: string, tool: string, key: string, args: unknown): Promise<unknown> {
    const call: ResponderCall = { subject, key, tool, args, at: Date.now() };
    this.calls.push(call);
    const prior = this.results.get(key);
    if (prior && key) return prior;
    const behaviour = this.behaviours.get(tool) ?? (() => ({ ok: true, tool, args }));
    const p = (async () => {
      const r = await behaviour(call, this.calls.filter((c) => c.key === key).length);
      this.effects.set(key, (this.effects.get(key) ?? 0) + 1);
      return r;
    })();
    if (key) {
      this.results.set(key, p);
      // An error reply is not a result to remember: the next attempt has a new key anyway.
      p.catch(() => this.results.delete(key));
    }
    return p;
  }

  async stop(): Promise<void> {
    for (const s of this.subscriptions) s.unsubscribe();
    await Promise.all(this.services.map((s) => s.stop().catch(() => undefined)));
  }
}

function defineCall<S extends z.ZodType>(subject: string, schema: S, handler: (b: z.infer<S>) => Promise<unknown>) {
  return { subject, schema, handler: (b: z.infer<S>) => handler(b) };
}

/**
 * Engine timings for tests: 4 partitions, a lease tick of 200 ms and a timer poll of 50 ms, so
 * takeovers and durable timers happen within a test's patience instead of production's seconds.
 */
export const TEST_ENGINE_TIMINGS = { partitions: 4, leaseTickMs: 200, timerPollMs: 50 } as const;
