import type { WorkflowDefinitionInput } from '../definition/schema.js';
import { customerOnboardingTemplate } from './customer-onboarding.js';
import { customerSupportTemplate } from './customer-support.js';
import { revenueAnalysisTemplate } from './revenue-analysis.js';

export { customerOnboardingTemplate, customerSupportTemplate, revenueAnalysisTemplate };

/** The built-in workflow templates, as data (parse with `workflowDefinitionSchema` or `validateDefinition`). */
export const builtInTemplates: readonly WorkflowDefinitionInput[] = [
  customerOnboardingTemplate,
  revenueAnalysisTemplate,
  customerSupportTemplate,
];

/** Task types the built-in agents serve (`agent:<task_type>`). */
export const AGENT_TASK_TYPES = [
  'revenue_analysis',
  'customer_segmentation',
  'revenue_forecast',
  'cost_optimization',
  'schedule_optimization',
  'performance_analysis',
  'process_automation',
  'workflow_optimization',
  'generate_proposal',
  'marketing_content',
  'support_response',
  'satisfaction_analysis',
] as const;
