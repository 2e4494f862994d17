/** @switchyard/domain: pure deciders and domain rules. No framework, no I/O, no clock. */
export * from './decider.js';
export * from './workflow/definition/index.js';
export * from './workflow/execution/index.js';
export * from './workflow/templates/index.js';
export * from './workflow/batch/index.js';
export * from './task/index.js';
export * from './bounded-re2.js';
