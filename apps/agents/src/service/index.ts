export * from '@switchyard/contracts';
export { AgentRuntime, type AgentRuntimeOptions, type RunRequest } from './runtime.js';
export { startAgent, type StartAgentOptions, type AgentHandle } from './agent-service.js';
export {
  startAgentHttp,
  agentHttpCallAuditSchema,
  agentAuditStreamId,
  AGENT_HTTP_AUDIT_EVENT,
  type StartAgentHttpOptions,
  type AgentHttpHandle,
  type AgentHttpCallAudit,
} from './http.js';
export { startAgents, type StartAgentsOptions, type AgentsHandle } from './start-agents.js';
export { noopTask, noopInput, NOOP_TASK_TYPE } from './noop.js';
