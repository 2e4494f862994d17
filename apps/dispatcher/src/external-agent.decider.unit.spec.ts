import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DomainError } from '@switchyard/domain';
import { DeciderSpecification } from '@switchyard/testing';
import { externalAgentDecider } from './external-agent.decider.js';

const spec = DeciderSpecification.for(externalAgentDecider);
const metadata = { timestamp: '2026-12-04T05:00:00.000Z', correlationId: 'c1', actor: 'apikey:k1' };
const agent = {
  name: 'ext-echo',
  url: 'https://agents.example/echo',
  task_types: ['echo'],
  has_token: true,
  max_concurrency: 2,
  description: 'echoes',
  registered_at: metadata.timestamp,
};
const registered = { type: 'ExternalAgentRegistered' as const, data: agent, metadata };

describe('external agent decider', () => {
  it('registers a new agent', () => {
    spec
      .given([])
      .when({ type: 'RegisterExternalAgent', data: { ...agent, token_changed: true }, metadata })
      .then([registered]);
  });

  it('records nothing for the same registration again, made later; a new token alone is recorded', () => {
    const later = { ...agent, registered_at: '2026-12-04T06:00:00.000Z' };
    spec
      .given([registered])
      .when({ type: 'RegisterExternalAgent', data: { ...later, token_changed: false }, metadata })
      .then([]);
    spec
      .given([registered])
      .when({ type: 'RegisterExternalAgent', data: { ...later, token_changed: true }, metadata })
      .then([{ type: 'ExternalAgentRegistered', data: later, metadata }]);
    // Task types in another order are another registration (the order is kept as given).
    const reordered = { ...later, task_types: ['echo', 'shout'] };
    spec
      .given([{ ...registered, data: { ...agent, task_types: ['shout', 'echo'] } }])
      .when({ type: 'RegisterExternalAgent', data: { ...reordered, token_changed: false }, metadata })
      .then([{ type: 'ExternalAgentRegistered', data: reordered, metadata }]);
    // After a removal it is a registration again.
    const removed = {
      type: 'ExternalAgentRemoved' as const,
      data: { name: agent.name, removed_at: later.registered_at },
      metadata,
    };
    spec
      .given([registered, removed])
      .when({ type: 'RegisterExternalAgent', data: { ...agent, token_changed: false }, metadata })
      .then([registered]);
  });

  it('registers again, replacing what the agent was', () => {
    const changed = { ...agent, url: 'https://agents.example/v2', max_concurrency: 4 };
    spec
      .given([registered])
      .when({ type: 'RegisterExternalAgent', data: { ...changed, token_changed: false }, metadata })
      .then([{ type: 'ExternalAgentRegistered', data: changed, metadata }]);
  });

  it('removes a registered agent', () => {
    const data = { name: agent.name, removed_at: metadata.timestamp };
    spec
      .given([registered])
      .when({ type: 'RemoveExternalAgent', data, metadata })
      .then([{ type: 'ExternalAgentRemoved', data, metadata }]);
  });

  it('refuses to remove an agent that is not registered (never, or removed already)', () => {
    const data = { name: agent.name, removed_at: metadata.timestamp };
    const notFound = (e: unknown) => e instanceof DomainError && e.code === 'not_found';
    spec.given([]).when({ type: 'RemoveExternalAgent', data, metadata }).thenThrows(notFound);
    spec
      .given([registered, { type: 'ExternalAgentRemoved', data, metadata }])
      .when({ type: 'RemoveExternalAgent', data, metadata })
      .thenThrows(notFound);
    assert.equal(externalAgentDecider.initialState.status, 'absent');
  });
});
