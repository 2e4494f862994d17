export { SystemFeatureModule } from './system.module.js';
export { SystemMonitorClient, SYSTEM_FEATURE_OPTIONS, type SystemFeatureOptions } from './system-client.js';
export { SYSTEM_PATH } from './system.controller.js';
export * from './commands/index.js';
export * from './queries/index.js';
