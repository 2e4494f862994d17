export { A2aFeatureModule } from './a2a.module.js';
export { A2aPeer, A2A_FEATURE_OPTIONS, roleForMethod, type A2aFeatureOptions } from './peer.js';
export { A2A_BASE, CARD_PATH, DIRECTORY_EXTENSION_URI, WORKFLOWS_ENDPOINT } from './cards.js';
export { NOTIFICATION_TOKEN_HEADER, PushDelivery } from './push.js';
export { A2A_SCHEMA_SQL, migrateA2a } from './store.js';
export { parseWorkRequest, workRequestSchema } from './message.js';
