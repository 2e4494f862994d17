export * from './types.js';
export * from './decider.js';
export * from './saga.js';
export { backoffDelay, seededUnit, STEP_QUEUE_WAIT_BUDGET_MS, transientDelay, TRANSIENT_RETRY_BUDGET_MS } from './timing.js';
