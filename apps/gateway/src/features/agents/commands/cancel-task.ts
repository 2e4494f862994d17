import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { currentActor } from '../../../http/context.js';
import { AgentsClient } from '../agents.client.js';

/** Cancel a queued or running task (the dispatcher records who and why). Result: the task's view. */
export class CancelTask extends Command<Awaited<ReturnType<AgentsClient['cancel']>>> {
  constructor(
    readonly taskId: string,
    readonly reason: string,
    readonly correlationId: string,
    readonly actor: string = currentActor() ?? 'anonymous',
  ) {
    super();
  }
}

@CommandHandler(CancelTask)
export class CancelTaskHandler implements ICommandHandler<CancelTask> {
  constructor(@Inject(AgentsClient) private readonly client: AgentsClient) {}
  execute(c: CancelTask) {
    return this.client.cancel(c.taskId, c.reason, c.actor, c.correlationId);
  }
}
