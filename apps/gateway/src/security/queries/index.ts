/** The API key queries: one class and one handler per file. */
import { ListApiKeysHandler } from './list-api-keys.js';

export { ListApiKeys } from './list-api-keys.js';

export const API_KEY_QUERY_HANDLERS = [ListApiKeysHandler];
