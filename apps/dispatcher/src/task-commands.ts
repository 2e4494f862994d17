/**
 * The dispatcher's decide-and-append for one task: the shared command path (handleCommand of
 * @switchyard/event-store) with the state and revision this process holds for the task, a
 * follow-up command folded into the same append, and the task's partition fence.
 */
import {
  handleCommand,
  type CommandResult,
  type EventStore,
  type Fence,
  type KnownState,
} from '@switchyard/event-store';
import {
  isDomainError,
  taskDelegationDecider,
  taskStreamId,
  type TaskCommand,
  type TaskEvent,
  type TaskState,
} from '@switchyard/domain';

/** A command to decide right after another, in the same append; `undo` releases what was reserved for it when it is not appended. */
export type FollowUp = (state: TaskState) => { readonly command: TaskCommand; readonly undo: () => void } | undefined;

/**
 * Fast path: decide against the state this process holds for the task (`held`; a SubmitTask
 * with none: the initial state, appended with `no_stream`) and append with its revision, one
 * round trip instead of read + append. Anything that the held state may have got wrong goes
 * the slow way (read, decide, append; retried on conflicts), after `forget`: a revision
 * conflict, a domain error, or a decision to do nothing (which no revision check would catch),
 * except a repeated submission.
 * `follow` may add a second command decided against the state the first one leads to; both go
 * in the same append. Only the fast path uses it: otherwise it is dropped (`undo`).
 */
export async function decideTaskCommand(
  store: EventStore,
  taskId: string,
  command: TaskCommand,
  o: {
    held: KnownState<TaskState> | undefined;
    fence: Fence | undefined;
    follow: FollowUp | undefined;
    forget: () => void;
  },
): Promise<CommandResult<TaskEvent, TaskState>> {
  const { held, fence, follow } = o;
  const known =
    held ?? (command.type === 'SubmitTask' ? { state: taskDelegationDecider.initialState, revision: -1 } : undefined);
  let extra: ReturnType<FollowUp>;
  const dropExtra = () => {
    extra?.undo();
    extra = undefined;
  };
  const decideKnown = (c: TaskCommand, state: TaskState): TaskEvent[] => {
    const events = taskDelegationDecider.decide(c, state);
    if (events.length === 0) return events;
    const after = events.reduce(taskDelegationDecider.evolve, state);
    extra = follow?.(after);
    if (!extra) return events;
    try {
      return [...events, ...taskDelegationDecider.decide(extra.command, after)];
    } catch (err) {
      // The second decision is an optimisation: when the decider refuses it, the first goes alone.
      dropExtra();
      if (!isDomainError(err)) throw err;
      return events;
    }
  };
  try {
    return await handleCommand(store, taskStreamId(taskId), taskDelegationDecider, command, {
      ...(fence ? { fence } : {}),
      ...(known ? { known, decideKnown } : {}),
      // A repeated submission of a task this process is driving (same idempotency key) decides
      // nothing and only reports the state, which this process wrote last: no read needed.
      trust: { empty: held !== undefined && command.type === 'SubmitTask' },
      onFallback: () => {
        dropExtra();
        o.forget();
      },
    });
  } catch (err) {
    dropExtra();
    throw err;
  }
}
