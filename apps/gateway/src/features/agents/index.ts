export { AgentsFeatureModule } from './agents.module.js';
export { AgentsClient, type DelegateRequest } from './agents.client.js';
export { delegateBody, quickActions } from './schemas.js';
