/**
 * The automation server's side of the event store: its commands (webhook registrations,
 * schedules) go through `handleCommand` (read the stream, decide, append with the expected
 * revision), and its read models (automation.webhooks, automation.schedules) are projections
 * run here by a ProjectionRunner whose checkpoints live in automation.checkpoints.
 *
 * A command answers only once this process's projections have applied it (read-your-writes for
 * the next tool call, e.g. send_webhook right after register_webhook).
 */
import type pg from 'pg';
import {
  handleCommand,
  PostgresEventStore,
  WrongExpectedVersionError,
  type CommandResult,
  type EventStore,
  type NewEvent,
} from '@switchyard/event-store';
import type { Decider, Event } from '@switchyard/domain';
import { ProjectionRunner, type Projection } from '@switchyard/read-models';
import { newId, type Logger } from '@switchyard/platform';
import type { Clock } from './clock.js';
import type { AutomationMetadata } from './webhooks.decider.js';

/** Schema of the runner's checkpoints table: the automation role's own schema. */
export const AUTOMATION_CHECKPOINT_SCHEMA = 'automation';
/** Who the automation server's commands are recorded as (the MCP caller's token name is not known here). */
export const AUTOMATION_ACTOR = 'mcp:automation';

export interface AutomationEventLogOptions {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  readonly clock: Clock;
  /** The event store; default: the PostgreSQL store on `pool` (the automation role may append). */
  readonly store?: EventStore | undefined;
  readonly projections: readonly Projection[];
  /** Run once the runner has started (adopting rows from before the events). */
  readonly onStart?: () => Promise<void>;
}

export class AutomationEventLog {
  readonly store: EventStore;
  readonly runner: ProjectionRunner;
  private readonly ownsStore: boolean;
  private readonly log: Logger;
  private started: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly o: AutomationEventLogOptions) {
    this.log = o.logger;
    this.ownsStore = o.store === undefined;
    this.store = o.store ?? new PostgresEventStore({ pool: o.pool, logger: o.logger });
    this.runner = new ProjectionRunner({
      store: this.store,
      db: { pool: o.pool },
      projections: o.projections,
      schema: AUTOMATION_CHECKPOINT_SCHEMA,
      logger: o.logger,
    });
  }

  /** Init the store (no DDL on a schema-managed pool) and start the projections; once, on first use. */
  start(): Promise<void> {
    this.started ??= (async () => {
      await this.store.init();
      await this.runner.start();
      await this.o.onStart?.();
    })().catch((e: unknown) => {
      this.started = undefined;
      throw e;
    });
    return this.started;
  }

  /** Metadata of a command issued now on behalf of `correlationId` (a new one when absent). */
  metadata(correlationId?: string, actor = AUTOMATION_ACTOR): AutomationMetadata {
    return { timestamp: this.o.clock.now().toISOString(), correlationId: correlationId || newId(), actor };
  }

  /**
   * Run one command on `streamId` and wait until `projection` has applied what it appended in
   * this process. Domain errors (AppError from the decider) reach the caller as they are.
   */
  async run<C, E extends Event, S>(
    streamId: string,
    decider: Decider<C, E, S>,
    command: C,
    projection: string,
  ): Promise<CommandResult<E, S>> {
    await this.start();
    const r = await handleCommand(this.store, streamId, decider, command);
    if (r.position !== undefined) await this.runner.waitFor(r.position, projection);
    if (r.events.length > 0)
      this.log.info(
        {
          correlationId: (command as { metadata?: AutomationMetadata }).metadata?.correlationId,
          streamId,
          events: r.events.map((e) => e.type),
          position: r.position,
        },
        'automation command recorded',
      );
    return r;
  }

  /** Append to a stream only if it does not exist yet (adoption); false when it does. */
  async appendNew(streamId: string, events: readonly NewEvent[]): Promise<boolean> {
    try {
      await this.store.append(streamId, events, { expectedRevision: 'no_stream' });
      return true;
    } catch (e) {
      if (e instanceof WrongExpectedVersionError) return false;
      throw e;
    }
  }

  /** Empty a read model and replay it from the log (the runner must be started). */
  async rebuild(projection: string): Promise<void> {
    await this.start();
    await this.runner.rebuild(projection);
    await this.runner.catchUp();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.started) {
      await this.started.catch(() => undefined);
      await this.runner.stop();
    }
    if (this.ownsStore) await this.store.close();
  }
}
