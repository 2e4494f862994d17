import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { agentCards, cardToJson, taskHandlers } from './registry.js';

describe('capability cards', () => {
  it('six agents with distinct names; every task type belongs to exactly one card', () => {
    assert.deepEqual(
      agentCards.map((c) => c.name).sort(),
      ['automation_specialist', 'content_creator', 'customer_success', 'data_analyst', 'financial_advisor', 'operations_manager'],
    );
    for (const [type, def] of Object.entries(taskHandlers)) {
      const owners = agentCards.filter((c) => c.taskTypes.some((t) => t.type === type));
      assert.deepEqual(owners.map((c) => c.name), [def.agent], type);
    }
  });

  it('cards serialise to JSON Schema that round-trips through JSON', () => {
    for (const card of agentCards) {
      const json = JSON.parse(JSON.stringify(cardToJson(card)));
      for (const t of json.taskTypes) {
        assert.equal(t.inputSchema.type, 'object', `${card.name}/${t.type}`);
        assert.ok(t.inputSchema.properties && typeof t.inputSchema.properties === 'object');
      }
    }
    const ra = cardToJson(agentCards.find((c) => c.name === 'data_analyst')!).taskTypes.find((t) => t.type === 'revenue_analysis')!;
    const props = ra.inputSchema.properties as Record<string, { pattern?: string; default?: unknown }>;
    assert.equal(props.timeframe!.default, '12m');
    assert.ok(props.timeframe!.pattern);
  });

  it('schemas apply defaults and reject bad input', () => {
    assert.deepEqual(taskHandlers.revenue_forecast.input.parse({}).horizon, 6);
    assert.equal(taskHandlers.support_response.input.safeParse({ query: '' }).success, false);
    assert.equal(taskHandlers.customer_segmentation.input.safeParse({ k: 1 }).success, false);
    assert.equal(
      taskHandlers.performance_analysis.input.safeParse({ executions: [{ executionId: 'x', steps: [{ stepId: 'a', status: 'succeeded', startedAt: 'yesterday', finishedAt: 'today' }] }] }).success,
      false,
    );
  });
});
