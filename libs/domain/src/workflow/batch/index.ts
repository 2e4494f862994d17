export * from './types.js';
export * from './decider.js';
