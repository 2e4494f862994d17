export * from './relay/index.js';
