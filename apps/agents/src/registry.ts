import { AppError } from '@switchyard/platform';
import {
  builtinAgentCards,
  cardToJson,
  checkTaskContext,
  resolveTaskType,
  TASK_TYPE_ALIASES,
  type AgentCardJson,
} from '@switchyard/contracts';
import type { AgentContext, TaskDefinition } from './types.js';
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

/** The six capability cards (@switchyard/contracts); the handlers above run their task types. */
export const agentCards = builtinAgentCards;

/**
 * Validate `rawInput` against the task's schema and run it. Unknown task types are not_found,
 * bad input (an unknown field among it) is a validation error listing each issue; handler errors
 * pass through unchanged.
 */
export async function runTask(requested: string, rawInput: unknown, ctx: AgentContext): Promise<unknown> {
  // An alias (the wire contract's other name of a task type) runs its canonical type.
  const { taskType } = resolveTaskType(requested);
  const def = (taskHandlers as Record<string, TaskDefinition>)[taskType];
  if (!def)
    throw new AppError('not_found', `unknown task type ${requested}`, {
      taskType: requested,
      known: Object.keys(taskHandlers),
      aliases: TASK_TYPE_ALIASES,
    });
  const parsed = checkTaskContext(taskType, def.input, rawInput ?? {});
  if (!parsed.success)
    throw new AppError('validation', parsed.message, {
      taskType,
      // Paths inside the input, as this call has always named them (`customerId`, not `context.customerId`).
      issues: parsed.issues.map((i) => ({ ...i, path: i.path.replace(/^context\.?/, '') })),
    });
  const started = Date.now();
  const result = await def.handle(parsed.data, ctx);
  ctx.logger.info({ taskType, agent: def.agent, ms: Date.now() - started }, 'agent task done');
  return result;
}

export { cardToJson, type AgentCardJson };
