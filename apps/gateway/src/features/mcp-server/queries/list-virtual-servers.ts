import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import type { VirtualServerView } from '../virtual-server.decider.js';
import { VirtualServers } from '../virtual-servers.js';

/** The virtual MCP servers (this process's view of their streams). */
export class ListVirtualServers extends Query<VirtualServerView[]> {}

@QueryHandler(ListVirtualServers)
export class ListVirtualServersHandler implements IQueryHandler<ListVirtualServers> {
  constructor(@Inject(VirtualServers) private readonly virtuals: VirtualServers) {}
  async execute() {
    return this.virtuals.list();
  }
}
