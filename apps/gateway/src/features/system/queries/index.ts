/** The system feature's queries: one class and one handler per file. */
import { GetHealthReportHandler } from './get-health-report.js';
import { GetPerformanceTrendsHandler } from './get-performance-trends.js';
import { GetAvailabilityHandler } from './get-availability.js';
import { ListAlertsHandler } from './list-alerts.js';
import { ListAlertSilencesHandler } from './list-alert-silences.js';
import { ListAlertRulesHandler } from './list-alert-rules.js';
import { GetMonitorMetricsHandler } from './get-monitor-metrics.js';

export { GetHealthReport } from './get-health-report.js';
export { GetPerformanceTrends } from './get-performance-trends.js';
export { GetAvailability } from './get-availability.js';
export { ListAlerts } from './list-alerts.js';
export { ListAlertSilences } from './list-alert-silences.js';
export { ListAlertRules } from './list-alert-rules.js';
export { GetMonitorMetrics } from './get-monitor-metrics.js';

export const SYSTEM_QUERY_HANDLERS = [
  GetHealthReportHandler,
  GetPerformanceTrendsHandler,
  GetAvailabilityHandler,
  ListAlertsHandler,
  ListAlertSilencesHandler,
  ListAlertRulesHandler,
  GetMonitorMetricsHandler,
];
