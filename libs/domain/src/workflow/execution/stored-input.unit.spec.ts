import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { configureWorkflowLimits, defaultWorkflowLimits } from '../definition/limits.js';
import type { WorkflowDefinitionInput } from '../definition/schema.js';
import { decideWorkflow } from './decider.js';
import { at, cmd, fold, history, types, unavailable } from './spec-helpers.js';
import type { StepError, WorkflowCommand, WorkflowEvent } from './types.js';

/**
 * The inputs one execution stores are bounded as a whole (WORKFLOW_MAX_EXECUTION_INPUT_BYTES):
 * each attempt's StepScheduled carries its input, so items and attempts over a large input would
 * otherwise store it again and again. Here the bound is 1,000 characters and each input about 310.
 */
describe('WorkflowExecution: the inputs one execution stores are bounded as a whole', () => {
  beforeEach(() => configureWorkflowLimits({ maxExecutionInputChars: 1_000 }));
  afterEach(() => configureWorkflowLimits(defaultWorkflowLimits));
  const big = 'x'.repeat(300);

  /** Apply a command to the events so far; returns the new events. */
  const run = (events: WorkflowEvent[], c: WorkflowCommand): WorkflowEvent[] => {
    const more = decideWorkflow(c, fold(events));
    events.push(...more);
    return more;
  };
  const errorOf = (e: WorkflowEvent | undefined): StepError | undefined =>
    (e?.data as { error?: StepError } | undefined)?.error;

  it('a for_each stops at the item whose input would pass the bound: the item and the step fail, not retried', () => {
    const def: WorkflowDefinitionInput = {
      id: 'fan',
      version: 1,
      name: 'fan',
      steps: [
        {
          id: 'fan',
          uses: 'mcp:filesystem/list_allowed_directories',
          for_each: { items: '${{ input.list }}', concurrency: 1 },
          with: { pad: '${{ input.big }}' },
          retry: { attempts: 5, backoff: { initialMs: 100, factor: 1, maxMs: 100, jitter: 0 } },
        },
      ],
    };
    const events = history(cmd.start(def, { big, list: [0, 1, 2, 3, 4, 5] }));
    assert.deepEqual(types(events), ['WorkflowStarted', 'StepExpanded:fan', 'StepScheduled:fan[0]']);
    let last: WorkflowEvent[] = [];
    for (let i = 0; i < 3; i++) last = run(events, cmd.succeeded({ stepId: 'fan', itemIndex: i }, { ok: i }));
    // Items 0-2 stored 930 characters; item 3's input would take them to about 1,240.
    assert.deepEqual(types(last), ['StepSucceeded:fan[2]', 'StepFailed:fan[3]', 'StepFailed:fan', 'WorkflowFailed']);
    const error = errorOf(last[1]);
    assert.equal(error?.code, 'input_limit_exceeded');
    assert.equal(error?.retryable, false);
    assert.match(error.message, /stored 930 characters .* past 1000 \(WORKFLOW_MAX_EXECUTION_INPUT_BYTES\)/);
    assert.equal(events.filter((e) => e.type === 'StepScheduled').length, 3);
  });

  it('a retry whose input would pass the bound is not made: the step fails at that attempt', () => {
    const def: WorkflowDefinitionInput = {
      id: 'again',
      version: 1,
      name: 'again',
      steps: [
        {
          id: 'call',
          uses: 'mcp:database/query',
          with: { pad: '${{ input.big }}' },
          retry: { attempts: 10, backoff: { initialMs: 100, factor: 1, maxMs: 100, jitter: 0 } },
        },
      ],
    };
    const unit = { stepId: 'call' };
    const events = history(cmd.start(def, { big }));
    let last: WorkflowEvent[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      run(events, cmd.failed(unit, unavailable, attempt, at(attempt * 1_000)));
      last = run(events, cmd.retry(unit, attempt + 1, at(attempt * 1_000 + 500)));
      if (attempt < 3) assert.deepEqual(types(last), ['StepScheduled:call'], `attempt ${attempt + 1}`);
    }
    // Three attempts stored 930 characters; the fourth is refused.
    assert.deepEqual(types(last), ['StepFailed:call', 'WorkflowFailed']);
    assert.equal(errorOf(last[0])?.code, 'input_limit_exceeded');
    assert.equal((last[0]!.data as { final: boolean }).final, true);
    assert.equal(events.filter((e) => e.type === 'StepScheduled').length, 3);
    assert.equal(fold(events).status, 'failed');
  });
});
