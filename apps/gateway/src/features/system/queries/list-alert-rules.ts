import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/** Alert rules in force, with where each comes from. The monitor answers over NATS (`rules`). */
export class ListAlertRules extends Query<Reply<'rules'>> {
  constructor(readonly correlationId: string) {
    super();
  }
}

@QueryHandler(ListAlertRules)
export class ListAlertRulesHandler implements IQueryHandler<ListAlertRules> {
  constructor(@Inject(SystemMonitorClient) private readonly monitor: SystemMonitorClient) {}
  execute(q: ListAlertRules) {
    return this.monitor.call('rules', {}, q.correlationId);
  }
}
