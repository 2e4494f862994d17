import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { AgentsClient, type DelegateRequest } from '../agents.client.js';

export interface DelegationAnswer {
  /** 202: submitted (or still running when the wait ran out); 200: the wait saw it end. */
  readonly status: 200 | 202;
  /** The HTTP answer's body. */
  readonly body: Record<string, unknown>;
  /** What the dispatcher answered, whole (the MCP server and A2A features build their own answers from it). */
  readonly outcome: Awaited<ReturnType<AgentsClient['delegate']>>;
}

/**
 * Delegate a task to the best capable agent; with `waitMs`, wait for its end on the dispatcher's
 * `execute` reply (NATS request-reply: the answer comes when the task ends, nothing polls).
 */
export class DelegateTask extends Command<DelegationAnswer> {
  constructor(
    readonly request: DelegateRequest,
    readonly correlationId: string,
    readonly idempotencyKey: string | undefined,
    readonly waitMs: number | undefined,
  ) {
    super();
  }
}

@CommandHandler(DelegateTask)
export class DelegateTaskHandler implements ICommandHandler<DelegateTask> {
  constructor(@Inject(AgentsClient) private readonly client: AgentsClient) {}
  async execute(c: DelegateTask): Promise<DelegationAnswer> {
    const out = await this.client.delegate(c.request, c.correlationId, {
      ...(c.idempotencyKey ? { idempotencyKey: c.idempotencyKey } : {}),
      ...(c.waitMs !== undefined ? { waitMs: c.waitMs } : {}),
    });
    if (out.done) {
      return {
        status: 200,
        body: {
          task_id: out.result.task_id,
          status: out.result.status,
          agent: out.result.agent,
          instance: out.result.instance,
          result: out.result.result,
        },
        outcome: out,
      };
    }
    const s = out.submitted;
    return {
      status: 202,
      body: {
        task_id: s.task_id,
        status: s.status,
        agent: s.agent ?? 'queued',
        instance: s.instance,
        duplicate: s.duplicate,
      },
      outcome: out,
    };
  }
}
