import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { decideAfter } from '../execution/saga.js';
import { decideWorkflow } from '../execution/decider.js';
import { cmd, fold, history, meta, T0, types } from '../execution/spec-helpers.js';
import type { WorkflowCommand, WorkflowEvent } from '../execution/types.js';
import { cachedExpressions, checkExpression, evaluateExpression, ExpressionLimitError } from './expressions.js';
import { configureWorkflowLimits, defaultWorkflowLimits, workflowLimits } from './limits.js';
import type { WorkflowDefinitionInput } from './schema.js';
import { cachedDefinitionChecks, validateDefinition } from './validate.js';
import { validateInput } from './input.js';

const items300 = Array.from({ length: 300 }, (_, i) => i);
const ctx = { input: { items: items300 }, steps: {} };
const nestedMap = 'input.items.map(a, input.items.map(b, input.items.map(c, a + b + c)))';

after(() => configureWorkflowLimits({}));

describe('expression budget', () => {
  it('a map nested three deep over 300 items (27 million steps) stops at the cost budget with a clear error', () => {
    assert.throws(
      () => evaluateExpression(nestedMap, ctx),
      (e: unknown) =>
        e instanceof ExpressionLimitError &&
        e.code === 'expression_limit_exceeded' &&
        /exceeded its cost budget \(50000 units, WORKFLOW_EXPRESSION_MAX_COST\)/.test(e.message),
    );
  });

  it('exists/all, which swallow an element error, still end with the budget error', () => {
    for (const expr of [
      'input.items.exists(a, input.items.exists(b, input.items.exists(c, a + b + c < 0)))',
      'input.items.all(a, input.items.all(b, input.items.all(c, a + b + c >= 0)))',
    ]) {
      assert.throws(() => evaluateExpression(expr, ctx), ExpressionLimitError, expr);
    }
  });

  it('list and string doubling are charged by size', () => {
    const doubling = Array.from({ length: 20 }, () => 'l').reduce((acc) => `cel.bind(l, l + l, ${acc})`, 'size(l)');
    assert.throws(() => evaluateExpression(`cel.bind(l, input.items, ${doubling})`, ctx), ExpressionLimitError);
  });

  it('ordinary expressions are well inside the budget', () => {
    assert.equal(evaluateExpression('input.items.map(a, a * 2).filter(x, x % 3 == 0).size()', ctx), 100);
    const small = { input: { items: items300.slice(0, 50) }, steps: {} };
    assert.equal(evaluateExpression('input.items.exists(a, input.items.exists(b, a + b == 97))', small), true);
  });

  it('the budget is configurable, and a time limit applies with an injected clock', () => {
    try {
      configureWorkflowLimits({ expressionMaxCost: 1_000 });
      assert.throws(() => evaluateExpression('input.items.map(a, input.items.map(b, a))', ctx), /1000 units/);
      // A clock that jumps 10 ms per reading: the time limit (5 ms) trips at the first check.
      let t = 0;
      configureWorkflowLimits({ expressionMaxCost: 1e12, expressionTimeLimitMs: 5, clock: () => (t += 10) });
      assert.throws(
        () => evaluateExpression(nestedMap, ctx),
        /exceeded its time limit \(5 ms, WORKFLOW_EXPRESSION_TIME_LIMIT_MS\)/,
      );
    } finally {
      configureWorkflowLimits({});
    }
    assert.deepEqual(workflowLimits(), defaultWorkflowLimits);
  });

  it('matches() is RE2: a catastrophic-backtracking pattern answers at once, an invalid one is an evaluation error', () => {
    const evil = `"${'a'.repeat(5_000)}!".matches("^(a+)+$")`;
    assert.equal(evaluateExpression(evil, ctx), false);
    assert.equal(evaluateExpression('"order-42".matches("^order-[0-9]+$")', ctx), true);
    assert.ok(checkExpression('"x".matches("a")').ok);
    assert.match(checkExpression('"x".matches(1)').message ?? '', /matches\(int\)/);
    assert.throws(() => evaluateExpression('"x".matches("(")', ctx), /invalid regular expression/);
  });
});

describe('definition limits', () => {
  const step = (i: number) => ({ id: `s${i}`, uses: 'agent:revenue_analysis' });

  it('keeps answers for small definitions only, within a budget: distinct large definitions are checked, not held', () => {
    const large = (n: number) => ({
      id: `large-${n}`,
      version: 1,
      name: 'x'.repeat(100_000),
      steps: [step(0)],
    });
    const before = cachedDefinitionChecks();
    for (let i = 0; i < 20; i++) assert.ok(validateDefinition(large(i)).ok);
    assert.equal(cachedDefinitionChecks().chars, before.chars, 'a 100 KB definition is not kept');
    // 2,000 distinct small definitions: what is kept stays within 4 MiB of keys and 500 entries.
    for (let i = 0; i < 2_000; i++)
      assert.ok(validateDefinition({ id: `small-${i}`, version: 1, name: 'y'.repeat(4_000), steps: [step(i)] }).ok);
    const after = cachedDefinitionChecks();
    assert.ok(after.entries <= 500 && after.chars <= 4 * 1024 * 1024, JSON.stringify(after));
    // A repeated small definition is answered from the cache (the same answer object).
    const d = { id: 'again', version: 1, name: 'again', steps: [step(1)] };
    assert.equal(validateDefinition(d), validateDefinition(structuredClone(d)));
  });

  it('keeps compiled expressions within a budget of characters: 40 distinct 400 KB conditions are not all held', () => {
    for (let i = 0; i < 40; i++) {
      const condition = `'${String(i).padStart(400_000, 'x')}' == 'b'`;
      assert.equal(evaluateExpression(condition, ctx), false);
      const held = cachedExpressions();
      assert.ok(held.chars <= 8 * 1024 * 1024, `after ${i + 1}: ${JSON.stringify(held)}`);
    }
    // A small one is still kept (and found again).
    const before = cachedExpressions().entries;
    assert.equal(evaluateExpression('1 + 1 == 2', ctx), true);
    assert.equal(cachedExpressions().entries, before + 1);
  });

  it('refuses more steps than WORKFLOW_MAX_STEPS, naming the limit', () => {
    const v = validateDefinition({
      id: 'big',
      version: 1,
      name: 'big',
      steps: Array.from({ length: 10_000 }, (_, i) => step(i)),
    });
    assert.equal(v.ok, false);
    assert.ok(!v.ok);
    assert.deepEqual(v.problems, [
      {
        path: 'steps',
        code: 'limit_exceeded',
        message: 'definition has 10000 steps; at most 500 (WORKFLOW_MAX_STEPS)',
      },
    ]);
    assert.ok(
      validateDefinition({ id: 'ok', version: 1, name: 'ok', steps: Array.from({ length: 500 }, (_, i) => step(i)) })
        .ok,
    );
  });

  it('refuses more needs entries than WORKFLOW_MAX_NEEDS, and names at most 20 cycles', () => {
    // 330 steps, each needing every earlier one: 54,285 entries in about 400 KB.
    const dense = Array.from({ length: 330 }, (_, i) => ({
      ...step(i),
      needs: Array.from({ length: i }, (_, j) => step(j).id),
    }));
    const v = validateDefinition({ id: 'dense', version: 1, name: 'dense', steps: dense });
    assert.ok(!v.ok);
    assert.deepEqual(v.problems, [
      {
        path: 'steps',
        code: 'limit_exceeded',
        message: 'the steps have 54285 needs entries together; at most 5000 (WORKFLOW_MAX_NEEDS)',
      },
    ]);
    // 70 steps each needing every other (4,830 entries): a cycle per pair, 20 named and one line for the rest.
    const ids = Array.from({ length: 70 }, (_, i) => step(i).id);
    const cyclic = ids.map((id, i) => ({ ...step(i), needs: ids.filter((x) => x !== id) }));
    const c = validateDefinition({ id: 'cyclic', version: 1, name: 'cyclic', steps: cyclic });
    assert.ok(!c.ok);
    const cycles = c.problems.filter((p) => p.code === 'cycle');
    assert.equal(cycles.length, 21);
    assert.match(cycles[20]!.message, /more dependency cycles than the 20 named/);
  });

  it('refuses nesting deeper than WORKFLOW_MAX_NESTING_DEPTH, with the path', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 5_000; i++) deep = { d: deep };
    const v = validateDefinition({ id: 'deep', version: 1, name: 'deep', steps: [{ ...step(1), with: { v: deep } }] });
    assert.ok(!v.ok);
    assert.equal(v.problems[0]!.code, 'limit_exceeded');
    assert.match(v.problems[0]!.message, /deeper than 32 levels \(WORKFLOW_MAX_NESTING_DEPTH\)/);
    assert.match(v.problems[0]!.path, /^steps\[0\]\.with\.v(\.d)+$/);
  });

  it('refuses a definition larger than WORKFLOW_MAX_DEFINITION_BYTES', () => {
    const v = validateDefinition({
      id: 'fat',
      version: 1,
      name: 'fat',
      description: 'é'.repeat(300_000),
      steps: [step(1)],
    });
    assert.ok(!v.ok);
    assert.match(
      v.problems[0]!.message,
      /^definition is 600\d+ bytes as JSON; at most 524288 \(WORKFLOW_MAX_DEFINITION_BYTES\)$/,
    );
  });

  it('the decider refuses the same at start', () => {
    assert.throws(
      () =>
        history(
          cmd.start({ id: 'big', version: 1, name: 'big', steps: Array.from({ length: 501 }, (_, i) => step(i)) }),
        ),
      /invalid workflow definition/,
    );
  });
});

describe('for_each and expression limits in the decider', () => {
  const fan = (items: string, concurrency = 2): WorkflowDefinitionInput => ({
    id: 'fan',
    version: 1,
    name: 'fan',
    input: { type: 'object', properties: { items: { type: 'array' } } },
    steps: [{ id: 'each', uses: 'mcp:database/query', for_each: { items, concurrency }, with: { v: '${{ item }}' } }],
  });
  /** The events of `commands` decided in a process whose units cap is `cap` (then set back). */
  const historyUnderCap = (cap: number, ...commands: WorkflowCommand[]): WorkflowEvent[] => {
    configureWorkflowLimits({ maxUnitsInFlight: cap });
    try {
      return history(...commands);
    } finally {
      configureWorkflowLimits({});
    }
  };
  const failure = (events: WorkflowEvent[]) =>
    events.find((e) => e.type === 'StepFailed')?.data as { stepId: string; error: { code: string; message: string } };

  it('more items than WORKFLOW_MAX_FOR_EACH_ITEMS fail the step, naming the limit', () => {
    const events = history(cmd.start(fan('input.items'), { items: Array.from({ length: 1_001 }, (_, i) => i) }));
    assert.deepEqual(types(events), ['WorkflowStarted', 'StepFailed:each', 'WorkflowFailed']);
    assert.equal(failure(events).error.code, 'for_each_limit_exceeded');
    assert.match(failure(events).error.message, /gave 1001 items; at most 1000 \(WORKFLOW_MAX_FOR_EACH_ITEMS\)/);
    assert.deepEqual(types(history(cmd.start(fan('input.items'), { items: [1, 2, 3] }))), [
      'WorkflowStarted',
      'StepExpanded:each',
      'StepScheduled:each[0]',
      'StepScheduled:each[1]',
    ]);
  });

  it('at most WORKFLOW_MAX_UNITS_IN_FLIGHT units in flight over all steps: a for_each fills the room there is, a plain step waits for room', () => {
    configureWorkflowLimits({ maxUnitsInFlight: 5 });
    try {
      const def: WorkflowDefinitionInput = {
        id: 'wide',
        version: 1,
        name: 'wide',
        input: { type: 'object', properties: { items: { type: 'array' } } },
        steps: [
          {
            id: 'a',
            uses: 'mcp:database/query',
            for_each: { items: 'input.items', concurrency: 3 },
            with: { v: '${{ item }}' },
          },
          {
            id: 'b',
            uses: 'mcp:database/query',
            for_each: { items: 'input.items', concurrency: 3 },
            with: { v: '${{ item }}' },
          },
          { id: 'c', uses: 'mcp:database/query', with: { v: 1 } },
        ],
      };
      const start = cmd.start(def, { items: [1, 2, 3, 4] });
      const started = history(start);
      // a takes its 3, b the 2 left; c waits.
      assert.deepEqual(types(started), [
        'WorkflowStarted',
        'StepExpanded:a',
        'StepScheduled:a[0]',
        'StepScheduled:a[1]',
        'StepScheduled:a[2]',
        'StepExpanded:b',
        'StepScheduled:b[0]',
        'StepScheduled:b[1]',
      ]);
      // One unit ends: one more goes out, to the first step with room (a's fourth item).
      const one = history(start, cmd.succeeded({ stepId: 'a', itemIndex: 0 }, 'ok'));
      assert.deepEqual(types(one.slice(started.length)), ['StepSucceeded:a[0]', 'StepScheduled:a[3]']);
      // a's items all end: b gets its third, then c its turn.
      const a = history(start, ...[0, 1, 2, 3].map((i) => cmd.succeeded({ stepId: 'a', itemIndex: i }, 'ok')));
      const after = types(a.slice(started.length));
      assert.ok(after.includes('StepScheduled:b[2]'), after.join());
      assert.ok(after.includes('StepScheduled:c'), after.join());
      const s = fold(a);
      assert.equal(s.status, 'running');
      const inFlight = Object.values(s.status === 'running' ? s.steps : {}).flatMap((st) =>
        st.units.filter((u) => u && ['scheduled', 'dispatched', 'retry_wait'].includes(u.phase)),
      );
      assert.ok(inFlight.length <= 5, `${inFlight.length} in flight`);
    } finally {
      configureWorkflowLimits({});
    }
  });

  it("an execution keeps the units cap it started under, whatever the deciding process is set to; an older stream without one takes the process's", () => {
    const started = historyUnderCap(2, cmd.start(fan('input.items', 10), { items: [1, 2, 3, 4, 5, 6] }));
    assert.equal((started[0]!.data as { maxUnitsInFlight?: number }).maxUnitsInFlight, 2);
    assert.deepEqual(types(started).slice(-2), ['StepScheduled:each[0]', 'StepScheduled:each[1]']);
    // Given the recorded start, a process set to 256 (a gateway, a replay) still sends one unit per unit ended.
    const then = (given: WorkflowEvent[]) =>
      types(decideWorkflow(cmd.succeeded({ stepId: 'each', itemIndex: 0 }, 'ok'), fold(given)));
    assert.deepEqual(then(started), ['StepSucceeded:each[0]', 'StepScheduled:each[2]']);
    // The same stream as an older version wrote it (no cap recorded): the process's 256 fills the rest.
    const { maxUnitsInFlight: _dropped, ...older } = started[0]!.data as { maxUnitsInFlight?: number };
    const olderStream = [{ ...started[0]!, data: older } as WorkflowEvent, ...started.slice(1)];
    assert.deepEqual(then(olderStream), [
      'StepSucceeded:each[0]',
      'StepScheduled:each[2]',
      'StepScheduled:each[3]',
      'StepScheduled:each[4]',
      'StepScheduled:each[5]',
    ]);
  });

  it('the recorded cap and the starter outlive the end of the execution and come back with a retry', () => {
    const events = historyUnderCap(
      2,
      cmd.start(fan('input.items', 10), { items: [1, 2, 3, 4] }),
      cmd.failed({ stepId: 'each', itemIndex: 0 }, { code: 'bad', message: 'no', retryable: false }),
    );
    const ended = fold(events);
    if (ended.status !== 'failed') return assert.fail(`ended ${ended.status}`);
    assert.equal(ended.maxUnitsInFlight, 2);
    assert.equal(ended.startedBy, 'user:tester');
    // Retried where the process's cap is 256: still two units at a time, for the same starter.
    const retried = decideWorkflow({ type: 'RetryExecution', data: {}, metadata: meta(T0, 'apikey:other') }, ended);
    assert.deepEqual(
      types(retried).filter((t) => t.startsWith('StepScheduled')),
      ['StepScheduled:each[0]', 'StepScheduled:each[1]'],
    );
    const again = fold([...events, ...retried]);
    assert.equal(again.status !== 'not_started' && again.startedBy, 'user:tester');
  });

  it("a step output past WORKFLOW_MAX_OUTPUT_BYTES fails the step (not retried); a for_each step's list of its items' outputs does not count twice", () => {
    configureWorkflowLimits({ maxOutputChars: 100 });
    try {
      const item = (i: number) => ({ stepId: 'each', itemIndex: i });
      const big = 'x'.repeat(60);
      // Item 0's output (62 characters as JSON) fits; item 1's would make 124.
      const events = history(
        cmd.start(fan('input.items'), { items: [1, 2] }),
        cmd.dispatched(item(0)),
        cmd.dispatched(item(1)),
        cmd.succeeded(item(0), big),
        cmd.succeeded(item(1), big),
      );
      assert.deepEqual(types(events).slice(-4), [
        'StepSucceeded:each[0]',
        'StepFailed:each[1]',
        'StepFailed:each',
        'WorkflowFailed',
      ]);
      const failed = events.find((e) => e.type === 'StepFailed')!.data as {
        final: boolean;
        error: { code: string; message: string; retryable: boolean };
      };
      assert.equal(failed.error.code, 'output_limit_exceeded');
      assert.equal(failed.final, true);
      assert.equal(failed.error.retryable, false);
      assert.match(failed.error.message, /62 characters of JSON.*past 100 \(WORKFLOW_MAX_OUTPUT_BYTES\)/);
      assert.equal((fold(events) as { outputChars?: number }).outputChars, 62);

      // Two small items: both stored, and the step's list of them is not counted again.
      const ok = history(
        cmd.start(fan('input.items'), { items: [1, 2] }),
        cmd.dispatched(item(0)),
        cmd.dispatched(item(1)),
        cmd.succeeded(item(0), 'a'.repeat(20)),
        cmd.succeeded(item(1), 'b'.repeat(20)),
      );
      assert.ok(types(ok).includes('StepSucceeded:each'), types(ok).join(', '));
      assert.equal((fold(ok) as { outputChars?: number }).outputChars, 44);
    } finally {
      configureWorkflowLimits({});
    }
  });

  it('the stored sizes are counted once, when decided, and recorded in the events; events without them (older ones) count the same', () => {
    const item = (i: number) => ({ stepId: 'each', itemIndex: i });
    const events = history(
      cmd.start(fan('input.items'), { items: [1, 2] }),
      cmd.dispatched(item(0)),
      cmd.dispatched(item(1)),
      cmd.succeeded(item(0), 'a'.repeat(20)),
      cmd.succeeded(item(1), { b: 'é'.repeat(7) }),
    );
    for (const e of events) {
      if (e.type === 'StepScheduled') assert.equal(e.data.inputChars, JSON.stringify(e.data.input).length);
      if (e.type === 'StepSucceeded' && e.data.itemIndex !== undefined)
        assert.equal(e.data.outputChars, JSON.stringify(e.data.output).length);
    }
    const counts = (s: unknown) => {
      const { inputChars, outputChars } = s as { inputChars?: number; outputChars?: number };
      return { inputChars, outputChars };
    };
    const older = events.map((e) => {
      const { inputChars: _i, outputChars: _o, ...data } = e.data as Record<string, unknown>;
      return { ...e, data } as WorkflowEvent;
    });
    assert.deepEqual(counts(fold(older)), counts(fold(events)));
    const second = JSON.stringify({ b: 'é'.repeat(7) }).length;
    assert.deepEqual(counts(fold(events)), {
      inputChars: 2 * JSON.stringify({ v: 1 }).length,
      outputChars: 22 + second,
    });
    // A fold reads the recorded count, not the payload.
    const recorded = events.map((e) =>
      e.type === 'StepSucceeded' && e.data.itemIndex === 0 ? { ...e, data: { ...e.data, outputChars: 1 } } : e,
    );
    assert.equal(counts(fold(recorded)).outputChars, 1 + second);
    // A count that is not one (negative, text: a viewer's redacted copy) is counted again, never trusted.
    for (const bad of [-1_000_000, '[redacted]', 1.5, Number.NaN]) {
      const forged = events.map((e) =>
        e.type === 'StepSucceeded' && e.data.itemIndex === 0
          ? ({ ...e, data: { ...e.data, outputChars: bad } } as WorkflowEvent)
          : e,
      );
      assert.equal(counts(fold(forged)).outputChars, 22 + second, String(bad));
    }
  });

  it('a step input that repeats a reference past WORKFLOW_MAX_STEP_INPUT_BYTES fails the step, not stored', () => {
    // 100 references to one 4 KB value: 400 KB resolved from a 4 KB input, where the bound is 64 KB.
    configureWorkflowLimits({ maxStepInputChars: 64 * 1024 });
    try {
      const amplify: WorkflowDefinitionInput = {
        id: 'amp',
        version: 1,
        name: 'amp',
        steps: [
          {
            id: 'a',
            uses: 'mcp:analytics/list_metrics',
            with: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, '${{ input.o }}'])),
          },
        ],
      };
      const events = history(cmd.start(amplify, { o: { s: 'x'.repeat(4_000) } }));
      assert.deepEqual(types(events), ['WorkflowStarted', 'StepFailed:a', 'WorkflowFailed']);
      const error = failure(events).error as { code: string; message: string; retryable?: boolean };
      assert.equal(error.code, 'input_limit_exceeded');
      assert.equal(error.retryable, false);
      assert.match(error.message, /larger than 65536 characters of JSON \(WORKFLOW_MAX_STEP_INPUT_BYTES\)/);
      // Embedded in a string (turned into JSON text), the same.
      const embedded = {
        ...amplify,
        steps: [{ ...amplify.steps[0]!, with: { t: Array(100).fill('${{ input.o }}').join('|') } }],
      };
      assert.equal(
        failure(history(cmd.start(embedded, { o: { s: 'x'.repeat(4_000) } }))).error.code,
        'input_limit_exceeded',
      );
      // Ten references fit: the step is scheduled with its input.
      const ten = {
        ...amplify,
        steps: [{ ...amplify.steps[0]!, with: { k0: '${{ input.o }}', k1: '${{ input.o }}' } }],
      };
      assert.deepEqual(types(history(cmd.start(ten, { o: { s: 'x'.repeat(4_000) } }))), [
        'WorkflowStarted',
        'StepScheduled:a',
      ]);
    } finally {
      configureWorkflowLimits({});
    }
  });

  it("one decision's mappings together stop at WORKFLOW_MAX_DECISION_INPUT_BYTES: for_each items each under the step bound", () => {
    configureWorkflowLimits({ maxStepInputChars: 64 * 1024, maxDecisionMappingChars: 100 * 1024 });
    try {
      const wide: WorkflowDefinitionInput = {
        id: 'wide',
        version: 1,
        name: 'wide',
        steps: [
          {
            id: 'each',
            uses: 'mcp:database/query',
            for_each: { items: 'input.items', concurrency: 50 },
            with: { big: '${{ input.o }}', v: '${{ item }}' },
          },
        ],
      };
      // 50 items started in one decision, each input about 4 KB: 200 KB together.
      const events = history(cmd.start(wide, { items: Array.from({ length: 50 }, (_, i) => i), o: 'y'.repeat(4_000) }));
      const f = failure(events);
      assert.equal(f.error.code, 'input_limit_exceeded');
      assert.match(f.error.message, /102400 characters of JSON together \(WORKFLOW_MAX_DECISION_INPUT_BYTES\)/);
      const scheduled = types(events).filter((t) => t.startsWith('StepScheduled')).length;
      assert.ok(scheduled > 0 && scheduled < 50, `${scheduled} items scheduled before the bound`);
    } finally {
      configureWorkflowLimits({});
    }
  });

  it('for_each items that repeat a reference stop at WORKFLOW_MAX_DECISION_INPUT_BYTES: the step fails, nothing expanded', () => {
    configureWorkflowLimits({ maxDecisionMappingChars: 200 * 1024 });
    try {
      // 1,000 items each naming a 4 KB object (an object costs the expression budget nothing by size): 4 MB of items from a 4 KB input.
      const events = history(
        cmd.start(fan('input.items.map(i, input.o)'), {
          items: Array.from({ length: 1_000 }, (_, i) => i),
          o: { s: 'q'.repeat(4_000) },
        }),
      );
      assert.deepEqual(types(events), ['WorkflowStarted', 'StepFailed:each', 'WorkflowFailed']);
      assert.equal(failure(events).error.code, 'input_limit_exceeded');
      assert.match(failure(events).error.message, /WORKFLOW_MAX_DECISION_INPUT_BYTES/);
    } finally {
      configureWorkflowLimits({});
    }
  });

  it('outputs past WORKFLOW_MAX_OUTPUT_BYTES fail the execution with output_limit_exceeded', () => {
    configureWorkflowLimits({ maxOutputChars: 10 * 1024 });
    try {
      const outs: WorkflowDefinitionInput = {
        id: 'outs',
        version: 1,
        name: 'outs',
        steps: [{ id: 'a', uses: 'mcp:analytics/list_metrics' }],
        outputs: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`o${i}`, '${{ input.o }}'])),
      };
      const events = history(
        cmd.start(outs, { o: 'z'.repeat(2_000) }),
        cmd.dispatched({ stepId: 'a' }),
        cmd.succeeded({ stepId: 'a' }, 'ok'),
      );
      const last = events.at(-1)!;
      assert.equal(last.type, 'WorkflowFailed');
      const data = last.data as { error: { code: string; message: string } };
      assert.equal(data.error.code, 'output_limit_exceeded');
      assert.match(data.error.message, /WORKFLOW_MAX_OUTPUT_BYTES/);
    } finally {
      configureWorkflowLimits({});
    }
  });

  it('an expression over budget fails its step with expression_limit_exceeded (no dispatch)', () => {
    const events = history(cmd.start(fan(nestedMap), { items: items300 }));
    assert.deepEqual(types(events), ['WorkflowStarted', 'StepFailed:each', 'WorkflowFailed']);
    assert.equal(failure(events).error.code, 'expression_limit_exceeded');
  });
});

describe('lineage of sub-workflow executions', () => {
  const def: WorkflowDefinitionInput = {
    id: 'child',
    version: 1,
    name: 'child',
    steps: [{ id: 'a', uses: 'workflow:other' }],
  };

  it('is kept from StartWorkflow to the state and to the dispatches (root and depth)', () => {
    const lineage = { rootExecutionId: 'root-1', parentExecutionId: 'parent-1', depth: 3 };
    const start = cmd.start(def);
    const events = history({ ...start, data: { ...start.data, lineage } } as typeof start);
    const started = events[0]!;
    assert.ok(started.type === 'WorkflowStarted');
    assert.deepEqual(started.data.lineage, lineage);
    const state = fold(events);
    assert.ok(state.status === 'running');
    assert.deepEqual(state.lineage, lineage);
    const d = decideAfter(events[1]!, state).dispatch[0]!;
    assert.equal(d.rootExecutionId, 'root-1');
    assert.equal(d.depth, 3);
  });

  it('an old stream without lineage folds as a root (depth 0, its own root)', () => {
    const events = history(cmd.start(def));
    assert.ok(events[0]!.type === 'WorkflowStarted' && !('lineage' in events[0].data));
    const state = fold(events);
    const d = decideAfter(events[1]!, state).dispatch[0]!;
    assert.equal(d.rootExecutionId, 'ex1');
    assert.equal(d.depth, 0);
  });
});

describe("input schema patterns (RE2, not zod's backtracking RegExp)", () => {
  const schema = {
    type: 'object' as const,
    properties: {
      code: { type: 'string' as const, pattern: '^(a+)+$' },
      tags: { type: 'array' as const, items: { type: 'string' as const, pattern: '^t-' } },
    },
  };

  it('a catastrophic-backtracking pattern is checked in linear time, with the usual problem and path', () => {
    // zod's RegExp takes ~19 s here (2^26 paths); RE2 answers at once. Not timed: the result says which engine ran.
    const r = validateInput(schema, { code: `${'a'.repeat(26)}!`, tags: ['t-1', 'x'] });
    assert.deepEqual(r, {
      ok: false,
      problems: [
        { path: 'code', message: 'Invalid string: must match pattern ^(a+)+$' },
        { path: 'tags[1]', message: 'Invalid string: must match pattern ^t-' },
      ],
    });
    assert.deepEqual(validateInput(schema, { code: 'aaa', tags: ['t-2'] }), {
      ok: true,
      value: { code: 'aaa', tags: ['t-2'] },
    });
  });

  it('a definition whose input pattern RE2 cannot compile is refused, naming where', () => {
    const v = validateDefinition({
      id: 'p',
      version: 1,
      name: 'p',
      input: { type: 'object', properties: { a: { type: 'string', pattern: '(?=lookahead)' } } },
      steps: [{ id: 's', uses: 'agent:revenue_analysis' }],
    });
    assert.ok(!v.ok);
    assert.equal(v.problems[0]!.path, 'input.properties.a.pattern');
    assert.match(v.problems[0]!.message, /not a valid RE2 regular expression/);
  });
});

describe('expression context: only the steps an expression names are converted', () => {
  const view = (status: string, output: unknown) => ({ status, output, error: null });
  const c = { input: { k: 'b' }, steps: { a: view('succeeded', { n: 1 }), b: view('failed', null) } };

  it('literal references, dynamic ones and whole-map uses all see the steps', () => {
    assert.equal(evaluateExpression('steps.a.output.n + 1', c), 2);
    assert.equal(evaluateExpression('steps["b"].status', c), 'failed');
    assert.equal(evaluateExpression('steps[input.k].status', c), 'failed');
    assert.equal(evaluateExpression('size(steps)', c), 2);
    assert.equal(evaluateExpression('steps.exists(id, steps[id].status == "failed")', c), true);
    assert.throws(() => evaluateExpression('steps.zz.status', c), /zz/);
  });

  it('500 parallel steps start in one decision, each with its own mapping (with room for 500 units in flight)', () => {
    const steps = Array.from({ length: 500 }, (_, i) => ({
      id: `s${i}`,
      uses: 'agent:revenue_analysis',
      with: { a: '${{ input.a }}', i },
    }));
    configureWorkflowLimits({ maxUnitsInFlight: 500 });
    try {
      const events = history(
        cmd.start(
          {
            id: 'wide',
            version: 1,
            name: 'wide',
            input: { type: 'object', properties: { a: { type: 'string' } } },
            steps,
          },
          { a: 'x' },
        ),
      );
      assert.equal(events.length, 501);
      assert.deepEqual(events.at(-1)!.data, {
        ...(events.at(-1)!.data as object),
        stepId: 's499',
        input: { a: 'x', i: 499 },
      });
    } finally {
      configureWorkflowLimits({});
    }
  });
});
