export * from './projection.js';
export { ProjectionRunner, type ProjectionRunnerOptions } from './projection-runner.js';
