import { z } from 'zod';
import { AppError } from '@switchyard/platform';
import { aliasesOf, resolveTaskType, TASK_TYPE_ALIASES } from '@switchyard/contracts';
import type { AgentCard, AgentContext, AgentName, TaskDefinition } from './types.js';
import { dataAnalystTasks } from './agents/data-analyst.js';
import { financialAdvisorTasks } from './agents/financial-advisor.js';
import { operationsManagerTasks } from './agents/operations-manager.js';
import { automationSpecialistTasks } from './agents/automation-specialist.js';
import { contentCreatorTasks } from './agents/content-creator.js';
import { customerSuccessTasks } from './agents/customer-success.js';

/** task_type → handler, input schema and owning agent. */
export const taskHandlers = {
  ...dataAnalystTasks,
  ...financialAdvisorTasks,
  ...operationsManagerTasks,
  ...automationSpecialistTasks,
  ...contentCreatorTasks,
  ...customerSuccessTasks,
} as const;
export type TaskType = keyof typeof taskHandlers;

const AGENTS: { name: AgentName; description: string; maxConcurrency: number }[] = [
  { name: 'data_analyst', description: 'Revenue analysis and customer segmentation over the business database', maxConcurrency: 4 },
  { name: 'financial_advisor', description: 'Revenue forecasting with back-tested error, and cost optimisation', maxConcurrency: 4 },
  // The MIP solver is CPU-bound and single-threaded: two at a time is plenty on small hosts.
  { name: 'operations_manager', description: 'Shift scheduling under constraints, and workflow performance analysis', maxConcurrency: 2 },
  { name: 'automation_specialist', description: 'Workflow bottlenecks, failure hot spots, parallelism, retry and schedule proposals', maxConcurrency: 4 },
  { name: 'content_creator', description: 'Proposals and marketing copy filled from real customer figures', maxConcurrency: 8 },
  { name: 'customer_success', description: 'Support replies with intent, sentiment and escalation; satisfaction analysis', maxConcurrency: 8 },
];

/** The six capability cards, built from the registered task definitions. */
export const agentCards: readonly AgentCard[] = AGENTS.map((a) => ({
  ...a,
  version: '1.0.0',
  taskTypes: Object.values(taskHandlers as Record<string, TaskDefinition>)
    .filter((t) => t.agent === a.name)
    .map((t) => ({ type: t.taskType, description: t.description, input: t.input, aliases: aliasesOf(t.taskType) })),
}));

/**
 * Validate `rawInput` against the task's schema and run it. Unknown task types are not_found,
 * bad input is a validation error listing each issue; handler errors pass through unchanged.
 */
export async function runTask(requested: string, rawInput: unknown, ctx: AgentContext): Promise<unknown> {
  // An alias (the wire contract's other name of a task type) runs its canonical type.
  const { taskType } = resolveTaskType(requested);
  const def = (taskHandlers as Record<string, TaskDefinition>)[taskType];
  if (!def) throw new AppError('not_found', `unknown task type ${requested}`, { taskType: requested, known: Object.keys(taskHandlers), aliases: TASK_TYPE_ALIASES });
  const parsed = (def.input).safeParse(rawInput ?? {});
  if (!parsed.success) {
    throw new AppError('validation', `invalid input for ${taskType}`, {
      taskType,
      issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  const started = Date.now();
  const result = await def.handle(parsed.data, ctx);
  ctx.logger.info({ taskType, agent: def.agent, ms: Date.now() - started }, 'agent task done');
  return result;
}

/** A card as plain JSON (input schemas as JSON Schema), for publishing across a process boundary. */
export interface AgentCardJson {
  readonly name: AgentName;
  readonly version: string;
  readonly description: string;
  readonly maxConcurrency: number;
  readonly taskTypes: readonly { readonly type: string; readonly description: string; readonly inputSchema: Record<string, unknown>; readonly aliases: readonly string[] }[];
}

export function cardToJson(card: AgentCard): AgentCardJson {
  return {
    name: card.name,
    version: card.version,
    description: card.description,
    maxConcurrency: card.maxConcurrency,
    taskTypes: card.taskTypes.map((t) => ({
      type: t.type,
      description: t.description,
      // `input` mode: fields with defaults are optional for the caller.
      inputSchema: z.toJSONSchema(t.input, { io: 'input' }),
      aliases: [...t.aliases],
    })),
  };
}
