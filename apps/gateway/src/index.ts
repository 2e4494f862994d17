/**
 * @switchyard/gateway: the HTTP edge. `createGateway(deps, { modules })` builds it in
 * the calling process; feature modules add controllers that validate with
 * @ZodBody/@ZodQuery/@ZodParams and document with @ApiRoute.
 */
export { createGateway, type Gateway } from './gateway.js';
export { GatewayCoreModule, GatewayModule } from './gateway.module.js';
export * from './tokens.js';
export {
  Actor,
  actorOf,
  currentActor,
  CORRELATION_HEADER,
  CorrelationId,
  correlationIdOf,
  currentCorrelationId,
  currentRequestContext,
  type GatewayRequest,
  type RequestContext,
  type RequestKey,
} from './http/context.js';
export {
  PROBLEM_CONTENT_TYPE,
  problemType,
  toProblem,
  type FieldError,
  type FieldLocation,
  type MappedProblem,
  type ProblemContext,
  type ProblemDetails,
} from './http/problem.js';
export { ProblemFilter, sendProblem } from './http/problem-filter.js';
export {
  fieldErrors,
  parseOrThrow,
  REQUEST_SCHEMAS,
  validationError,
  ZodBody,
  ZodParams,
  ZodQuery,
  ZodValidationPipe,
  type RequestSchemas,
} from './http/validation.js';
export {
  API_ROUTE,
  ApiRoute,
  exampleOf,
  jsonSchemaOf,
  OpenApiRegistry,
  problemSchema,
  type HttpMethod,
  type OpenApiDocument,
  type RouteDoc,
  type RouteSpec,
} from './openapi/registry.js';
export { openApiPath } from './openapi/explorer.js';
export { ReadinessService, type CheckResult, type ReadinessReport } from './health/readiness.service.js';
export { EVENTS_PATH } from './events/events.controller.js';
export { LiveEventsService, sseFrame } from './events/sse.service.js';
export { readEventsPage, SCAN_CAP, SCAN_MAX_CHARS } from './events/paging.js';
export {
  callerSeesRedactedPayloads,
  eventsForCaller,
  PAYLOAD_FIELDS,
  REDACTED_PAYLOAD,
  redactEventPayloads,
} from './events/redaction.js';
export {
  eventJsonSchema,
  eventsPageSchema,
  eventsQuerySchema,
  eventsStreamQuerySchema,
  toEventJson,
  type EventJson,
  type EventsPage,
  type EventsQuery,
  type EventsStreamQuery,
} from './events/schemas.js';
export * from './features/mcp/index.js';
export {
  accessFor,
  PUBLIC,
  PUBLIC_PATHS,
  roleSatisfies,
  roleSchema,
  ROLES,
  type Access,
  type Role,
} from './security/roles.js';
export {
  DEFAULT_LIMITS,
  securityEnvSchema,
  securityOptionsFromEnv,
  type AuthOptions,
  type Limit,
  type RateLimitOptions,
  type ResolvedSecurityOptions,
  type SecurityOptionsInput,
} from './security/options.js';
export {
  adminKeyBanner,
  ApiKeyService,
  SECURITY_SCHEMA_SQL,
  type ApiKeyRecord,
  type ApiKeyServiceOptions,
  type CommandContext,
  type ResolvedKey,
} from './security/api-keys.js';
export {
  generateKey,
  hashSecret,
  KEY_PATTERN,
  parseKey,
  presentedKey,
  type GeneratedKey,
  type ParsedKey,
} from './security/keys.js';
export {
  API_KEY_EVENT_TYPES,
  apiKeyDecider,
  apiKeyStream,
  type ApiKeyCommand,
  type ApiKeyEvent,
  type ApiKeyState,
} from './security/api-key.decider.js';
export { RoleGuard } from './security/auth.guard.js';
export { API_KEYS_PATH } from './security/api-keys.controller.js';
export {
  AUDIT_PATH,
  auditQuerySchema,
  readAuditPage,
  type AuditEntry,
  type AuditPage,
  type AuditQuery,
} from './audit/audit.js';
export * from './features/workflows/index.js';
export * from './features/agents/index.js';
export * from './features/system/index.js';
export * from './features/status/index.js';
export * from './idempotency/index.js';
export * from './features/a2a/index.js';
export {
  MIN_POSITION_HEADER,
  READ_SOURCE_HEADER,
  minPositionOf,
  minPositionQuery,
  ReadRouting,
  type CheckpointRef,
  type ReadRoutingOptions,
} from './http/read-routing.js';
export { RATE_LIMIT_SCHEMA_SQL, RATE_LIMIT_TABLE, RateLimits, type LimitOutcome } from './security/rate-limits.js';
export * from './features/mcp-server/index.js';
