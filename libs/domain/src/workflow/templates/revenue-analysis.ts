import type { WorkflowDefinitionInput } from '../definition/schema.js';

/**
 * Revenue analysis: fetch revenue by month, analyse patterns (agent), optionally forecast
 * (only when `include_forecasts`), write a markdown report to the filesystem server and store
 * the results in the database.
 */
export const revenueAnalysisTemplate = {
  id: 'revenue_analysis',
  version: 1,
  name: 'Revenue analysis',
  description: 'Fetch revenue data, analyse patterns, optionally forecast, write a markdown report and store the results.',
  input: {
    type: 'object',
    properties: {
      period_start: { type: 'string', description: 'ISO date, inclusive' },
      period_end: { type: 'string', description: 'ISO date, exclusive' },
      include_forecasts: { type: 'boolean', default: false },
      forecast_months: { type: 'integer', minimum: 1, maximum: 24, default: 3 },
      report_path: { type: 'string', default: 'reports/revenue-analysis.md' },
    },
    required: ['period_start', 'period_end'],
  },
  steps: [
    {
      id: 'fetch_revenue',
      name: 'Fetch revenue data',
      uses: 'mcp:database/query',
      with: {
        sql:
          "SELECT to_char(date_trunc('month', paid_at), 'YYYY-MM') AS month, sum(amount)::float8 AS revenue, count(*)::int AS invoices " +
          'FROM invoices WHERE paid_at >= $1 AND paid_at < $2 GROUP BY 1 ORDER BY 1',
        params: ['${{ input.period_start }}', '${{ input.period_end }}'],
      },
      retry: { attempts: 3, backoff: { initialMs: 1000, factor: 2, maxMs: 10_000, jitter: 0.2 }, on: ['unavailable', 'timeout'] },
      timeout_ms: 30_000,
    },
    {
      id: 'analyze',
      name: 'Analyse revenue patterns',
      uses: 'agent:revenue_analysis',
      needs: ['fetch_revenue'],
      with: {
        period: { start: '${{ input.period_start }}', end: '${{ input.period_end }}' },
        revenue: '${{ steps.fetch_revenue.output.rows }}',
      },
      timeout_ms: 120_000,
    },
    {
      id: 'forecast',
      name: 'Forecast revenue',
      uses: 'agent:revenue_forecast',
      needs: ['analyze'],
      if: 'input.include_forecasts',
      with: { history: '${{ steps.fetch_revenue.output.rows }}', months: '${{ input.forecast_months }}' },
      timeout_ms: 120_000,
    },
    {
      id: 'write_report',
      name: 'Write the markdown report',
      uses: 'mcp:filesystem/write_file',
      needs: ['analyze', 'forecast'],
      // The forecast may be skipped by its condition; the report is still wanted.
      if: "steps.analyze.status == 'succeeded'",
      with: {
        path: '${{ input.report_path }}',
        content:
          '# Revenue analysis ${{ input.period_start }} to ${{ input.period_end }}\n\n' +
          '## Patterns\n\n${{ steps.analyze.output.summary }}\n\n' +
          "## Forecast\n\n${{ steps.forecast.status == 'succeeded' ? steps.forecast.output.summary : 'Not requested.' }}\n",
      },
      timeout_ms: 15_000,
    },
    {
      id: 'store_results',
      name: 'Store the results',
      uses: 'mcp:database/query',
      needs: ['write_report'],
      with: {
        sql:
          'INSERT INTO revenue_reports (period_start, period_end, analysis, forecast, report_path) VALUES ($1, $2, $3, $4, $5) RETURNING id',
        params: [
          '${{ input.period_start }}',
          '${{ input.period_end }}',
          '${{ steps.analyze.output }}',
          "${{ steps.forecast.status == 'succeeded' ? steps.forecast.output : null }}",
          '${{ input.report_path }}',
        ],
      },
      retry: { attempts: 3, backoff: { initialMs: 1000, factor: 2, maxMs: 10_000, jitter: 0.2 }, on: ['unavailable', 'timeout'] },
      timeout_ms: 30_000,
    },
  ],
  outputs: {
    report_path: '${{ input.report_path }}',
    summary: '${{ steps.analyze.output.summary }}',
    forecast_included: "${{ steps.forecast.status == 'succeeded' }}",
    report_id: '${{ steps.store_results.output.rows[0].id }}',
  },
} as const satisfies WorkflowDefinitionInput;
