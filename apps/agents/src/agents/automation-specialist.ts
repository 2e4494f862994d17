import { defineTask } from '../types.js';
import { optimiseWorkflow } from '../lib/executions.js';
import { builtinTaskTypes } from '@switchyard/contracts';

export const automationSpecialistTasks = {
  workflow_optimization: defineTask({
    taskType: 'workflow_optimization',
    ...builtinTaskTypes.workflow_optimization,
    handle: async (input) => optimiseWorkflow(input.executions, { hotSpotRate: input.hotSpotRate }),
  }),
  process_automation: defineTask({
    taskType: 'process_automation',
    ...builtinTaskTypes.process_automation,
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
