import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';

/**
 * One JSON-schema validator for every McpServer of this process. In stateless HTTP mode a
 * server is built per request, and each would otherwise build its own Ajv instance: that
 * setup alone was ~6% of the main thread's time under load (bench/mcp profile).
 */
export const sharedJsonSchemaValidator = new AjvJsonSchemaValidator();
