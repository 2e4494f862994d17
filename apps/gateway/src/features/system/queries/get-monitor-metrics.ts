import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/** The monitor's Prometheus exposition text. The monitor answers over NATS (`metrics`). */
export class GetMonitorMetrics extends Query<Reply<'metrics'>> {
  constructor(readonly correlationId: string) {
    super();
  }
}

@QueryHandler(GetMonitorMetrics)
export class GetMonitorMetricsHandler implements IQueryHandler<GetMonitorMetrics> {
  constructor(@Inject(SystemMonitorClient) private readonly monitor: SystemMonitorClient) {}
  execute(q: GetMonitorMetrics) {
    return this.monitor.call('metrics', {}, q.correlationId);
  }
}
