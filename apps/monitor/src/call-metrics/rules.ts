import type { AlertRule } from '../domain/rules.js';
import { callMetricNames } from './observations.js';

/**
 * Default rules on the call metrics. They watch the window aggregates (a sample every
 * aggregation interval per server/tool), because a rule sees one sample at a time: a rule on
 * single calls would fire on one slow call and clear on the next fast one.
 */
export const callMetricsAlertRules: readonly AlertRule[] = [
  {
    id: 'mcp_call_slow',
    name: 'MCP call p95 above 5 s',
    metric: callMetricNames.mcpCallP95Ms,
    match: {},
    comparator: '>',
    threshold: 5_000,
    for_ms: 60_000,
    severity: 'warning',
    labels: {},
  },
];
