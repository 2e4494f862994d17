import type { WorkflowDefinitionInput } from '../definition/schema.js';

/** The sandbox root, from the filesystem server's `list_allowed_directories` ("Allowed directories:\n<root>"). */
const ROOT = "steps.fs_root.output.content.split('\\n')[1]";
/**
 * The report's path in the sandbox: `input.report_path` when given, else a file of the execution's
 * own, `reports/revenue-analysis-<start, UTC, YYYYMMDDTHHMMSS.sssZ>-<execution id>.md`. One fixed
 * name made every run overwrite the last one's report while its output still named it. The start
 * time (to the millisecond: runs within one second are common) puts the files in order; both parts
 * are fixed for the execution's life, so a retry or a re-dispatched step writes the same file.
 * (An input default cannot name the execution: defaults are literal JSON, not expressions.)
 */
const REPORT_PATH =
  "(has(input.report_path) ? input.report_path : 'reports/revenue-analysis-' + " +
  "execution.started_at.split('Z')[0].split('-').join('').split(':').join('') + 'Z-' + execution.id + '.md')";
/** Directory part of the report's path ('' for a file at the root). */
const REPORT_DIR =
  "(!has(input.report_path) ? 'reports' : input.report_path.lastIndexOf('/') >= 0 ? input.report_path.substring(0, input.report_path.lastIndexOf('/')) : '')";
const WINDOW = 'steps.fetch_revenue.output.rows[0]';
const A = 'steps.analyze.output';
const F = 'steps.forecast.output';

/**
 * Revenue analysis over the demo business data (`business.orders`):
 * 1. fetch the window's revenue totals with SQL (database server, read-only), anchored on the data's
 *    last order date exactly like the agents, so the agent's figures can be checked against the SQL;
 * 2. analyse patterns (`agent:revenue_analysis`: series, growth, mix, top customers, anomalies) and,
 *    only when `include_forecasts`, forecast (`agent:revenue_forecast`), both pinned to that window;
 * 3. write a markdown report into the filesystem sandbox (official filesystem server: the root comes
 *    from `list_allowed_directories`, the parent directory is created first), by default a file of
 *    the execution's own (REPORT_PATH), named by the output's `report_file`;
 * 4. store the headline figures as analytics metrics (`record_metric`): the default system permits
 *    that, while the database server is read-only by default.
 * A failed forecast does not lose the analysis: the report says why the forecast is missing.
 */
/** Listing the sandbox, making the report's directory and writing the report give the same result however often they run. */
const FILESYSTEM_RETRY: { attempts: number; backoff: Record<string, number>; on: ('unavailable' | 'timeout')[] } = {
  attempts: 3,
  backoff: { initialMs: 1000, factor: 2, maxMs: 10_000, jitter: 0.2 },
  on: ['unavailable', 'timeout'],
};

export const revenueAnalysisTemplate = {
  id: 'revenue_analysis',
  // v3: stored metrics carry a per-execution idempotency key.
  // v4: the filesystem steps (all of them idempotent) are retried when their server is away or
  // does not answer in time (a call running when its process died was lost, and the report with it).
  // v5: without `report_path` each execution writes a report of its own (REPORT_PATH), not one shared file.
  version: 5,
  name: 'Revenue analysis',
  description:
    'Fetch revenue data, analyse patterns, optionally forecast, write a markdown report and store the results as metrics.',
  input: {
    type: 'object',
    properties: {
      timeframe: {
        type: 'string',
        // The report lists every period within one expression budget: 1,000 days or 120 months
        // fit it; 9999m passed the pattern and failed only at the report, after the analysis ran.
        pattern: '^(([1-9][0-9]{0,2}|1000)d|([1-9][0-9]?|1[01][0-9]|120)m)$',
        default: '12m',
        description:
          '<n>d (days, daily buckets, at most 1000d) or <n>m (calendar months, at most 120m) ending at the last order date',
      },
      include_forecasts: { type: 'boolean', default: false },
      forecast_months: { type: 'integer', minimum: 1, maximum: 24, default: 3 },
      report_path: {
        type: 'string',
        // Relative to the sandbox root, no "..": the filesystem server refuses anything outside anyway.
        pattern: '^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\\.md$',
        description:
          'Where to write the report, relative to the filesystem sandbox root (letters, digits, _ and -, folders separated by /, ending .md); ' +
          'a run given the path of an earlier report replaces it. Without it each execution writes its own: ' +
          'reports/revenue-analysis-<start time, UTC, YYYYMMDDTHHMMSS.sssZ>-<execution id>.md. The output report_file names the file written',
      },
    },
    additionalProperties: false,
  },
  steps: [
    {
      id: 'fetch_revenue',
      name: 'Fetch revenue data',
      uses: 'mcp:database/query',
      with: {
        sql:
          "WITH p AS (SELECT substring($1 FROM '^[0-9]+')::int AS n, right($1, 1) AS unit), " +
          'm AS (SELECT max(order_date) AS as_of FROM business.orders), ' +
          "w AS (SELECT CASE WHEN p.unit = 'd' THEN m.as_of - (p.n - 1) " +
          "ELSE (date_trunc('month', m.as_of::timestamp) - make_interval(months => p.n - 1))::date END AS from_date, m.as_of AS to_date FROM p, m) " +
          'SELECT w.from_date::text AS from_date, w.to_date::text AS to_date, coalesce(sum(o.amount), 0)::float8 AS revenue, ' +
          'count(o.id)::int AS orders, count(DISTINCT o.customer_id)::int AS customers ' +
          'FROM w LEFT JOIN business.orders o ON o.order_date BETWEEN w.from_date AND w.to_date GROUP BY w.from_date, w.to_date',
        params: ['${{ input.timeframe }}'],
      },
      retry: {
        attempts: 3,
        backoff: { initialMs: 1000, factor: 2, maxMs: 10_000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 30_000,
    },
    {
      id: 'analyze',
      name: 'Analyse revenue patterns',
      uses: 'agent:revenue_analysis',
      needs: ['fetch_revenue'],
      with: { timeframe: '${{ input.timeframe }}', asOf: `\${{ ${WINDOW}.to_date }}`, includeCohorts: false, topN: 5 },
      retry: {
        attempts: 2,
        backoff: { initialMs: 1000, factor: 2, maxMs: 10_000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 120_000,
    },
    {
      id: 'forecast',
      name: 'Forecast revenue (only when include_forecasts)',
      uses: 'agent:revenue_forecast',
      needs: ['fetch_revenue'],
      if: 'input.include_forecasts',
      with: { horizon: '${{ input.forecast_months }}', asOf: `\${{ ${WINDOW}.to_date }}` },
      retry: {
        attempts: 2,
        backoff: { initialMs: 1000, factor: 2, maxMs: 10_000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 120_000,
      // The analysis is worth a report even when the history is too short to forecast.
      on_error: 'continue',
    },
    {
      id: 'fs_root',
      name: 'Find the filesystem sandbox root',
      uses: 'mcp:filesystem/list_allowed_directories',
      retry: FILESYSTEM_RETRY,
      timeout_ms: 15_000,
    },
    {
      id: 'report_dir',
      name: 'Create the report directory',
      uses: 'mcp:filesystem/create_directory',
      needs: ['fs_root'],
      with: { path: `\${{ ${ROOT} + '/' + ${REPORT_DIR} }}` },
      retry: FILESYSTEM_RETRY,
      timeout_ms: 15_000,
    },
    {
      id: 'write_report',
      name: 'Write the markdown report',
      uses: 'mcp:filesystem/write_file',
      needs: ['analyze', 'forecast', 'report_dir'],
      // The forecast may be skipped (not requested) or failed (continue): the report is still wanted.
      if: "steps.analyze.status == 'succeeded' && steps.report_dir.status == 'succeeded'",
      with: {
        path: `\${{ ${ROOT} + '/' + ${REPORT_PATH} }}`,
        content:
          `# Revenue analysis: last \${{ input.timeframe }} (\${{ ${A}.window.from }} to \${{ ${A}.window.to }})\n\n` +
          '| Figure | Value |\n|---|---:|\n' +
          `| Total revenue | \${{ ${A}.total }} |\n` +
          `| Orders | \${{ ${A}.orderCount }} |\n` +
          `| Customers with orders | \${{ ${A}.customersWithOrders }} |\n` +
          `| Growth, latest vs previous period | \${{ ${A}.growth.latestVsPrevious }} |\n` +
          `| Growth vs the same window a year earlier | \${{ ${A}.growth.windowVsPriorYear }} |\n\n` +
          '## Revenue by period\n\n| Period | Revenue | Orders |\n|---|---:|---:|\n' +
          `\${{ ${A}.series.map(p, '| ' + p.period + ' | ' + string(p.revenue) + ' | ' + string(p.orders) + ' |').join('\\n') }}\n\n` +
          '## Revenue by kind\n\n| Kind | Revenue | Share |\n|---|---:|---:|\n' +
          `\${{ ${A}.byKind.map(k, '| ' + k.kind + ' | ' + string(k.revenue) + ' | ' + string(k.share) + ' |').join('\\n') }}\n\n` +
          '## Top customers\n\n| Customer | Segment | Revenue | Orders |\n|---|---|---:|---:|\n' +
          `\${{ ${A}.topCustomers.map(c, '| ' + c.name + ' | ' + c.segment + ' | ' + string(c.revenue) + ' | ' + string(c.orders) + ' |').join('\\n') }}\n\n` +
          '## Anomalies\n\n' +
          `\${{ size(${A}.anomalies) == 0 ? 'None detected.' : ${A}.anomalies.map(x, '- ' + x.period + ': ' + x.direction + ', ' + string(x.revenue) + ' against ' + string(x.expected) + ' expected').join('\\n') }}\n\n` +
          '## Forecast\n\n' +
          `\${{ steps.forecast.status == 'succeeded' ? ` +
          `'Method: ' + ${F}.model.method + ', back-test MAPE ' + string(${F}.backtest.mapePct) + ' %, forecast total ' + string(${F}.summary.forecastTotal) + '\\n\\n| Month | Forecast | Lower | Upper |\\n|---|---:|---:|---:|\\n' + ` +
          `${F}.forecast.map(f, '| ' + f.month + ' | ' + string(f.forecast) + ' | ' + string(f.lower) + ' | ' + string(f.upper) + ' |').join('\\n') : ` +
          `(steps.forecast.status == 'skipped' ? 'Not requested (include_forecasts is false).' : 'Forecast failed: ' + steps.forecast.error.message) }}\n`,
      },
      retry: FILESYSTEM_RETRY,
      timeout_ms: 15_000,
    },
    {
      id: 'store_results',
      name: 'Store the results as metrics',
      uses: 'mcp:analytics/record_metric',
      needs: ['write_report'],
      for_each: {
        items:
          `[{'name': 'revenue.total', 'value': ${A}.total}, {'name': 'revenue.orders', 'value': ${A}.orderCount}, ` +
          `{'name': 'revenue.customers', 'value': ${A}.customersWithOrders}] + ` +
          `(steps.forecast.status == 'succeeded' ? [{'name': 'revenue.forecast_total', 'value': ${F}.summary.forecastTotal}] : [])`,
        concurrency: 2,
      },
      with: {
        name: '${{ item.name }}',
        value: '${{ item.value }}',
        labels: {
          timeframe: '${{ input.timeframe }}',
          from: `\${{ ${A}.window.from }}`,
          to: `\${{ ${A}.window.to }}`,
          report: `\${{ ${REPORT_PATH} }}`,
        },
        // Recorded once per execution and metric, however often the step is re-dispatched.
        idempotency_key: '${{ execution.id }}:${{ item.name }}',
      },
      retry: {
        attempts: 3,
        backoff: { initialMs: 1000, factor: 2, maxMs: 10_000, jitter: 0.2 },
        on: ['unavailable', 'timeout'],
      },
      timeout_ms: 15_000,
    },
  ],
  outputs: {
    window: { from: `\${{ ${A}.window.from }}`, to: `\${{ ${A}.window.to }}`, timeframe: '${{ input.timeframe }}' },
    total_revenue: `\${{ ${A}.total }}`,
    orders: `\${{ ${A}.orderCount }}`,
    customers_with_orders: `\${{ ${A}.customersWithOrders }}`,
    report_file: `\${{ ${ROOT} + '/' + ${REPORT_PATH} }}`,
    forecast_included: "${{ steps.forecast.status == 'succeeded' }}",
    forecast_total: `\${{ steps.forecast.status == 'succeeded' ? ${F}.summary.forecastTotal : null }}`,
    metrics_recorded: '${{ size(steps.store_results.output) }}',
  },
} as const satisfies WorkflowDefinitionInput;
