/**
 * The decider pattern: an aggregate is three pure pieces.
 * `decide` turns a command and the current state into events (or throws a DomainError),
 * `evolve` folds one event into the state, `initialState` is the state of an empty stream.
 * No I/O and no clock here: time arrives in the command's metadata.
 */
export interface Decider<C, E, S> {
  // Function properties, not methods: deciders never use `this`, so `events.reduce(d.evolve, s)` is safe.
  readonly decide: (command: C, state: S) => E[];
  readonly evolve: (state: S, event: E) => S;
  readonly initialState: S;
}

/**
 * Metadata every command carries. `timestamp` is the only source of "now" a decider may use.
 * A type alias, not an interface, on purpose: an alias is assignable to the event store's
 * `EventMetadata` (which has an index signature for extra keys), so domain events are appended
 * as they are, without casts.
 */
export type CommandMetadata = {
  /** ISO-8601 instant at which the command was issued (the decider's clock). */
  readonly timestamp: string;
  /** Who asked: a user id, `system:orchestrator`, ... */
  readonly actor?: string;
  /** Ties together everything done on behalf of one request. */
  readonly correlationId: string;
  /** Id of the message (event or command) that caused this command, if any. */
  readonly causationId?: string;
};

/** Commands are plain readonly values; their type is imperative (`StartWorkflow`). */
export interface Command<T extends string = string, D = unknown, M = CommandMetadata> {
  readonly type: T;
  readonly data: D;
  readonly metadata: M;
}

/** Events are plain readonly values; their type is past tense (`StepSucceeded`). */
export interface Event<T extends string = string, D = unknown, M = EventMetadata> {
  readonly type: T;
  readonly data: D;
  readonly metadata: M;
}

/** Events carry the metadata of the command that produced them, so correlation survives replay. */
export type EventMetadata = CommandMetadata;

/** Codes a domain error can carry, with the HTTP status the gateway maps each to. */
export const domainErrorStatus = {
  validation: 400,
  not_found: 404,
  illegal_state: 409,
} as const;

export type DomainErrorCode = keyof typeof domainErrorStatus;

/**
 * A rule of the domain was broken. Same shape as `AppError` of @switchyard/platform
 * (code, message, details, retryable, status, toJSON) so the gateway maps both alike;
 * it is its own class because libs/domain must not import platform (which pulls in node:* and I/O).
 * Domain errors are never retryable: the same command on the same state fails the same way.
 */
export class DomainError extends Error {
  readonly retryable = false;

  constructor(
    readonly code: DomainErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'DomainError';
  }

  /** HTTP status for this error's code. */
  get status(): number {
    return domainErrorStatus[this.code];
  }

  toJSON(): { code: DomainErrorCode; message: string; details: Record<string, unknown>; retryable: boolean } {
    return { code: this.code, message: this.message, details: this.details, retryable: this.retryable };
  }
}

export const isDomainError = (e: unknown): e is DomainError => e instanceof DomainError;

/** Fold a list of events into a state, starting from the decider's initial state (or `from`). */
export function foldEvents<C, E, S>(decider: Decider<C, E, S>, events: readonly E[], from?: S): S {
  return events.reduce((s, e) => decider.evolve(s, e), from ?? decider.initialState);
}

/** Compile-time exhaustiveness guard for `switch` statements over unions. */
export function assertNever(value: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(value)}`);
}
