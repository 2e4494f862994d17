import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/** End a silence now; the actor is recorded on the SilenceExpired event. The monitor answers over NATS (`remove_silence`). */
export class RemoveAlertSilence extends Command<Reply<'remove_silence'>> {
  constructor(
    readonly silenceId: string,
    readonly actor: string,
    readonly correlationId: string,
  ) {
    super();
  }
}

@CommandHandler(RemoveAlertSilence)
export class RemoveAlertSilenceHandler implements ICommandHandler<RemoveAlertSilence> {
  constructor(@Inject(SystemMonitorClient) private readonly monitor: SystemMonitorClient) {}
  execute(c: RemoveAlertSilence) {
    return this.monitor.call('remove_silence', { id: c.silenceId, actor: c.actor }, c.correlationId);
  }
}
