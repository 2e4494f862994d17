import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/** Alerts, firing first, filtered by state and severity. The monitor answers over NATS (`alerts`). */
export class ListAlerts extends Query<Reply<'alerts'>> {
  constructor(
    readonly filter: Record<string, unknown>,
    readonly correlationId: string,
  ) {
    super();
  }
}

@QueryHandler(ListAlerts)
export class ListAlertsHandler implements IQueryHandler<ListAlerts> {
  constructor(@Inject(SystemMonitorClient) private readonly monitor: SystemMonitorClient) {}
  execute(q: ListAlerts) {
    return this.monitor.call('alerts', q.filter, q.correlationId);
  }
}
