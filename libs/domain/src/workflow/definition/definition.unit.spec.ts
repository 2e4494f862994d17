import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkExpression,
  evaluateCondition,
  evaluateExpression,
  ExpressionError,
  mappingExpressions,
  resolveMapping,
} from './expressions.js';
import { validateInput } from './input.js';
import { parseUses, type WorkflowDefinitionInput } from './schema.js';
import { validateDefinition, type ToolCatalog } from './validate.js';

const catalog: ToolCatalog = {
  servers: [
    { name: 'database', tools: ['query'] },
    { name: 'automation', tools: ['send_webhook'] },
  ],
  taskTypes: ['revenue_analysis'],
  definitions: ['child_flow'],
};

const base = (
  steps: WorkflowDefinitionInput['steps'],
  extra: Partial<WorkflowDefinitionInput> = {},
): WorkflowDefinitionInput => ({
  id: 'flow',
  version: 1,
  name: 'Flow',
  steps,
  ...extra,
});

const problems = (def: unknown) =>
  validateDefinition(def, catalog).problems.map((p) => `${p.path} ${p.code}: ${p.message}`);

describe('expressions (CEL)', () => {
  const ctx = {
    input: { customer: { email: 'ann@example.com', tags: ['a', 'b'] }, count: 3, ratio: 0.5 },
    steps: { analyze: { status: 'succeeded', output: { total: 40, items: [{ n: 1 }, { n: 2 }] }, error: null } },
  };

  it('a whole ${{ }} keeps the value type; text with ${{ }} interpolates; literals pass through', () => {
    assert.deepEqual(
      resolveMapping(
        {
          email: '${{ input.customer.email }}',
          total: '${{ steps.analyze.output.total }}',
          list: '${{ steps.analyze.output.items.map(i, i.n) }}',
          text: 'Total ${{ steps.analyze.output.total }} for ${{ input.customer.email }}',
          obj: 'tags=${{ input.customer.tags }}',
          two: '${{ input.count }}-${{ input.customer.email }}',
          nested: [{ x: '${{ input.count + 1 }}' }, 5, true, null],
        },
        ctx,
      ),
      {
        email: 'ann@example.com',
        total: 40,
        list: [1, 2],
        text: 'Total 40 for ann@example.com',
        obj: 'tags=["a","b"]',
        two: '3-ann@example.com',
        nested: [{ x: 4 }, 5, true, null],
      },
    );
  });

  it('keys named __proto__ or constructor are plain keys, in values and as step ids', () => {
    // As JSON.parse gives them (a database row, a fetched page, a signal payload): own keys.
    const row = JSON.parse('{"__proto__":[1,2,3],"constructor":"c","a":1}') as unknown;
    const c = {
      input: { row },
      steps: {
        constructor: { status: 'succeeded', output: JSON.parse('{"constructor":{"n":2}}') as unknown, error: null },
      },
    };
    assert.equal(evaluateExpression('size(input.row)', c), 3);
    assert.equal(evaluateExpression('input.row.a', c), 1);
    assert.deepEqual(evaluateExpression('input.row["__proto__"]', c), [1, 2, 3]);
    assert.equal(evaluateExpression('input.row.constructor', c), 'c');
    assert.equal(evaluateExpression('steps.constructor.output.constructor.n + 1', c), 3);
    assert.equal(evaluateExpression('has(input.row.a) && !has(input.row.b)', c), true);
    // A result keeps them as keys: the JSON it becomes has the same three.
    assert.equal(JSON.stringify(evaluateExpression('input.row', c)), '{"__proto__":[1,2,3],"constructor":"c","a":1}');
  });

  it('uint and duration results are JSON numbers and strings; a type value is an error, never {}', () => {
    assert.equal(evaluateExpression('1u + 2u', ctx), 3);
    assert.equal(evaluateExpression('duration("1.5s")', ctx), '1.5s');
    assert.equal(evaluateExpression('duration("-0.5s")', ctx), '-0.5s');
    assert.equal(evaluateExpression('duration("-1.5s")', ctx), '-1.5s');
    assert.equal(
      evaluateExpression('timestamp("2020-01-01T00:00:00Z") - timestamp("2019-01-01T00:00:00Z")', ctx),
      '31536000s',
    );
    assert.throws(() => evaluateExpression('type(1)', ctx), /not a value JSON can hold/);
  });

  it('mixes int and double arithmetic, compares across them', () => {
    assert.equal(evaluateExpression('steps.analyze.output.total * 1.5', ctx), 60);
    assert.equal(evaluateExpression('input.ratio + 1', ctx), 1.5);
    assert.equal(evaluateCondition('${{ input.count > 2.5 }}', ctx), true);
  });

  it('a result JSON cannot hold is an error, as 1 / 0 is: not a null stored in its place', () => {
    assert.throws(() => evaluateExpression('1 / 0', ctx), ExpressionError);
    for (const e of ['1.5 / 0.0', '1e308 * 10.0', '-1e308 * 10.0', '[1.0, 1.5 / 0.0]', '{"x": 0.0 / 0.0}'])
      assert.throws(() => evaluateExpression(e, ctx), /not a number JSON can hold/, e);
    assert.throws(
      () => evaluateExpression('int(1e19)', ctx),
      /outside int64|not a number JSON can hold|range/,
      'int(1e19)',
    );
    // Whole JSON numbers are CEL ints: int / int divides as integers; a double operand does not.
    assert.equal(evaluateExpression('7 / 2', ctx), 3);
    assert.equal(evaluateExpression('double(7) / 2', ctx), 3.5);
    assert.equal(evaluateExpression('1e308 * 1.0', ctx), 1e308);
  });

  it('a missing key is an error (use has()); a non-boolean condition is an error', () => {
    assert.throws(() => evaluateExpression('input.nope', ctx), ExpressionError);
    assert.equal(evaluateCondition('has(input.nope) && input.nope', ctx), false);
    assert.throws(() => evaluateCondition('input.count', ctx), /not a boolean/);
  });

  it('cannot reach prototypes or the host: no such key, no functions beyond CEL', () => {
    assert.throws(() => evaluateExpression('input.constructor', ctx), /No such key/);
    assert.throws(() => evaluateExpression('input.__proto__', ctx), /No such key/);
    assert.equal(checkExpression('process.exit(1)').ok, false);
  });

  it('check: parse errors, unknown variables, item only inside for_each; collects step references', () => {
    assert.match(checkExpression('input.a +').message ?? '', /Unexpected/);
    assert.equal(checkExpression('secrets.key').ok, false);
    assert.equal(checkExpression('item.x').ok, false);
    assert.equal(checkExpression('item.x', { allowItem: true }).ok, true);
    assert.deepEqual(checkExpression('steps.a.output.x + steps["b"].output.y > 0 && has(steps.c.output)').stepRefs, [
      'a',
      'b',
      'c',
    ]);
  });

  it('lists the expressions of a mapping with their paths', () => {
    assert.deepEqual(mappingExpressions({ a: 'x ${{ input.a }} ${{ input.b }}', b: ['${{ steps.s.output }}'], c: 1 }), [
      { path: 'a', expression: 'input.a' },
      { path: 'a', expression: 'input.b' },
      { path: 'b[0]', expression: 'steps.s.output' },
    ]);
  });

  it('finds embedded expressions as the lazy pattern does, in one scan (no re-scan per unclosed `${{`)', () => {
    // Strings built from the pieces that matter, against the pattern the scan replaced.
    const pieces = ['${{', '}}', ' input.count ', 'x', '$', '{', '}', '${{ input.count }}'];
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let k = 0; k < 2_000; k++) {
      const text = Array.from({ length: 1 + (next() % 8) }, () => pieces[next() % pieces.length]).join('');
      if (/^\s*\$\{\{((?:(?!\}\})[\s\S])*)\}\}\s*$/.test(text)) continue; // a whole-value expression: another path
      const expected = [...text.matchAll(/\$\{\{([\s\S]*?)\}\}/g)].map((m) => ({
        path: 'v',
        expression: m[1]!.trim(),
      }));
      assert.deepEqual(mappingExpressions({ v: text }), expected, JSON.stringify(text));
      if (expected.every((e) => e.expression === 'input.count'))
        assert.equal(
          (resolveMapping({ v: text }, ctx) as { v: string }).v,
          text.replace(/\$\{\{([\s\S]*?)\}\}/g, '3'),
          JSON.stringify(text),
        );
    }
    // 170,000 unclosed `${{` (510 KB, under the definition size limit): no expression, and the
    // text is kept as it is. The pattern took 11 s of the event loop on this one string.
    const unclosed = '${{'.repeat(170_000);
    assert.deepEqual(mappingExpressions({ v: unclosed }), []);
    assert.deepEqual(resolveMapping({ v: `a ${unclosed}` }, ctx, 'outputs'), { v: `a ${unclosed}` });
  });
});

describe('validateDefinition', () => {
  it('accepts a correct definition and applies defaults', () => {
    const r = validateDefinition(
      base([
        { id: 'a', uses: 'mcp:database/query' },
        { id: 'b', uses: 'agent:revenue_analysis', needs: ['a'], with: { rows: '${{ steps.a.output.rows }}' } },
        { id: 'c', uses: 'workflow:child_flow', needs: ['b'], if: "steps.b.status == 'succeeded'" },
      ]),
      catalog,
    );
    assert.equal(r.ok, true);
    assert.ok(r.ok);
    assert.equal(r.definition.steps[0]!.on_error, 'fail');
    assert.deepEqual(r.definition.steps[0]!.needs, []);
  });

  it('names the cycle', () => {
    assert.deepEqual(
      problems(
        base([
          { id: 'a', uses: 'mcp:database/query', needs: ['c'] },
          { id: 'b', uses: 'mcp:database/query', needs: ['a'] },
          { id: 'c', uses: 'mcp:database/query', needs: ['b'] },
          { id: 'd', uses: 'mcp:database/query', needs: ['d'] },
        ]),
      ),
      ['steps[0].needs cycle: dependency cycle: a -> c -> b -> a', 'steps[3].needs cycle: dependency cycle: d -> d'],
    );
  });

  it('reports unknown needs, duplicate ids, unknown server, tool, task type and definition, all at once', () => {
    assert.deepEqual(
      problems(
        base([
          { id: 'a', uses: 'mcp:database/query', needs: ['ghost'] },
          { id: 'a', uses: 'mcp:database/drop_everything' },
          { id: 'b', uses: 'mcp:mailer/send' },
          { id: 'c', uses: 'agent:astrology' },
          { id: 'd', uses: 'workflow:nowhere' },
          { id: 'e', uses: 'workflow:flow' },
        ]),
      ),
      [
        'steps[1].id duplicate_id: duplicate step id "a" (first at steps[0])',
        'steps[0].needs[0] unknown_ref: step "a" needs unknown step "ghost"',
        'steps[1].uses unknown_tool: MCP server "database" has no tool "drop_everything" (known: query)',
        'steps[2].uses unknown_server: unknown MCP server "mailer" (known: database, automation)',
        'steps[3].uses unknown_task_type: unknown agent task type "astrology"',
        'steps[4].uses unknown_definition: unknown workflow definition "nowhere"',
        'steps[5].uses unknown_definition: step "e" runs its own workflow "flow" (recursion)',
      ],
    );
  });

  it('does not check the tools of a server that has not listed them yet (connecting), only that it exists', () => {
    const connecting: ToolCatalog = { ...catalog, servers: [{ name: 'analytics' }] };
    const def = base([{ id: 'a', uses: 'mcp:analytics/record_metric' }]);
    assert.deepEqual(validateDefinition(def, connecting).problems, []);
    assert.deepEqual(
      validateDefinition(base([{ id: 'a', uses: 'mcp:mailer/send' }]), connecting).problems.map((p) => p.code),
      ['unknown_server'],
    );
  });

  it('reports bad expressions: parse errors, unknown steps, steps not upstream, item outside for_each', () => {
    assert.deepEqual(
      problems(
        base(
          [
            { id: 'a', uses: 'mcp:database/query', with: { sql: '${{ input.x + }}' } },
            { id: 'b', uses: 'mcp:database/query', if: 'steps.c.output.ok', with: { v: '${{ steps.ghost.output }}' } },
            { id: 'c', uses: 'mcp:database/query', needs: ['a'], with: { v: 'n=${{ item }}' } },
            { id: 'd', uses: 'mcp:database/query', needs: ['c'], with: { v: '${{ steps.a.output }}' } },
          ],
          { outputs: { x: '${{ steps.zzz.output }}' } },
        ),
      ).map((p) => p.replace(/: bad expression .*?: .*/, ': bad expression')),
      [
        'steps[0].with.sql bad_expression: bad expression',
        'steps[1].if bad_expression: expression "steps.c.output.ok" reads step "c", which is not upstream of "b" (add it to needs)',
        'steps[1].with.v bad_expression: expression "steps.ghost.output" reads unknown step "ghost"',
        'steps[2].with.v bad_expression: bad expression',
        'outputs.x bad_expression: expression "steps.zzz.output" reads unknown step "zzz"',
      ],
    );
  });

  it('checks compensation targets', () => {
    assert.deepEqual(
      problems(
        base([
          { id: 'a', uses: 'mcp:database/query', on_error: { compensate: 'ghost' } },
          { id: 'b', uses: 'mcp:database/query', on_error: { compensate: 'b' } },
          { id: 'c', uses: 'mcp:database/query', on_error: { compensate: 'undo' } },
          { id: 'undo', uses: 'mcp:database/query' },
          { id: 'd', uses: 'mcp:database/query', needs: ['undo'] },
        ]),
      ),
      [
        'steps[4].needs[0] bad_compensation: "undo" is a compensation step and never runs in the normal flow, so "d" cannot need it',
        'steps[0].on_error.compensate unknown_ref: step "a" compensates with unknown step "ghost"',
        'steps[1].on_error.compensate bad_compensation: step "b" cannot compensate itself',
      ],
    );
  });

  it('refuses a compensation that names a compensation of its own (two steps compensating each other left no main step)', () => {
    assert.deepEqual(
      problems(
        base([
          { id: 'a', uses: 'mcp:database/query', on_error: { compensate: 'b' } },
          { id: 'b', uses: 'mcp:database/query', on_error: { compensate: 'a' } },
        ]),
      ),
      [
        'steps[0].on_error.compensate bad_compensation: step "a" is a compensation (another step compensates with it) and cannot name a compensation of its own',
        'steps[1].on_error.compensate bad_compensation: step "b" is a compensation (another step compensates with it) and cannot name a compensation of its own',
      ],
    );
    assert.deepEqual(
      problems(
        base([
          { id: 'main', uses: 'mcp:database/query', on_error: { compensate: 'undo' } },
          { id: 'undo', uses: 'mcp:database/query', on_error: { compensate: 'undo_undo' } },
          { id: 'undo_undo', uses: 'mcp:database/query' },
        ]),
      ),
      [
        'steps[1].on_error.compensate bad_compensation: step "undo" is a compensation (another step compensates with it) and cannot name a compensation of its own',
      ],
    );
  });

  it("refuses a for_each compensation that an on_error names too, the same step's included (its step-level run has no output)", () => {
    const make = {
      id: 'make',
      uses: 'mcp:database/query',
      with: { n: '${{ item }}' },
      for_each: { items: '[1, 2]', compensate: 'undo' },
    };
    const undo = { id: 'undo', uses: 'mcp:database/query', with: { id: '${{ output.id }}' } };
    assert.deepEqual(problems(base([{ ...make, on_error: { compensate: 'undo' } }, undo])), [
      'steps[0].for_each.compensate bad_compensation: compensation step "undo" undoes the items of "make" and cannot also be its on_error compensation (a step-level run has no item output)',
      'steps[1].with.id bad_expression: bad expression "output.id": Unknown variable: output',
    ]);
    assert.deepEqual(
      problems(base([make, undo, { id: 'other', uses: 'mcp:database/query', on_error: { compensate: 'undo' } }])),
      [
        'steps[0].for_each.compensate bad_compensation: compensation step "undo" undoes the items of "make" and cannot also compensate "other"',
        'steps[1].with.id bad_expression: bad expression "output.id": Unknown variable: output',
      ],
    );
    assert.deepEqual(problems(base([make, undo])), []);
  });

  it('refuses a sub-workflow as a compensation, of a step or of for_each items (the engine never runs one as an undo)', () => {
    const child = { id: 'undo', uses: 'workflow:child_flow' };
    assert.deepEqual(
      problems(base([{ id: 'a', uses: 'mcp:database/query', on_error: { compensate: 'undo' } }, child])),
      ['steps[0].on_error.compensate bad_compensation: compensation step "undo" cannot be a sub-workflow'],
    );
    assert.deepEqual(
      problems(
        base([{ id: 'make', uses: 'mcp:database/query', for_each: { items: '[1, 2]', compensate: 'undo' } }, child]),
      ),
      ['steps[0].for_each.compensate bad_compensation: compensation step "undo" cannot be a sub-workflow'],
    );
  });

  it('returns schema problems with paths when the shape is wrong', () => {
    const r = validateDefinition({ id: 'Bad Id', version: 0, name: 'x', steps: [{ id: 'a', uses: 'ftp:x' }] }, catalog);
    assert.equal(r.ok, false);
    assert.deepEqual(
      r.problems.map((p) => [p.path, p.code]),
      [
        ['id', 'schema'],
        ['version', 'schema'],
        ['steps[0].uses', 'schema'],
      ],
    );
  });
});

describe('validateInput and parseUses', () => {
  const schema = {
    type: 'object' as const,
    properties: {
      customer: {
        type: 'object' as const,
        properties: { email: { type: 'string' as const, format: 'email' } },
        required: ['email'],
      },
      n: { type: 'integer' as const, default: 3 },
    },
    required: ['customer'],
  };

  it('applies defaults and reports every problem with its path', () => {
    assert.deepEqual(validateInput(schema, { customer: { email: 'a@b.io' } }), {
      ok: true,
      value: { customer: { email: 'a@b.io' }, n: 3 },
    });
    const bad = validateInput(schema, { customer: { email: 'nope' }, n: 1.5 });
    assert.equal(bad.ok, false);
    assert.ok(!bad.ok);
    assert.deepEqual(bad.problems.map((p) => p.path).sort(), ['customer.email', 'n']);
  });

  it('splits uses references', () => {
    assert.deepEqual(parseUses('mcp:database/query'), { kind: 'mcp', server: 'database', tool: 'query' });
    assert.deepEqual(parseUses('agent:support_response'), { kind: 'agent', taskType: 'support_response' });
    assert.deepEqual(parseUses('workflow:customer_onboarding'), {
      kind: 'workflow',
      definitionId: 'customer_onboarding',
    });
  });
});
