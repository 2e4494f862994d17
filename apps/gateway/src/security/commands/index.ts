/** The API key commands: one class and one handler per file. */
import { CreateApiKeyHandler } from './create-api-key.js';
import { RevokeApiKeyHandler } from './revoke-api-key.js';

export { CreateApiKey } from './create-api-key.js';
export { RevokeApiKey } from './revoke-api-key.js';

export const API_KEY_COMMAND_HANDLERS = [CreateApiKeyHandler, RevokeApiKeyHandler];
