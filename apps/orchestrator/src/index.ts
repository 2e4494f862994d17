export * from './relay/index.js';
export * from './workflows/index.js';
