import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { builtInTemplates } from '@switchyard/domain';
import {
  builtinAgentCards,
  builtinTaskContext,
  builtinTaskTypes,
  cardToJson,
  checkTaskContext,
  contextAliasesOf,
  snakeCaseOf,
  suggestField,
} from './index.js';

const check = (type: keyof typeof builtinTaskTypes, context: unknown) =>
  checkTaskContext(type, builtinTaskTypes[type].input, context);

describe('task context: aliases', () => {
  it('the snake_case spelling of a camelCase field is renamed to it before the schema sees it', () => {
    const r = check('support_response', { query: 'I was double charged', customer_id: 3 });
    assert.ok(r.success, JSON.stringify(r));
    assert.deepEqual(r.context, { query: 'I was double charged', customerId: 3 });
    assert.equal((r.data as { customerId?: number }).customerId, 3);
    const ra = check('revenue_analysis', { top_n: 3, as_of: '2026-01-31', include_cohorts: false });
    assert.ok(ra.success, JSON.stringify(ra));
    assert.deepEqual(ra.context, { topN: 3, asOf: '2026-01-31', includeCohorts: false });
  });

  it('both spellings of one field are refused, naming the alias', () => {
    const r = check('support_response', { query: 'I was double charged', customer_id: 3, customerId: 3 });
    assert.equal(r.success, false);
    assert.ok(!r.success);
    assert.deepEqual(
      r.issues.map((i) => [i.path, i.code]),
      [['context.customer_id', 'both_spellings']],
    );
    assert.match(r.message, /context\.customer_id is the same field as context\.customerId/);
  });

  it('a field with no capital has no alias; the aliases of every built-in type are their snake_case', () => {
    assert.equal(snakeCaseOf('timeframe'), undefined);
    assert.equal(snakeCaseOf('maxShiftsPerDay'), 'max_shifts_per_day');
    assert.deepEqual(contextAliasesOf(builtinTaskTypes.support_response.input), { customer_id: 'customerId' });
    for (const [type, def] of Object.entries(builtinTaskTypes))
      for (const [alias, field] of Object.entries(contextAliasesOf(def.input)))
        assert.equal(snakeCaseOf(field), alias, `${type}.${field}`);
  });
});

describe('task context: unknown fields', () => {
  it('a typo is refused with the field it probably meant', () => {
    const r = check('revenue_analysis', { timefram: '30d' });
    assert.ok(!r.success);
    assert.deepEqual(r.issues, [
      {
        path: 'context.timefram',
        code: 'unknown_field',
        message: 'not a field of revenue_analysis; did you mean timeframe?',
        suggestion: 'timeframe',
      },
    ]);
    assert.equal(
      r.message,
      'invalid context for revenue_analysis: context.timefram is not a field of revenue_analysis; did you mean timeframe?',
    );
  });

  it('another case or spelling of a field names it; a name near none lists the fields', () => {
    for (const given of ['customerid', 'CustomerId', 'customer-id'])
      assert.equal(suggestField(given, ['query', 'customerId']), 'customerId', given);
    const r = check('revenue_analysis', { colour: 'blue' });
    assert.ok(!r.success);
    assert.equal(r.issues[0]!.suggestion, undefined);
    assert.match(r.issues[0]!.message, /its fields: timeframe, asOf, topN, anomalyThreshold, includeCohorts/);
  });

  it("a nested record's unknown field is refused by its path, with its own fields' suggestion", () => {
    const step = {
      stepId: 'fetch',
      status: 'succeeded',
      startedAt: '2026-01-01T00:00:00Z',
      finishedAt: '2026-01-01T00:00:01Z',
      depends_on: [],
    };
    const r = check('performance_analysis', { executions: [{ executionId: 'e1', steps: [step] }] });
    assert.ok(!r.success);
    assert.deepEqual(
      r.issues.map((i) => [i.path, i.suggestion]),
      [['context.executions.0.steps.0.depends_on', 'dependsOn']],
    );
  });

  it('a key named __proto__ is a key like any other (refused), not a prototype', () => {
    const r = check('revenue_analysis', JSON.parse('{"__proto__": {"timeframe": "1d"}}'));
    assert.ok(!r.success);
    assert.deepEqual(
      r.issues.map((i) => i.path),
      ['context.__proto__'],
    );
  });

  it("the schema's own rules still apply after the renaming", () => {
    const r = check('revenue_analysis', { top_n: 0 });
    assert.ok(!r.success);
    assert.equal(r.issues[0]!.path, 'context.topN');
  });
});

describe('published input schemas', () => {
  it('every built-in task type: additionalProperties false, each aliased field says its other spelling', () => {
    for (const card of builtinAgentCards.map(cardToJson))
      for (const t of card.taskTypes) {
        assert.equal(t.inputSchema.additionalProperties, false, t.type);
        const properties = t.inputSchema.properties as Record<string, { description?: string }>;
        for (const [alias, field] of Object.entries(t.contextAliases))
          assert.match(properties[field]!.description ?? '', new RegExp(`also accepted as ${alias}`), t.type);
      }
  });

  it("a context recorded for a built-in type has the schema's names; another type's is left as given", () => {
    assert.deepEqual(builtinTaskContext('support_response', { query: 'abc', customer_id: 1 }), {
      query: 'abc',
      customerId: 1,
    });
    assert.deepEqual(builtinTaskContext('invoice_summary', { customer_id: 1 }), { customer_id: 1 });
  });
});

describe('built-in templates', () => {
  it('pass each agent step only fields its task type knows (a literal step input is checked key by key)', () => {
    let checked = 0;
    for (const template of builtInTemplates)
      for (const step of template.steps) {
        if (typeof step.uses !== 'string' || !step.uses.startsWith('agent:')) continue;
        const type = step.uses.slice('agent:'.length) as keyof typeof builtinTaskTypes;
        const def = builtinTaskTypes[type];
        assert.ok(def, `${template.id}/${step.id}: ${type}`);
        const fields = Object.keys(def.input.shape);
        const given = Object.keys(step.with ?? {});
        for (const k of given)
          assert.ok(fields.includes(k), `${template.id}/${step.id}: ${k} is not a field of ${type}`);
        checked++;
      }
    assert.ok(checked >= 4, `${checked} agent steps`);
  });
});
