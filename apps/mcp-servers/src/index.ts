/**
 * @switchyard/mcp-servers: the project's own MCP servers (database, fetch, automation,
 * analytics, filesystem and GitHub bridges), their HTTP/stdio hosting and the egress guard.
 */
export {
  startMcpHttpServer,
  type ConnectableServer,
  type McpHttpServerHandle,
  type McpHttpServerOptions,
} from './common/http.js';
export { serveStdio } from './common/stdio.js';
export { mcpCallAuditSchema, mcpAuditStreamId, MCP_CALL_AUDIT_EVENT, type McpCallAudit } from './common/audit.js';
export { tool, toolOk, toolError, asAppError, type ToolContext } from './common/tools.js';
export { mcpConfigSchema, mcpServerKinds, defaultPorts, type McpConfig, type McpServerKind } from './config.js';
export { runMcpServer, type RunOptions, type RunningMcpServer } from './runtime.js';
export { createDatabaseServer, mapPgError, type DatabaseServerDeps } from './database/server.js';
export { EgressGuard, nonPublicRange, type EgressPolicy, type Resolver } from './fetch/egress-guard.js';
export { safeHttpRequest, type SafeRequest, type SafeResponse, type HttpMethod } from './fetch/http-client.js';
export { createFetchServer, defaultFetchLimits, type FetchServerDeps, type FetchServerLimits } from './fetch/server.js';
export { extractHtml } from './fetch/extract-html.js';
export { HtmlExtractor } from './fetch/html-extractor.js';
export {
  AutomationService,
  Scheduler,
  afterMs,
  signWebhook,
  nextFireAfter,
  systemClock,
  scheduleTargetSchema,
  type AutomationDeps,
  type Clock,
  type DeliveryResult,
  type Schedule,
  type ScheduleTarget,
  type TriggerRecord,
  type Webhook,
} from './automation/automation-service.js';
export { webhooksProjection, WEBHOOKS_PROJECTION } from './automation/webhooks.js';
export { schedulesProjection, SCHEDULES_PROJECTION } from './automation/schedules.js';
export { revokedActorsProjection } from './automation/revoked-actors.js';
export { adminActorsProjection } from './automation/admin-actors.js';
export { AUTOMATION_CHECKPOINT_SCHEMA } from './automation/events.js';
export {
  WEBHOOK_EVENT_TYPES,
  webhookDecider,
  webhookStream,
  type WebhookCommand,
  type WebhookEvent,
  type WebhookState,
} from './automation/webhooks.decider.js';
export {
  SCHEDULE_EVENT_TYPES,
  scheduleDecider,
  scheduleStream,
  type ScheduleCommand,
  type ScheduleEvent,
  type ScheduleState,
} from './automation/schedules.decider.js';
export { migrateAutomation } from './automation/schema.js';
export {
  Mailer,
  smtpTransport,
  mailFingerprint,
  keyedMessageId,
  emailMessageSchema,
  mailAddressSchema,
  smtpUrlSchema,
  type EmailMessage,
  type MailResult,
  type MailTransport,
} from './automation/mail.js';
export {
  startMailbox,
  listMailbox,
  mailboxConfigSchema,
  mailboxQuerySchema,
  type MailboxConfig,
  type MailboxMessage,
  type MailboxOptions,
  type RunningMailbox,
} from './automation/mailbox.js';
export { createAutomationServer, type AutomationServerDeps } from './automation/server.js';
export {
  createAnalyticsServer,
  migrateAnalytics,
  parseDuration,
  defaultReportTables,
  type AnalyticsServerDeps,
} from './analytics/server.js';
export {
  startGithubBridge,
  githubServerScript,
  GITHUB_TOKEN_MISSING,
  type GithubBridge,
  type GithubBridgeOptions,
} from './github/bridge.js';
export { startStdioChild, type StdioChild, type StdioChildOptions } from './common/stdio-bridge.js';
export {
  startFilesystemBridge,
  createForwardingServer,
  filesystemServerScript,
  type FilesystemBridge,
  type FilesystemBridgeOptions,
} from './filesystem/bridge.js';
