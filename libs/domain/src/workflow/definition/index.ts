export * from './schema.js';
export * from './expressions.js';
export * from './input.js';
export * from './validate.js';
export * from './limits.js';
export * from './registration.js';
