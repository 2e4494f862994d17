import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  aliasesOf,
  builtinTaskTypes,
  PLAN_NAMES,
  resolveTaskType,
  TASK_TYPE_ALIASES,
  taskTypeAliasTable,
} from '@switchyard/contracts';
import { PLAN_LADDER } from './agents/content-creator.js';
import { agentCards, cardToJson, taskHandlers } from './registry.js';

describe('capability cards', () => {
  it('six agents with distinct names; every task type belongs to exactly one card', () => {
    assert.deepEqual(agentCards.map((c) => c.name).sort(), [
      'automation_specialist',
      'content_creator',
      'customer_success',
      'data_analyst',
      'financial_advisor',
      'operations_manager',
    ]);
    for (const [type, def] of Object.entries(taskHandlers)) {
      const owners = agentCards.filter((c) => c.taskTypes.some((t) => t.type === type));
      assert.deepEqual(
        owners.map((c) => c.name),
        [def.agent],
        type,
      );
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
    const ra = cardToJson(agentCards.find((c) => c.name === 'data_analyst')!).taskTypes.find(
      (t) => t.type === 'revenue_analysis',
    )!;
    const props = ra.inputSchema.properties as Record<string, { pattern?: string; default?: unknown }>;
    assert.equal(props.timeframe!.default, '12m');
    assert.ok(props.timeframe!.pattern);
  });

  it('schemas apply defaults and reject bad input', () => {
    assert.deepEqual(taskHandlers.revenue_forecast.input.parse({}).horizon, 6);
    assert.equal(taskHandlers.support_response.input.safeParse({ query: '' }).success, false);
    assert.equal(taskHandlers.customer_segmentation.input.safeParse({ k: 1 }).success, false);
    assert.equal(
      taskHandlers.performance_analysis.input.safeParse({
        executions: [
          {
            executionId: 'x',
            steps: [{ stepId: 'a', status: 'succeeded', startedAt: 'yesterday', finishedAt: 'today' }],
          },
        ],
      }).success,
      false,
    );
  });
});

describe('task type aliases', () => {
  const canonical = Object.keys(taskHandlers);

  it('every alias resolves to a task type some agent handles', () => {
    for (const [alias, type] of Object.entries(TASK_TYPE_ALIASES)) {
      assert.ok(canonical.includes(type), `${alias} -> ${type}: no agent handles ${type}`);
      assert.ok(
        agentCards.some((c) => c.taskTypes.some((t) => t.type === type)),
        `${alias} -> ${type}: on no card`,
      );
      assert.deepEqual(resolveTaskType(alias), { taskType: type, alias });
    }
  });

  it('no alias is a canonical name (of its own type or another)', () => {
    for (const alias of Object.keys(TASK_TYPE_ALIASES))
      assert.ok(!canonical.includes(alias), `${alias} is a canonical task type`);
    for (const type of canonical) assert.deepEqual(resolveTaskType(type), { taskType: type });
  });

  it("the specification's task names and a verb_noun name for each of its twelve capabilities resolve", () => {
    const expected: Record<string, string> = {
      analyze_revenue: 'revenue_analysis',
      segment_customers: 'customer_segmentation',
      automate_process: 'process_automation',
      optimize_workflow: 'workflow_optimization',
      generate_proposal: 'generate_proposal',
      generate_marketing_content: 'marketing_content',
      generate_support_response: 'support_response',
      analyze_satisfaction: 'satisfaction_analysis',
      forecast_revenue: 'revenue_forecast',
      optimize_costs: 'cost_optimization',
      optimize_schedule: 'schedule_optimization',
      analyze_performance: 'performance_analysis',
    };
    for (const [name, type] of Object.entries(expected)) assert.equal(resolveTaskType(name).taskType, type, name);
    // Every canonical type is reachable by some verb_noun name (its own or an alias).
    for (const type of canonical) assert.ok(Object.values(expected).includes(type), type);
  });

  it("cards carry each type's aliases; unknown names pass through unresolved; the table refuses an alias of itself", () => {
    const ra = cardToJson(agentCards.find((c) => c.name === 'data_analyst')!).taskTypes.find(
      (t) => t.type === 'revenue_analysis',
    )!;
    assert.deepEqual(ra.aliases, ['analyze_revenue']);
    assert.deepEqual(aliasesOf('revenue_forecast'), ['forecast_revenue', 'revenue_forecasting']);
    assert.deepEqual(resolveTaskType('telepathy'), { taskType: 'telepathy' });
    assert.deepEqual(resolveTaskType('toString'), { taskType: 'toString' });
    assert.equal(taskTypeAliasTable.safeParse({ x: 'x' }).success, false);
    assert.equal(taskTypeAliasTable.safeParse({ 'Bad Name': 'revenue_analysis' }).success, false);
  });

  it("the handlers serve exactly the contract's built-in task types, with its input schemas and agents", () => {
    assert.deepEqual(Object.keys(taskHandlers).sort(), Object.keys(builtinTaskTypes).sort());
    for (const [type, def] of Object.entries(taskHandlers)) {
      const card = builtinTaskTypes[type as keyof typeof builtinTaskTypes];
      assert.equal(def.input, card.input, type);
      assert.equal(def.agent, card.agent, type);
      assert.equal(def.description, card.description, type);
    }
    assert.deepEqual(
      PLAN_LADDER.map((p) => p.plan),
      [...PLAN_NAMES],
    );
  });
});
