/**
 * The revenue analysis template takes only the timeframes its report can list: every period is a
 * row written by one expression with a cost budget, and 9999m passed the input's pattern to fail
 * at the report, after the analysis had run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateInput } from '../definition/index.js';
import { revenueAnalysisTemplate } from './revenue-analysis.js';

describe('revenue_analysis timeframe', () => {
  const check = (timeframe: string) => validateInput(revenueAnalysisTemplate.input, { timeframe }).ok;

  it('takes 1-1000 days and 1-120 months', () => {
    for (const t of ['1d', '30d', '365d', '999d', '1000d', '1m', '12m', '99m', '119m', '120m'])
      assert.equal(check(t), true, t);
  });

  it('refuses longer windows, zeros and other shapes, naming the field', () => {
    for (const t of ['1001d', '9999d', '121m', '200m', '9999m', '0d', '0m', '01m', '12', '12y', ' 12m'])
      assert.equal(check(t), false, t);
    const r = validateInput(revenueAnalysisTemplate.input, { timeframe: '9999m' });
    assert.ok(!r.ok && r.problems.some((p) => p.path === 'timeframe'), JSON.stringify(r));
  });
});

describe('revenue_analysis report_path', () => {
  const check = (input: Record<string, unknown>) => validateInput(revenueAnalysisTemplate.input, input);

  it('has no default: without it each execution names a report of its own (see templates.unit.spec.ts)', () => {
    const r = check({});
    assert.ok(r.ok);
    assert.equal('report_path' in r.value, false);
    assert.match(revenueAnalysisTemplate.input.properties.report_path.description, /execution id/);
  });

  it('takes a path relative to the sandbox root, ending .md, and nothing that could leave it', () => {
    for (const p of ['reports/q4.md', 'q4.md', 'a/b_c/d-e.md']) assert.equal(check({ report_path: p }).ok, true, p);
    for (const p of ['../x.md', '/etc/x.md', 'reports/../x.md', 'reports/x.txt', 'reports//x.md', './x.md', ''])
      assert.equal(check({ report_path: p }).ok, false, p);
  });
});
