/**
 * The system status read side: the MCP status projection (run it with the other projections
 * in a ProjectionRunner), the one-call reader behind GET /api/v1/integration/status and the
 * pure overall verdict.
 */
export {
  mcpStatusProjection,
  statusProjections,
  ensureStatusIndexes,
  STATUS_SCHEMA,
  MCP_STATUS_EVENT_TYPES,
  MINUTE_RETENTION_MS,
} from './mcp-projection.js';
export { startStatusProjections, type StartStatusProjectionsOptions } from './start.js';
export { readIntegrationStatus, type ReadIntegrationStatusOptions } from './read.js';
export {
  assessIntegration,
  type AssessOptions,
  type InfrastructureSnapshot,
  type OverallStatus,
  type StatusReason,
} from './assess.js';
export {
  latencyBucket,
  bucketValueMs,
  quantileOfBuckets,
  exactQuantile,
  RATIO as LATENCY_BUCKET_RATIO,
} from './histogram.js';
export {
  integrationReadModelsSchema,
  mcpServerStatusSchema,
  agentStatusSchema,
  agentInstanceStatusSchema,
  alertSummarySchema,
  type IntegrationReadModels,
  type McpServerStatus,
  type AgentStatus,
} from './schemas.js';
