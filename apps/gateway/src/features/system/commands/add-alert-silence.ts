import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/** Silence alerts matching all matchers over a time range; the actor is recorded. The monitor answers over NATS (`add_silence`). */
export class AddAlertSilence extends Command<Reply<'add_silence'>> {
  constructor(
    readonly matchers: unknown,
    readonly comment: string | undefined,
    readonly createdBy: string,
    readonly startsAt: number,
    readonly endsAt: number,
    readonly correlationId: string,
  ) {
    super();
  }
}

@CommandHandler(AddAlertSilence)
export class AddAlertSilenceHandler implements ICommandHandler<AddAlertSilence> {
  constructor(@Inject(SystemMonitorClient) private readonly monitor: SystemMonitorClient) {}
  execute(c: AddAlertSilence) {
    return this.monitor.call(
      'add_silence',
      { matchers: c.matchers, comment: c.comment, createdBy: c.createdBy, startsAt: c.startsAt, endsAt: c.endsAt },
      c.correlationId,
    );
  }
}
