import type { Decider, Event } from '@switchyard/domain';
import { WrongExpectedVersionError, type EventStore, type Fence, type RecordedEvent } from './port.js';
import { storableValue } from './internal/storable-text.js';

/** A stream's state as a caller already holds it, with the revision it was folded up to (-1: no stream yet). */
export interface KnownState<S> {
  readonly state: S;
  readonly revision: number;
}

export interface CommandResult<E, S> {
  /** Events this command appended (empty when the decider decided nothing). */
  readonly events: readonly E[];
  readonly state: S;
  /**
   * The state the events were decided against (the one the last, successful round read): what
   * the command found, e.g. to answer "created" or "replaced" as the log records it, not as a
   * read before a conflict's retry saw it.
   */
  readonly decidedFrom: S;
  /** Stream revision after the command (-1: the stream still does not exist). */
  readonly revision: number;
  /** Global position of the last appended event, when anything was appended. */
  readonly position?: number;
  /**
   * `known`: decided against the caller's known state (and appended with its revision, if
   * anything was decided); `read`: decided against a fresh read of the stream.
   */
  readonly decidedOn: 'known' | 'read';
}

/** A decision together with the state after its events, for a decideKnown that folded them already. */
export interface Decision<E, S> {
  readonly events: readonly E[];
  readonly state: S;
}

export interface HandleCommandOptions<C, E, S> {
  /** Read-decide-append rounds before a revision conflict is thrown. Default 10. */
  readonly maxAttempts?: number;
  /** Carried by every append (see Fence). */
  readonly fence?: Fence;
  /**
   * The state the caller holds for the stream: decide against it and append with its revision
   * expected, without reading the stream (one round trip). A revision conflict falls back to
   * read-decide-append.
   */
  readonly known?: KnownState<S>;
  /**
   * How to decide against `known` (default `decider.decide`): lets a caller put more into the
   * same append, e.g. a follow-up command decided against the state the first one leads to.
   * The read-decide-append path always uses `decider.decide`. It may return the state after its
   * events too (a Decision), when it folded them already: they are then not folded again.
   */
  readonly decideKnown?: (command: C, state: S) => readonly E[] | Decision<E, S>;
  /**
   * Which verdicts of `known` stand without reading. A decision against a stale state that
   * appends nothing is caught by no revision check, so by default both go the read way:
   * `refusal` (deciding threw), `empty` (nothing decided).
   */
  readonly trust?: { readonly refusal?: boolean; readonly empty?: boolean };
  /** Called once when the decision against `known` is not what gets appended (before the read way starts). */
  readonly onFallback?: () => void;
}

/**
 * Rebuild a stream's state by folding its events through `evolve`; or, given `from` (a state read
 * from the stream at its revision), fold on only the events appended since.
 */
export async function aggregateStream<E extends Event, S>(
  store: EventStore,
  streamId: string,
  decider: Pick<Decider<unknown, E, S>, 'evolve' | 'initialState'>,
  from?: { readonly state: S; readonly revision: number },
): Promise<{ state: S; revision: number }> {
  const recorded = from
    ? await store.readStream(streamId, { fromRevision: from.revision + 1 })
    : await store.readStream(streamId);
  let state = from ? from.state : decider.initialState;
  for (const e of recorded) state = decider.evolve(state, toDomainEvent<E>(e));
  return { state, revision: recorded.length ? recorded[recorded.length - 1]!.revision : (from?.revision ?? -1) };
}

/**
 * A recorded event as the domain sees it. The data is what the decider appended (the store
 * validates nothing about it), hence the one assertion of the event's type here.
 */
export const toDomainEvent = <E extends Event>(e: RecordedEvent): E =>
  ({ type: e.type, data: e.data, metadata: e.metadata }) as E;

/** The appendable part of a domain event. */
const toNewEvent = (e: Event) => ({ type: e.type, data: e.data, metadata: e.metadata });

/**
 * The decided events as the store will keep them (U+0000 and lone surrogates as U+FFFD, see
 * storable-text.ts): the same array when nothing changes. The caller's state is then folded from
 * these, so a state held in memory and one rebuilt from the log agree (an output's size, a CEL
 * test on its text), and a replay decides the same.
 */
function asStored<E extends Event>(events: readonly E[]): readonly E[] {
  let out: E[] | undefined;
  events.forEach((e, i) => {
    const data = storableValue(e.data);
    const metadata = storableValue(e.metadata);
    if (data !== e.data || metadata !== e.metadata) (out ??= [...events])[i] = { ...e, data, metadata };
  });
  return out ?? events;
}

/**
 * Decide, append with the expected revision. A revision conflict means someone
 * else wrote first: read again and decide again (the decision may differ now). Only conflicts
 * are retried; a domain error goes straight to the caller.
 *
 * With `options.known` the first decision is made against that state and appended with its
 * revision (no read); see HandleCommandOptions for what then falls back to the read way.
 */
export async function handleCommand<C, E extends Event, S>(
  store: EventStore,
  streamId: string,
  decider: Decider<C, E, S>,
  command: C,
  options: HandleCommandOptions<C, E, S> = {},
): Promise<CommandResult<E, S>> {
  const fence = options.fence ? { fence: options.fence } : {};
  const known = options.known;
  if (known) {
    const fast = await decideOnKnown(store, streamId, decider, command, known, options, fence);
    if (fast) return fast;
    options.onFallback?.();
  }
  const maxAttempts = options.maxAttempts ?? 10;
  // After a conflict only the events appended since this read are read and folded onto it: on a
  // busy stream a whole read again took long enough for the next append to come first, every time.
  let read: { state: S; revision: number } | undefined;
  for (let attempt = 1; ; attempt++) {
    read = await aggregateStream(store, streamId, decider, read);
    const { state, revision } = read;
    const events = asStored(decider.decide(command, state));
    if (events.length === 0) return { events, state, decidedFrom: state, revision, decidedOn: 'read' };
    try {
      const result = await store.append(streamId, events.map(toNewEvent), {
        expectedRevision: revision === -1 ? 'no_stream' : revision,
        ...fence,
      });
      const next = events.reduce(decider.evolve, state);
      return {
        events,
        state: next,
        decidedFrom: state,
        revision: result.nextExpectedRevision,
        position: result.position,
        decidedOn: 'read',
      };
    } catch (err) {
      if (!(err instanceof WrongExpectedVersionError) || attempt >= maxAttempts) throw err;
      // Back off a little with jitter so hot streams do not livelock.
      await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
    }
  }
}

/** The known-state round: a result, or undefined when the read way must answer instead. */
async function decideOnKnown<C, E extends Event, S>(
  store: EventStore,
  streamId: string,
  decider: Decider<C, E, S>,
  command: C,
  known: KnownState<S>,
  options: HandleCommandOptions<C, E, S>,
  fence: { fence?: Fence },
): Promise<CommandResult<E, S> | undefined> {
  let decided: readonly E[] | Decision<E, S>;
  try {
    decided = options.decideKnown ? options.decideKnown(command, known.state) : decider.decide(command, known.state);
  } catch (err) {
    if (options.trust?.refusal) throw err;
    return undefined;
  }
  const decidedEvents = isDecision(decided) ? decided.events : decided;
  const events = asStored(decidedEvents);
  if (events.length === 0)
    return options.trust?.empty
      ? { events, state: known.state, decidedFrom: known.state, revision: known.revision, decidedOn: 'known' }
      : undefined;
  try {
    const r = await store.append(streamId, events.map(toNewEvent), {
      expectedRevision: known.revision === -1 ? 'no_stream' : known.revision,
      ...fence,
    });
    const state =
      isDecision(decided) && events === decidedEvents ? decided.state : events.reduce(decider.evolve, known.state);
    return {
      events,
      state,
      decidedFrom: known.state,
      revision: r.nextExpectedRevision,
      position: r.position,
      decidedOn: 'known',
    };
  } catch (err) {
    if (err instanceof WrongExpectedVersionError) return undefined;
    throw err;
  }
}

const isDecision = <E, S>(d: readonly E[] | Decision<E, S>): d is Decision<E, S> => !Array.isArray(d);
