export * from './types.js';
export * from './decider.js';
export * from './priority.js';
export * from './view.js';
