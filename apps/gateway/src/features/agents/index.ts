export { AgentsFeatureModule } from './agents.module.js';
export {
  AgentsClient,
  AGENTS_FEATURE_OPTIONS,
  type AgentsFeatureOptions,
  type DelegateRequest,
} from './agents.client.js';
export { delegateBody, quickActions } from './schemas.js';
export * from './commands/index.js';
export * from './queries/index.js';
