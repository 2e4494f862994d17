import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/** Resolve an alert by hand, recording who and why. The monitor answers over NATS (`resolve_alert`). */
export class ResolveAlert extends Command<Reply<'resolve_alert'>> {
  constructor(
    readonly alertId: string,
    readonly actor: string,
    readonly reason: string | undefined,
    readonly correlationId: string,
  ) {
    super();
  }
}

@CommandHandler(ResolveAlert)
export class ResolveAlertHandler implements ICommandHandler<ResolveAlert> {
  constructor(@Inject(SystemMonitorClient) private readonly monitor: SystemMonitorClient) {}
  execute(c: ResolveAlert) {
    return this.monitor.call('resolve_alert', { id: c.alertId, actor: c.actor, reason: c.reason }, c.correlationId);
  }
}
