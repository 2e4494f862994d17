import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/** Delete an alert rule; its active alerts are resolved. The monitor answers over NATS (`delete_rule`). */
export class DeleteAlertRule extends Command<Reply<'delete_rule'>> {
  constructor(
    readonly id: string,
    readonly actor: string,
    readonly correlationId: string,
  ) {
    super();
  }
}

@CommandHandler(DeleteAlertRule)
export class DeleteAlertRuleHandler implements ICommandHandler<DeleteAlertRule> {
  constructor(@Inject(SystemMonitorClient) private readonly monitor: SystemMonitorClient) {}
  execute(c: DeleteAlertRule) {
    return this.monitor.call('delete_rule', { id: c.id, actor: c.actor }, c.correlationId);
  }
}
