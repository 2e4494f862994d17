import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/** Uptime, incidents, MTTR and SLA per service (or one service). The monitor answers over NATS (`availability`). */
export class GetAvailability extends Query<Reply<'availability'>> {
  constructor(
    readonly service: string | undefined,
    readonly correlationId: string,
  ) {
    super();
  }
}

@QueryHandler(GetAvailability)
export class GetAvailabilityHandler implements IQueryHandler<GetAvailability> {
  constructor(@Inject(SystemMonitorClient) private readonly monitor: SystemMonitorClient) {}
  execute(q: GetAvailability) {
    return this.monitor.call('availability', q.service ? { service: q.service } : {}, q.correlationId);
  }
}
