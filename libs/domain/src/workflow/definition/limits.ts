/**
 * Bounds on what one workflow definition may ask for, so that no request an operator sends can
 * freeze the event loop or start unbounded work: the size and shape of a definition, the items
 * of a for_each, the work one expression may do, and how deep and wide sub-workflows may go.
 *
 * Plain data with defaults. Each process sets its own from its environment once at start
 * (`configureWorkflowLimits`, see `workflowLimitsFromEnv` of @switchyard/workflow-executions); deciders read
 * them, so the domain stays free of I/O. The expression time limit needs a clock, which the
 * domain does not own: it only applies when the process injects one (`clock`).
 */
export interface WorkflowLimits {
  /** Steps in one definition. */
  readonly maxSteps: number;
  /**
   * `needs` entries of all the steps together: checking which steps each expression may read
   * walks the graph once per step, so 330 steps each needing every earlier one (54,285 entries in
   * 400 KB) held the event loop for over a second per validation.
   */
  readonly maxNeeds: number;
  /** Nesting depth of the definition's JSON (objects and arrays inside `with`, `outputs`, `input`). */
  readonly maxNestingDepth: number;
  /** The definition serialized as JSON, in bytes. */
  readonly maxDefinitionBytes: number;
  /** Items a for_each step may expand to. */
  readonly maxForEachItems: number;
  /**
   * Units (step attempts, for_each items) one execution has in flight at once, over all its steps:
   * 100 steps of a for_each with a concurrency of 100 put 10,000 in one decision, which held the
   * engine's event loop for 10 s, and their late re-sends then kept the execution from progressing
   * or being canceled for minutes while everyone else's work waited.
   */
  readonly maxUnitsInFlight: number;
  /** Work units one expression evaluation may spend (one per node evaluated, plus list and string sizes). */
  readonly expressionMaxCost: number;
  /** Wall-clock milliseconds one expression evaluation may take (only with a `clock`). */
  readonly expressionTimeLimitMs: number;
  /** Sub-workflow nesting: a root execution is depth 0, its children 1, and so on. */
  readonly maxSubworkflowDepth: number;
  /** Sub-workflow executions started under one root execution (the whole tree, root excluded). */
  readonly maxExecutionsPerRoot: number;
  /**
   * Characters of JSON of the step outputs one execution may hold (see ExecutionData.outputChars):
   * the engine keeps them in memory and the log keeps them forever, and each may be as large as a
   * NATS message, so a for_each of large results could otherwise hold gigabytes.
   */
  readonly maxOutputChars: number;
  /**
   * Characters of JSON (about: strings, keys and scalars counted as written) one resolved step
   * input or compensation input may take. An expression returns its value by reference, so
   * without a bound `with: {k0: "${{input.o}}", …, k99: …}` turned a 0.4 MB request into one
   * 40 MB event; and the input goes to its tool in one NATS message anyway.
   */
  readonly maxStepInputChars: number;
  /** The same, summed over every mapping one decision resolves (the outputs, every step and for_each item it starts). */
  readonly maxDecisionMappingChars: number;
  /**
   * Characters of JSON of the step and compensation inputs one execution may store, over all its
   * steps, for_each items, attempts and re-runs (see ExecutionData.inputChars): each attempt's
   * StepScheduled carries its input, so a 1,000-item for_each or a retry policy of many attempts
   * over a large input otherwise stored hundreds of MB from one request (and the read model and
   * the relay's stream a copy each), which every read of the execution then loaded.
   */
  readonly maxExecutionInputChars: number;
  /**
   * Signals one execution records (consumed, buffered and ignored alike), and the characters of
   * JSON of their payloads together: each is in the execution's stream, which every command and
   * every read folds whole, so an operator sending signals without end made each next one slower
   * (7 s per signal at 800 of 60 KB).
   */
  readonly maxSignals: number;
  readonly maxSignalChars: number;
  /** A monotonic clock in milliseconds (e.g. `performance.now`), injected by the process. */
  readonly clock?: () => number;
}

export const defaultWorkflowLimits: WorkflowLimits = Object.freeze({
  maxSteps: 500,
  maxNeeds: 5_000,
  maxNestingDepth: 32,
  maxDefinitionBytes: 512 * 1024,
  maxForEachItems: 1_000,
  maxUnitsInFlight: 256,
  // A few ms of evaluation on an idle core, and far beyond any sane condition or mapping (a map
  // over 1,000 items costs ~5,000). The cost is the bound (the same on any machine); the time
  // limit only nets what the units do not see, far above what the cost allows: a wall-clock limit
  // near it (25 ms before) failed a built-in template's report step for good on a loaded machine
  // (a process descheduled mid-expression), where the same step passed a moment later.
  expressionMaxCost: 50_000,
  expressionTimeLimitMs: 250,
  maxSubworkflowDepth: 10,
  maxExecutionsPerRoot: 1_000,
  maxOutputChars: 32 * 1024 * 1024,
  maxStepInputChars: 1024 * 1024,
  maxDecisionMappingChars: 32 * 1024 * 1024,
  maxExecutionInputChars: 32 * 1024 * 1024,
  maxSignals: 1_000,
  maxSignalChars: 4 * 1024 * 1024,
});

let current: WorkflowLimits = defaultWorkflowLimits;

/** Set this process's limits (missing fields keep their defaults). Returns what is in force. */
export function configureWorkflowLimits(overrides: Partial<WorkflowLimits>): WorkflowLimits {
  current = Object.freeze({ ...defaultWorkflowLimits, ...stripUndefined(overrides) });
  return current;
}

/** The limits in force in this process. */
export function workflowLimits(): WorkflowLimits {
  return current;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
