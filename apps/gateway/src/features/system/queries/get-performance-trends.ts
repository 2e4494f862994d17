import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/** Buckets, slope, direction and projection of a metric over a window. The monitor answers over NATS (`trends`). */
export class GetPerformanceTrends extends Query<Reply<'trends'>> {
  constructor(
    readonly metric: string,
    readonly window: string,
    readonly labels: Record<string, string> | undefined,
    readonly correlationId: string,
  ) {
    super();
  }
}

@QueryHandler(GetPerformanceTrends)
export class GetPerformanceTrendsHandler implements IQueryHandler<GetPerformanceTrends> {
  constructor(@Inject(SystemMonitorClient) private readonly monitor: SystemMonitorClient) {}
  execute(q: GetPerformanceTrends) {
    return this.monitor.call(
      'trends',
      { metric: q.metric, window: q.window, ...(q.labels ? { labels: q.labels } : {}) },
      q.correlationId,
    );
  }
}
