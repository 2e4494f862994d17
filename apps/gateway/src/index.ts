/**
 * @switchyard/gateway: the HTTP edge. `createGateway(deps, { modules })` builds it in
 * the calling process; feature modules add controllers that validate with
 * @ZodBody/@ZodQuery/@ZodParams and document with @ApiRoute.
 */
export { createGateway, type Gateway } from './gateway.js';
export { GatewayCoreModule, GatewayModule } from './gateway.module.js';
export * from './tokens.js';
export {
  CORRELATION_HEADER,
  CorrelationId,
  correlationIdOf,
  currentCorrelationId,
  currentRequestContext,
  type GatewayRequest,
  type RequestContext,
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
export { readEventsPage, SCAN_CAP } from './events/paging.js';
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
