import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DeciderSpecification } from '@switchyard/testing';
import { ConfigError } from '@switchyard/platform';
import { mcpServerOptionsFromEnv } from './options.js';
import { mcpGatewayCallDecider, type McpGatewayCallCommand, type McpGatewayCallEvent } from './tool-call.decider.js';
import {
  projectVirtualServer,
  toolAllowed,
  virtualServerDecider,
  type VirtualServerCommand,
  type VirtualServerEvent,
  type VirtualServerView,
} from './virtual-server.decider.js';

const metadata = { timestamp: '2026-12-03T12:00:00.000Z', correlationId: 'c-1', actor: 'apikey:0123456789abcdef' };

describe('McpGatewayCall decider', () => {
  const spec = DeciderSpecification.for<
    McpGatewayCallCommand,
    McpGatewayCallEvent,
    ReturnType<typeof mcpGatewayCallDecider.evolve>
  >(mcpGatewayCallDecider);
  const calledData = {
    call_id: 'k1',
    tool: 'everything__echo',
    kind: 'upstream' as const,
    target: 'everything/echo',
    arguments: { message: 'hi' },
    session_id: 's-1',
    transport: 'streamable-http' as const,
    virtual_server: null,
    key_id: '0123456789abcdef',
    key_name: 'ops',
    at: metadata.timestamp,
  };
  const called: McpGatewayCallEvent = { type: 'McpToolCalled', data: calledData, metadata };
  const success = {
    call_id: 'k1',
    tool: 'everything__echo',
    duration_ms: 3,
    result: { ok: true },
    at: metadata.timestamp,
  };
  const failure = {
    call_id: 'k1',
    tool: 'everything__echo',
    duration_ms: 3,
    error_code: 'unavailable',
    error_message: 'down',
    at: metadata.timestamp,
  };

  describe('absent', () => {
    it('records the call', () =>
      void spec.given([]).when({ type: 'RecordToolCall', data: calledData, metadata }).then([called]));
    it('refuses an outcome for a call never recorded', () =>
      void spec
        .given([])
        .when({ type: 'RecordToolSuccess', data: success, metadata })
        .thenThrows((e: { code?: string }) => e.code === 'illegal_state'));
  });
  describe('running', () => {
    it('records the success', () =>
      void spec
        .given([called])
        .when({ type: 'RecordToolSuccess', data: success, metadata })
        .then([{ type: 'McpToolSucceeded', data: success, metadata }]));
    it('records the failure', () =>
      void spec
        .given([called])
        .when({ type: 'RecordToolFailure', data: failure, metadata })
        .then([{ type: 'McpToolFailed', data: failure, metadata }]));
    it('a repeated call record is a no-op', () =>
      void spec.given([called]).when({ type: 'RecordToolCall', data: calledData, metadata }).thenNothingHappened());
  });
  describe('ended', () => {
    const succeeded: McpGatewayCallEvent = { type: 'McpToolSucceeded', data: success, metadata };
    it('the same outcome again is a no-op', () =>
      void spec
        .given([called, succeeded])
        .when({ type: 'RecordToolSuccess', data: success, metadata })
        .thenNothingHappened());
    it('another outcome is refused', () =>
      void spec
        .given([called, succeeded])
        .when({ type: 'RecordToolFailure', data: failure, metadata })
        .thenThrows((e: { code?: string }) => e.code === 'illegal_state'));
  });
});

describe('VirtualServer decider', () => {
  const spec = DeciderSpecification.for<
    VirtualServerCommand,
    VirtualServerEvent,
    ReturnType<typeof virtualServerDecider.evolve>
  >(virtualServerDecider);
  const define = (tools: string[]): VirtualServerCommand => ({
    type: 'DefineVirtualServer',
    data: { name: 'desk', description: 'd', tools },
    metadata,
  });
  const defined = (tools: string[], version: number): VirtualServerEvent => ({
    type: 'McpVirtualServerDefined',
    data: { name: 'desk', description: 'd', tools, version },
    metadata,
  });
  const removed: VirtualServerEvent = { type: 'McpVirtualServerRemoved', data: { name: 'desk' }, metadata };

  it('absent: define creates version 1', () =>
    void spec
      .given([])
      .when(define(['a__b']))
      .then([defined(['a__b'], 1)]));
  it('absent: remove is not found', () =>
    void spec
      .given([])
      .when({ type: 'RemoveVirtualServer', data: { name: 'desk' }, metadata })
      .thenThrows((e: { code?: string }) => e.code === 'not_found'));
  it('defined: the same definition changes nothing', () =>
    void spec
      .given([defined(['a__b'], 1)])
      .when(define(['a__b']))
      .thenNothingHappened());
  it('defined: another definition is the next version', () =>
    void spec
      .given([defined(['a__b'], 1)])
      .when(define(['a__*']))
      .then([defined(['a__*'], 2)]));
  it('defined: remove', () =>
    void spec
      .given([defined(['a__b'], 1)])
      .when({ type: 'RemoveVirtualServer', data: { name: 'desk' }, metadata })
      .then([removed]));
  it('removed: defined again continues the versions; removed twice is not found', () => {
    spec
      .given([defined(['a__b'], 1), removed])
      .when(define(['a__b']))
      .then([defined(['a__b'], 2)]);
    spec
      .given([defined(['a__b'], 1), removed])
      .when({ type: 'RemoveVirtualServer', data: { name: 'desk' }, metadata })
      .thenThrows((e: { code?: string }) => e.code === 'not_found');
  });

  it('the projection keeps the latest definition and drops a removed one', () => {
    const views = new Map<string, VirtualServerView>();
    projectVirtualServer(views, defined(['a__b'], 1));
    projectVirtualServer(views, defined(['a__*'], 2));
    assert.deepEqual(views.get('desk')?.tools, ['a__*']);
    assert.equal(views.get('desk')?.version, 2);
    assert.equal(views.get('desk')?.updated_by, metadata.actor);
    projectVirtualServer(views, removed);
    assert.equal(views.size, 0);
  });

  it('patterns: exact names and prefixes ending in *', () => {
    assert.ok(toolAllowed(['everything__echo'], 'everything__echo'));
    assert.ok(!toolAllowed(['everything__echo'], 'everything__echo2'));
    assert.ok(toolAllowed(['workflow__*'], 'workflow__revenue_analysis'));
    assert.ok(!toolAllowed(['workflow__*'], 'agent__revenue_analysis'));
  });
});

describe('MCP endpoint options', () => {
  it('defaults, and a bad value names the variable', () => {
    const o = mcpServerOptionsFromEnv({});
    assert.equal(o.stateless, false);
    assert.equal(o.maxSessions, 1_000);
    assert.equal(
      mcpServerOptionsFromEnv({ MCP_SERVER_STATELESS: 'true', MCP_SERVER_PUBLIC_URL: 'https://sy.example.com/' })
        .publicUrl,
      'https://sy.example.com',
    );
    assert.throws(
      () => mcpServerOptionsFromEnv({ MCP_SERVER_MAX_SESSIONS: '0' }),
      (e: unknown) => e instanceof ConfigError && /MCP_SERVER_MAX_SESSIONS/.test(e.message),
    );
  });
});
