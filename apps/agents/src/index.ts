/**
 * @switchyard/agents: the six built-in agents' deterministic work over the business database,
 * their capability cards, and the demo data set they run on.
 */
export { agentCards, taskHandlers, runTask, cardToJson, type TaskType, type AgentCardJson } from './registry.js';
export type { AgentCard, AgentContext, AgentName, TaskDefinition, TaskHandlerFn } from './types.js';
export { noopLlm, type LlmClient } from './llm.js';
export { OpenAiCompatibleLlm, llmFromEnv, figuresOf, type OpenAiCompatibleLlmOptions } from './openai-llm.js';
export { loadDemoData, type LoadDemoDataOptions, type LoadDemoDataResult } from './demo-data/load.js';
export {
  generateDemoData,
  REFERENCE_MONTH,
  SCHEDULE_WEEK_START,
  DEFAULT_SEED,
  ANOMALY_MONTHS,
  type DemoData,
} from './demo-data/generate.js';
export { executionRecordSchema, type ExecutionRecord } from './lib/executions.js';
export { verifySchedule, type ScheduleProblem, type Assignment } from './lib/scheduling.js';
export * from './service/index.js';
