import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { currentActor } from '../../../http/context.js';
import { AgentsClient } from '../agents.client.js';

/** Remove a registered external agent; its running tasks go back to the queue. */
export class UnregisterExternalAgent extends Command<Awaited<ReturnType<AgentsClient['unregisterExternal']>>> {
  constructor(
    readonly name: string,
    readonly correlationId: string,
    readonly actor: string = currentActor() ?? 'anonymous',
  ) {
    super();
  }
}

@CommandHandler(UnregisterExternalAgent)
export class UnregisterExternalAgentHandler implements ICommandHandler<UnregisterExternalAgent> {
  constructor(@Inject(AgentsClient) private readonly client: AgentsClient) {}
  execute(c: UnregisterExternalAgent) {
    return this.client.unregisterExternal(c.name, c.actor, c.correlationId);
  }
}
