export * from './infra.js';
export * from './decider-spec.js';
