import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { AppError } from '@switchyard/platform';
import type { VirtualServerView } from '../virtual-server.decider.js';
import { VirtualServers } from '../virtual-servers.js';

/** One virtual MCP server; 404 when there is none of that name. */
export class GetVirtualServer extends Query<VirtualServerView> {
  constructor(readonly name: string) {
    super();
  }
}

@QueryHandler(GetVirtualServer)
export class GetVirtualServerHandler implements IQueryHandler<GetVirtualServer> {
  constructor(@Inject(VirtualServers) private readonly virtuals: VirtualServers) {}
  async execute(q: GetVirtualServer) {
    const v = this.virtuals.get(q.name);
    if (!v) throw new AppError('not_found', `no virtual MCP server named "${q.name}"`, { name: q.name });
    return v;
  }
}
