export * from './types.js';
export * from './decider.js';
export * from './saga.js';
export {
  AGENT_QUEUE_WAIT_BUDGET_MS,
  backoffDelay,
  queueWaitBudgetMs,
  seededUnit,
  storableInstant,
  STEP_QUEUE_WAIT_BUDGET_MS,
  transientDelay,
  TRANSIENT_RETRY_BUDGET_MS,
} from './timing.js';
export {
  checkReplay,
  planFork,
  stateAt,
  type ForkPlan,
  type ReplayDifference,
  type ReplayDifferenceKind,
  type ReplayReport,
  type RevisionedEvent,
} from './operations.js';
