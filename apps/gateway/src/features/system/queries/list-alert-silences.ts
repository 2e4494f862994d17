import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/** Active silences. The monitor answers over NATS (`silences`). */
export class ListAlertSilences extends Query<Reply<'silences'>> {
  constructor(readonly correlationId: string) {
    super();
  }
}

@QueryHandler(ListAlertSilences)
export class ListAlertSilencesHandler implements IQueryHandler<ListAlertSilences> {
  constructor(@Inject(SystemMonitorClient) private readonly monitor: SystemMonitorClient) {}
  execute(q: ListAlertSilences) {
    return this.monitor.call('silences', {}, q.correlationId);
  }
}
