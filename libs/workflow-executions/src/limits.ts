import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { parseConfig } from '@switchyard/platform';
import { configureWorkflowLimits, defaultWorkflowLimits, type WorkflowLimits } from '@switchyard/domain';

const int = (min: number, max: number, def: number) => z.coerce.number().int().min(min).max(max).default(def);

/** The workflow limits' environment variables (defaults in @switchyard/domain's defaultWorkflowLimits). */
export const workflowLimitsEnvSchema = z.object({
  WORKFLOW_MAX_STEPS: int(1, 100_000, defaultWorkflowLimits.maxSteps),
  WORKFLOW_MAX_NEEDS: int(1, 10_000_000, defaultWorkflowLimits.maxNeeds),
  WORKFLOW_MAX_NESTING_DEPTH: int(4, 1_000, defaultWorkflowLimits.maxNestingDepth),
  WORKFLOW_MAX_DEFINITION_BYTES: int(1_024, 64 * 1024 * 1024, defaultWorkflowLimits.maxDefinitionBytes),
  WORKFLOW_MAX_FOR_EACH_ITEMS: int(1, 1_000_000, defaultWorkflowLimits.maxForEachItems),
  WORKFLOW_MAX_UNITS_IN_FLIGHT: int(1, 1_000_000, defaultWorkflowLimits.maxUnitsInFlight),
  WORKFLOW_EXPRESSION_MAX_COST: int(1_000, 1_000_000_000, defaultWorkflowLimits.expressionMaxCost),
  WORKFLOW_EXPRESSION_TIME_LIMIT_MS: int(1, 60_000, defaultWorkflowLimits.expressionTimeLimitMs),
  WORKFLOW_MAX_SUBWORKFLOW_DEPTH: int(1, 1_000, defaultWorkflowLimits.maxSubworkflowDepth),
  WORKFLOW_MAX_EXECUTIONS_PER_ROOT: int(1, 10_000_000, defaultWorkflowLimits.maxExecutionsPerRoot),
  WORKFLOW_MAX_OUTPUT_BYTES: int(1_024, 4 * 1024 * 1024 * 1024, defaultWorkflowLimits.maxOutputChars),
  WORKFLOW_MAX_STEP_INPUT_BYTES: int(1_024, 1024 * 1024 * 1024, defaultWorkflowLimits.maxStepInputChars),
  WORKFLOW_MAX_DECISION_INPUT_BYTES: int(1_024, 4 * 1024 * 1024 * 1024, defaultWorkflowLimits.maxDecisionMappingChars),
  WORKFLOW_MAX_EXECUTION_INPUT_BYTES: int(1_024, 4 * 1024 * 1024 * 1024, defaultWorkflowLimits.maxExecutionInputChars),
  WORKFLOW_MAX_SIGNALS: int(1, 1_000_000, defaultWorkflowLimits.maxSignals),
  WORKFLOW_MAX_SIGNAL_BYTES: int(1_024, 1024 * 1024 * 1024, defaultWorkflowLimits.maxSignalChars),
});

/** Limits from the environment (a bad value throws a ConfigError naming the variable), with a clock for the expression time limit. */
export function workflowLimitsFromEnv(env: Record<string, string | undefined> = process.env): WorkflowLimits {
  const c = parseConfig(env, workflowLimitsEnvSchema);
  return {
    maxSteps: c.WORKFLOW_MAX_STEPS,
    maxNeeds: c.WORKFLOW_MAX_NEEDS,
    maxNestingDepth: c.WORKFLOW_MAX_NESTING_DEPTH,
    maxDefinitionBytes: c.WORKFLOW_MAX_DEFINITION_BYTES,
    maxForEachItems: c.WORKFLOW_MAX_FOR_EACH_ITEMS,
    maxUnitsInFlight: c.WORKFLOW_MAX_UNITS_IN_FLIGHT,
    expressionMaxCost: c.WORKFLOW_EXPRESSION_MAX_COST,
    expressionTimeLimitMs: c.WORKFLOW_EXPRESSION_TIME_LIMIT_MS,
    maxSubworkflowDepth: c.WORKFLOW_MAX_SUBWORKFLOW_DEPTH,
    maxExecutionsPerRoot: c.WORKFLOW_MAX_EXECUTIONS_PER_ROOT,
    maxOutputChars: c.WORKFLOW_MAX_OUTPUT_BYTES,
    maxStepInputChars: c.WORKFLOW_MAX_STEP_INPUT_BYTES,
    maxDecisionMappingChars: c.WORKFLOW_MAX_DECISION_INPUT_BYTES,
    maxExecutionInputChars: c.WORKFLOW_MAX_EXECUTION_INPUT_BYTES,
    maxSignals: c.WORKFLOW_MAX_SIGNALS,
    maxSignalChars: c.WORKFLOW_MAX_SIGNAL_BYTES,
    clock: () => performance.now(),
  };
}

// Overrides given so far in this process: a gateway and an engine built in one process (the
// launcher, the tests) each apply the limits, and the later call must not undo the earlier's.
let overridesSoFar: Partial<WorkflowLimits> = {};

/**
 * Put this process's limits in force: the environment's, then `overrides` (tests). Called by
 * every component that validates definitions or decides executions (gateway, engine).
 */
export function applyWorkflowLimits(
  overrides: Partial<WorkflowLimits> = {},
  env: Record<string, string | undefined> = process.env,
): WorkflowLimits {
  overridesSoFar = { ...overridesSoFar, ...overrides };
  return configureWorkflowLimits({ ...workflowLimitsFromEnv(env), ...overridesSoFar });
}
