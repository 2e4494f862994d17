import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { VirtualServers } from '../virtual-servers.js';

/** Remove a virtual MCP server; 404 when there is none of that name. */
export class RemoveVirtualServer extends Command<void> {
  constructor(
    readonly name: string,
    readonly correlationId: string,
  ) {
    super();
  }
}

@CommandHandler(RemoveVirtualServer)
export class RemoveVirtualServerHandler implements ICommandHandler<RemoveVirtualServer> {
  constructor(@Inject(VirtualServers) private readonly virtuals: VirtualServers) {}
  execute(c: RemoveVirtualServer) {
    return this.virtuals.remove(c.name, c.correlationId);
  }
}
