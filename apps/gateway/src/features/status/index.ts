export { StatusFeatureModule } from './status.module.js';
export { StatusController, STATUS_PATH } from './status.controller.js';
export { InfrastructureRefresher } from './infra-refresher.js';
export {
  STATUS_FEATURE_OPTIONS,
  resolveStatusOptions,
  type StatusFeatureOptions,
  type ResolvedStatusOptions,
} from './options.js';
export { integrationStatusResponse, integrationStatusExample, type IntegrationStatusResponse } from './schemas.js';
export * from './queries/index.js';
