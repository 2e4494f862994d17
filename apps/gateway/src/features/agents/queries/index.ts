/** The agent feature's queries: one class and one handler per file. */
import { GetAgentCapabilitiesHandler } from './get-agent-capabilities.js';
import { GetAgentHealthHandler } from './get-agent-health.js';
import { GetAgentPerformanceHandler } from './get-agent-performance.js';
import { GetAgentsHealthHandler } from './get-agents-health.js';
import { GetTaskHandler } from './get-task.js';

export { GetAgentCapabilities } from './get-agent-capabilities.js';
export { GetAgentHealth } from './get-agent-health.js';
export { GetAgentPerformance } from './get-agent-performance.js';
export { GetAgentsHealth } from './get-agents-health.js';
export { GetTask } from './get-task.js';

export const AGENT_QUERY_HANDLERS = [
  GetAgentsHealthHandler,
  GetAgentHealthHandler,
  GetAgentCapabilitiesHandler,
  GetTaskHandler,
  GetAgentPerformanceHandler,
];
