import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@switchyard/platform';
import { mcpOutput, toStepError } from './executor.js';
import { partitionOf } from './partitions.js';
import { WorkflowEngine } from './engine.js';

describe('partitionOf', () => {
  it('is stable across calls and processes (a pure hash) and stays in range', () => {
    assert.equal(partitionOf('exec-1', 16), partitionOf('exec-1', 16));
    const seen = new Set<number>();
    for (let i = 0; i < 2_000; i++) {
      const p = partitionOf(`exec-${i}`, 16);
      assert.ok(p >= 0 && p < 16);
      seen.add(p);
    }
    // 2 000 ids over 16 partitions: every partition gets work.
    assert.equal(seen.size, 16);
    assert.equal(partitionOf('anything', 1), 0);
  });
});

describe('childExecutionId', () => {
  it('derives the same child id from the same parent unit key, another from another attempt', () => {
    assert.equal(WorkflowEngine.childExecutionId('e1:step:1'), WorkflowEngine.childExecutionId('e1:step:1'));
    assert.notEqual(WorkflowEngine.childExecutionId('e1:step:1'), WorkflowEngine.childExecutionId('e1:step:2'));
    assert.match(WorkflowEngine.childExecutionId('e1:step[3]:1'), /^sub-[0-9a-f]{32}$/);
  });
});

describe('mcpOutput', () => {
  it('prefers structured content, then the JSON of a lone text block, then the text, then the content list', () => {
    assert.deepEqual(mcpOutput({ content: [{ type: 'text', text: 'x' }], structuredContent: { rows: [1] } }), {
      rows: [1],
    });
    assert.deepEqual(mcpOutput({ content: [{ type: 'text', text: '{"a":1}' }] }), { a: 1 });
    assert.deepEqual(mcpOutput({ content: [{ type: 'text', text: 'Echo: hi' }] }), { text: 'Echo: hi' });
    const two = [
      { type: 'text', text: 'a' },
      { type: 'image', data: '...' },
      { type: 'text', text: 'b' },
    ];
    assert.deepEqual(mcpOutput({ content: two }), { content: two });
  });
});

describe('toStepError', () => {
  it('keeps an AppError code and whether a retry can help', () => {
    assert.deepEqual(toStepError(new AppError('unavailable', 'down')), {
      code: 'unavailable',
      message: 'down',
      retryable: true,
    });
    assert.deepEqual(toStepError(new AppError('validation', 'bad')), {
      code: 'validation',
      message: 'bad',
      retryable: false,
    });
    assert.deepEqual(toStepError(new Error('boom')), { code: 'internal', message: 'boom', retryable: false });
  });
});
