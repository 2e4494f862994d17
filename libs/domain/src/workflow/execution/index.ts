export * from './types.js';
export * from './decider.js';
export * from './saga.js';
export { backoffDelay, seededUnit } from './timing.js';
