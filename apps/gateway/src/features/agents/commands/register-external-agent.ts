import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { currentActor } from '../../../http/context.js';
import { AgentsClient } from '../agents.client.js';

type ExternalAgent = Parameters<AgentsClient['registerExternal']>[0];

/** Register (or replace) an external HTTP or A2A agent at the dispatcher. Result: its health view. */
export class RegisterExternalAgent extends Command<Awaited<ReturnType<AgentsClient['registerExternal']>>> {
  constructor(
    readonly agent: ExternalAgent,
    readonly correlationId: string,
    readonly actor: string = currentActor() ?? 'anonymous',
  ) {
    super();
  }
}

@CommandHandler(RegisterExternalAgent)
export class RegisterExternalAgentHandler implements ICommandHandler<RegisterExternalAgent> {
  constructor(@Inject(AgentsClient) private readonly client: AgentsClient) {}
  execute(c: RegisterExternalAgent) {
    return this.client.registerExternal(c.agent, c.actor, c.correlationId);
  }
}
