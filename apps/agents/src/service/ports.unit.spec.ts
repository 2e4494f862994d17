import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { agentCards } from '../registry.js';
import { BUILTIN_AGENT_PORTS } from '@switchyard/contracts';

// The specification assigns each built-in agent's HTTP contract a fixed port; clients
// configured from it reach the agent by port, so the table is pinned here.
describe('built-in agent ports', () => {
  it('match the specification: 6001 data analyst ... 6006 operations manager', () => {
    assert.deepEqual(BUILTIN_AGENT_PORTS, {
      data_analyst: 6001,
      automation_specialist: 6002,
      content_creator: 6003,
      customer_success: 6004,
      financial_advisor: 6005,
      operations_manager: 6006,
    });
  });
  it('give every built-in agent its own port', () => {
    const names = agentCards.map((c) => c.name).sort();
    assert.deepEqual(Object.keys(BUILTIN_AGENT_PORTS).sort(), names);
    assert.equal(new Set(Object.values(BUILTIN_AGENT_PORTS)).size, names.length);
  });
});
