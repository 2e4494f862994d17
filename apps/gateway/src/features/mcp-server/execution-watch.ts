import type { AllSubscription, EventStore, RecordedEvent } from '@switchyard/event-store';
import { AppError, type Logger } from '@switchyard/platform';
import { workflowExecutionStream } from '@switchyard/domain';

const PREFIX = 'workflow_execution-';
const ENDS = new Set(['WorkflowCompleted', 'WorkflowFailed', 'WorkflowCanceled']);
/** The event types that move an execution (a step settles or starts, the workflow ends). */
const moves = (type: string): boolean =>
  type.startsWith('Step') || type.startsWith('Workflow') || type.startsWith('Compensation');
/** After the shared subscription fails, how long before it starts again from where it was. */
const RESTART_MS = 1_000;

/**
 * Tells MCP resource subscribers when their workflow execution moves, with ONE catch-up
 * subscription to the event log for the whole gateway, whatever the number of subscribers. Each
 * subscriber polling its execution's stream would cost the database a read every few hundred
 * milliseconds per subscription, and a client may hold thousands of them.
 */
export class ExecutionWatch {
  private readonly watchers = new Map<string, Set<() => void>>();
  private sub: AllSubscription | undefined;
  private starting: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly store: EventStore,
    private readonly log: Logger,
  ) {}

  /** Executions watched now (for tests and status). */
  get watched(): number {
    return this.watchers.size;
  }

  /**
   * Call `notify` each time the execution moves, until it ends or the returned stop is called.
   * Throws not_found for an execution without events. An execution that has ended already is
   * not watched (nothing will move it).
   */
  async watch(executionId: string, notify: () => void): Promise<() => void> {
    let set = this.watchers.get(executionId);
    if (!set) this.watchers.set(executionId, (set = new Set()));
    // A function of its own per watch, so two watches with the same notify stay two.
    const watcher = () => notify();
    set.add(watcher);
    const stop = () => {
      set.delete(watcher);
      if (set.size === 0 && this.watchers.get(executionId) === set) this.watchers.delete(executionId);
    };
    try {
      await this.ensureRunning();
      // Registered before this read: whatever comes after it reaches the watcher.
      const [last] = await this.store.readStream(workflowExecutionStream(executionId), {
        direction: 'backwards',
        maxCount: 1,
      });
      if (!last) throw new AppError('not_found', `no workflow execution ${executionId}`, { execution_id: executionId });
      if (ENDS.has(last.type)) stop();
    } catch (err) {
      stop();
      throw err;
    }
    return stop;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watchers.clear();
    await this.sub?.close().catch(() => undefined);
  }

  private ensureRunning(): Promise<void> {
    this.starting ??= this.store.headPosition().then(
      (head) => this.run(head),
      (err: unknown) => {
        this.starting = undefined;
        throw err;
      },
    );
    return this.starting;
  }

  private run(from: number): void {
    if (this.closed) return;
    const sub = this.store.subscribeToAll({ from, streamPrefixes: [PREFIX] });
    this.sub = sub;
    void (async () => {
      let at = from;
      try {
        for await (const e of sub) {
          at = e.position;
          this.deliver(e);
        }
      } catch (err) {
        this.log.warn({ err: String(err), position: at }, 'execution watch subscription failed; starting it again');
      }
      if (!this.closed && this.sub === sub) setTimeout(() => this.run(at), RESTART_MS).unref();
    })();
  }

  private deliver(e: RecordedEvent): void {
    if (!moves(e.type)) return;
    const id = e.streamId.slice(PREFIX.length);
    const set = this.watchers.get(id);
    if (!set) return;
    for (const notify of set) notify();
    if (ENDS.has(e.type)) this.watchers.delete(id);
  }
}
