export * from './relay/index.js';
export * from './workflows/index.js';
export * from './delegation/index.js';
export * from './status/index.js';
