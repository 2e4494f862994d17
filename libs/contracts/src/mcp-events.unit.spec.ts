import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mcpEvent, mcpEventSchema, mcpServerStreamId } from './mcp-events.js';

describe('connector event schemas', () => {
  const at = '2026-01-01T00:00:00.000Z';
  it('accepts well-formed events of every kind', () => {
    const events = [
      mcpEvent('McpToolCalled', {
        server: 's',
        tool: 't',
        call_id: 'c',
        arguments: { value: {}, size: 2, truncated: false },
        at,
      }),
      mcpEvent('McpToolSucceeded', {
        server: 's',
        tool: 't',
        call_id: 'c',
        duration_ms: 3,
        outcome: 'success',
        attempts: 1,
        result: { value: 'x', size: 3, truncated: false },
        at,
      }),
      mcpEvent('McpToolFailed', {
        server: 's',
        tool: 't',
        call_id: 'c',
        duration_ms: 3,
        outcome: 'tool_error',
        error_code: 'tool_error',
        error_message: 'no',
        attempts: 1,
        at,
      }),
      mcpEvent('McpCircuitOpened', { server: 's', last_error: 'x', half_open_after_ms: 100, at }),
      mcpEvent('McpCircuitHalfOpened', { server: 's', at }),
      mcpEvent('McpCircuitClosed', { server: 's', at }),
      mcpEvent('McpServerWentDown', { server: 's', previous: 'up', error: 'gone', at }),
      mcpEvent('McpServerRecovered', { server: 's', down_for_ms: 10, at }),
    ];
    for (const e of events) assert.deepEqual(mcpEventSchema.parse(e), e);
  });

  it('rejects an unknown type and a bad payload', () => {
    assert.throws(() => mcpEventSchema.parse({ type: 'McpSomething', data: {} }));
    assert.throws(() => mcpEventSchema.parse({ type: 'McpCircuitClosed', data: { server: '', at } }));
    assert.throws(() => mcpEventSchema.parse({ type: 'McpToolFailed', data: { server: 's', outcome: 'success' } }));
  });

  it('puts each server in its own stream of category mcpserver', () => {
    assert.equal(mcpServerStreamId('filesystem'), 'mcpserver-filesystem');
  });
});
