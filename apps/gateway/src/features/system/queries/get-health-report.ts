import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/** Overall health with reasons, current metrics and every service. The monitor answers over NATS (`health_report`). */
export class GetHealthReport extends Query<Reply<'health_report'>> {
  constructor(readonly correlationId: string) {
    super();
  }
}

@QueryHandler(GetHealthReport)
export class GetHealthReportHandler implements IQueryHandler<GetHealthReport> {
  constructor(@Inject(SystemMonitorClient) private readonly monitor: SystemMonitorClient) {}
  execute(q: GetHealthReport) {
    return this.monitor.call('health_report', {}, q.correlationId);
  }
}
