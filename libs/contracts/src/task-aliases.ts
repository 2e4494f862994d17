import { z } from 'zod';

/**
 * Other names of the built-in agents' task types, as a wire contract: a delegation (HTTP, NATS,
 * a workflow step) may name a task by an alias, and the dispatcher records and runs the
 * canonical type. The aliases are the specification's own names (`analyze_revenue` in its
 * delegation example) and a verb_noun name for every capability it lists per agent; the
 * canonical names stay the ones the agents' cards publish.
 *
 * Defined once here: the agents' registry resolves them on its own contracts (NATS, HTTP
 * `/execute`), the dispatcher and the gateway at the edge of delegation.
 */

const taskTypeName = z.string().regex(/^[a-z][a-z0-9_]{0,99}$/, 'lower-case letters, digits and _');

/** alias -> canonical task type; checked at load (a bad entry fails the import, not a request). */
export const taskTypeAliasTable = z
  .record(taskTypeName, taskTypeName)
  .refine((t) => Object.entries(t).every(([alias, canonical]) => alias !== canonical), 'an alias names itself');

export const TASK_TYPE_ALIASES: Readonly<Record<string, string>> = Object.freeze(
  taskTypeAliasTable.parse({
    // data_analyst: revenue analysis, customer segmentation
    analyze_revenue: 'revenue_analysis',
    segment_customers: 'customer_segmentation',
    // automation_specialist: process automation, workflow optimization
    automate_process: 'process_automation',
    optimize_workflow: 'workflow_optimization',
    // content_creator: proposal generation, marketing content (generate_proposal is canonical already)
    proposal_generation: 'generate_proposal',
    generate_marketing_content: 'marketing_content',
    // customer_success: support responses, satisfaction analysis (customer_support: the quick action's name)
    generate_support_response: 'support_response',
    customer_support: 'support_response',
    analyze_satisfaction: 'satisfaction_analysis',
    // financial_advisor: revenue forecasting, cost optimization
    forecast_revenue: 'revenue_forecast',
    revenue_forecasting: 'revenue_forecast',
    optimize_costs: 'cost_optimization',
    // operations_manager: schedule optimization, performance analysis
    optimize_schedule: 'schedule_optimization',
    analyze_performance: 'performance_analysis',
  }),
);

/** A task name as asked and the canonical type it names (`alias` only when it was one). */
export interface ResolvedTaskType {
  readonly taskType: string;
  readonly alias?: string;
}

/** The canonical task type of `name`: its alias target, else the name itself (unknown names pass through to the caller's check). */
export function resolveTaskType(name: string): ResolvedTaskType {
  const canonical = Object.hasOwn(TASK_TYPE_ALIASES, name) ? TASK_TYPE_ALIASES[name] : undefined;
  return canonical === undefined ? { taskType: name } : { taskType: canonical, alias: name };
}

/** The aliases of one canonical task type, sorted. */
export function aliasesOf(taskType: string): string[] {
  return Object.entries(TASK_TYPE_ALIASES)
    .filter(([, canonical]) => canonical === taskType)
    .map(([alias]) => alias)
    .sort();
}
