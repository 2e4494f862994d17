import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseEventEnvelope } from '@switchyard/contracts';
import type { RecordedEvent } from '@switchyard/event-store';
import { eventByPositionPath, oversizeEventStub } from './event-relay.js';

const big: RecordedEvent = {
  id: '0190a0c4-7a5e-7b3c-9d1e-2f3a4b5c6d7e',
  streamId: 'workflow-42',
  type: 'WorkflowCompleted',
  data: { outputs: { report: 'x'.repeat(10_000) } },
  metadata: {
    correlationId: 'corr-1',
    causationId: 'cause-1',
    actor: 'engine',
    timestamp: '2026-01-02T03:04:05.000Z',
    trace: 'y'.repeat(10_000),
  },
  revision: 3,
  position: 17,
  recordedAt: new Date('2026-01-02T03:04:05.500Z'),
};

describe('oversizeEventStub', () => {
  it('keeps the envelope and correlation metadata, drops the data, and still parses as an envelope', () => {
    const stub = oversizeEventStub(big, 2_000_000, 1_048_576);
    const json = JSON.stringify(stub);
    assert.ok(json.length < 1_000, `small (${json.length} bytes)`);
    const parsed = parseEventEnvelope(json);
    assert.deepEqual(parsed, {
      id: big.id,
      streamId: big.streamId,
      type: big.type,
      revision: 3,
      position: 17,
      recordedAt: '2026-01-02T03:04:05.500Z',
      metadata: {
        correlationId: 'corr-1',
        causationId: 'cause-1',
        actor: 'engine',
        timestamp: '2026-01-02T03:04:05.000Z',
      },
      data: { oversize: true, sizeBytes: 2_000_000, maxPayload: 1_048_576, fetch: '/api/v1/events?after=16&limit=1' },
    });
    assert.equal((JSON.parse(json) as { oversize: unknown }).oversize, true);
  });

  it('points at the event by position, the first one included', () => {
    assert.equal(eventByPositionPath(0), '/api/v1/events?after=-1&limit=1');
    const { metadata } = oversizeEventStub(
      { ...big, metadata: { correlationId: 'c', timestamp: big.metadata.timestamp } },
      1,
      null,
    );
    assert.deepEqual(metadata, { correlationId: 'c', timestamp: big.metadata.timestamp });
  });
});
