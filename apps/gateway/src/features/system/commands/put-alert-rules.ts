import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/** Add or replace alert rules by id (persisted by the monitor). The monitor answers over NATS (`put_rules`). */
export class PutAlertRules extends Command<Reply<'put_rules'>> {
  constructor(
    readonly rules: unknown[],
    readonly actor: string,
    readonly correlationId: string,
  ) {
    super();
  }
}

@CommandHandler(PutAlertRules)
export class PutAlertRulesHandler implements ICommandHandler<PutAlertRules> {
  constructor(@Inject(SystemMonitorClient) private readonly monitor: SystemMonitorClient) {}
  execute(c: PutAlertRules) {
    return this.monitor.call('put_rules', { rules: c.rules, actor: c.actor }, c.correlationId);
  }
}
