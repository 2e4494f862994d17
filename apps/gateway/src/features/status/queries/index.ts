/** The status feature's queries: one class and one handler per file. */
import { GetIntegrationStatusHandler } from './get-integration-status.js';

export { GetIntegrationStatus } from './get-integration-status.js';

export const STATUS_QUERY_HANDLERS = [GetIntegrationStatusHandler];
