export * from './contract.js';
export { AgentRuntime, type AgentRuntimeOptions, type RunRequest } from './runtime.js';
export { startAgent, type StartAgentOptions, type AgentHandle } from './agent-service.js';
export { startAgentHttp, type StartAgentHttpOptions, type AgentHttpHandle } from './http.js';
export { startAgents, type StartAgentsOptions, type AgentsHandle } from './start-agents.js';
export { noopTask, noopInput, NOOP_TASK_TYPE } from './noop.js';
