import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { VirtualServerView } from '../virtual-server.decider.js';
import { VirtualServers } from '../virtual-servers.js';

/** Create or replace a virtual MCP server (a named subset of the tools), stored as events. */
export class DefineVirtualServer extends Command<{ view: VirtualServerView; created: boolean }> {
  constructor(
    readonly name: string,
    readonly spec: { description: string; tools: string[] },
    readonly correlationId: string,
  ) {
    super();
  }
}

@CommandHandler(DefineVirtualServer)
export class DefineVirtualServerHandler implements ICommandHandler<DefineVirtualServer> {
  constructor(@Inject(VirtualServers) private readonly virtuals: VirtualServers) {}
  execute(c: DefineVirtualServer) {
    return this.virtuals.define(c.name, c.spec, c.correlationId);
  }
}
