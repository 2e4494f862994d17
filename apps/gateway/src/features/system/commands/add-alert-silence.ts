import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { SystemMonitorClient, type Reply } from '../system-client.js';

/**
 * When a silence holds: an explicit start and end as given, or a length the monitor starts by its
 * own clock (no start: when the monitor takes it), so the gateway's clock never moves it.
 */
export interface SilenceWindow {
  readonly startsAt?: number;
  readonly endsAt?: number;
  readonly durationMs?: number;
}

/** Silence alerts matching all matchers over a time range; the actor is recorded. The monitor answers over NATS (`add_silence`). */
export class AddAlertSilence extends Command<Reply<'add_silence'>> {
  constructor(
    readonly matchers: unknown,
    readonly comment: string | undefined,
    readonly createdBy: string,
    readonly window: SilenceWindow,
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
      { matchers: c.matchers, comment: c.comment, createdBy: c.createdBy, ...c.window },
      c.correlationId,
    );
  }
}
