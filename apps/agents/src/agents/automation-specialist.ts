import { z } from 'zod';
import { defineTask } from '../types.js';
import { executionRecordSchema, optimiseWorkflow } from '../lib/executions.js';

export const workflowOptimizationInput = z.object({
  executions: z.array(executionRecordSchema).min(1).max(10_000),
  /** attempt failure rate from which a step counts as a hot spot */
  hotSpotRate: z.number().min(0).max(1).default(0.05),
});
export type WorkflowOptimizationInput = z.infer<typeof workflowOptimizationInput>;

export const automationSpecialistTasks = {
  workflow_optimization: defineTask({
    taskType: 'workflow_optimization',
    agent: 'automation_specialist',
    description: 'Bottlenecks, failure hot spots, parallelisable steps, retry and schedule proposals from execution records',
    input: workflowOptimizationInput,
    handle: async (input) => optimiseWorkflow(input.executions, { hotSpotRate: input.hotSpotRate }),
  }),
  process_automation: defineTask({
    taskType: 'process_automation',
    agent: 'automation_specialist',
    description: 'Automation candidates (manual and approval steps by handling time) plus the workflow optimisation findings',
    input: workflowOptimizationInput,
    handle: async (input) => {
      const r = optimiseWorkflow(input.executions, { hotSpotRate: input.hotSpotRate });
      return {
        automationCandidates: r.automationCandidates,
        retryProposals: r.retryProposals,
        scheduleProposals: r.scheduleProposals,
        parallelizable: r.parallelizable,
        bottlenecks: r.bottlenecks,
        failureHotSpots: r.failureHotSpots,
        dependencyInfo: r.dependencyInfo,
      };
    },
  }),
};
