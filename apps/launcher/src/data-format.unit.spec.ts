import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  batchEventTypes,
  builtInTemplates,
  definitionEventTypes,
  taskEventTypes,
  workflowEventTypes,
} from '@switchyard/domain';
import { mcpHealthSchema, serviceStatusSchema } from '@switchyard/contracts';
import { MCP_STATUS_EVENT_TYPES } from '@switchyard/read-models';
import { API_KEY_EVENT_TYPES, MCP_GATEWAY_CALL_EVENT_TYPES, VIRTUAL_SERVER_EVENT_TYPES } from '@switchyard/gateway';
import { SCHEDULE_EVENT_TYPES, WEBHOOK_EVENT_TYPES } from '@switchyard/mcp-servers';
import { alertingEventTypes, alertRulesEventTypes, healthEventTypes } from '@switchyard/monitor';
import { DATA_FORMAT } from './data-format.js';

/**
 * What an older build must be able to read in data this build writes: the event types of every
 * stream, the status values stored in read models and sent in replies, the built-in templates'
 * versions (registered in the shared definitions store, run by whichever engine takes them).
 */
function whatOlderBuildsRead(): string {
  const parts: Record<string, readonly string[]> = {
    workflow: workflowEventTypes,
    task: taskEventTypes,
    batch: batchEventTypes,
    definition: definitionEventTypes,
    mcpStatus: MCP_STATUS_EVENT_TYPES,
    apiKey: API_KEY_EVENT_TYPES,
    mcpGatewayCall: MCP_GATEWAY_CALL_EVENT_TYPES,
    virtualServer: VIRTUAL_SERVER_EVENT_TYPES,
    schedule: SCHEDULE_EVENT_TYPES,
    webhook: WEBHOOK_EVENT_TYPES,
    health: healthEventTypes,
    alerting: alertingEventTypes,
    alertRules: alertRulesEventTypes,
    serviceStatus: serviceStatusSchema.options,
    mcpHealth: mcpHealthSchema.options,
    templates: builtInTemplates.map((t) => `${t.id}@${t.version}`),
  };
  return Object.entries(parts)
    .map(([k, v]) => `${k}:${[...v].sort().join(',')}`)
    .join('\n');
}

/**
 * Pinned with the data format they belong to. A new event type, status value or template version
 * changes the fingerprint: when an older build could not read it (a downgrade would misread data,
 * answer 500s, or run a template it cannot evaluate), raise DATA_FORMAT so such a build refuses to
 * start; then pin the new fingerprint here with the format.
 */
const PINNED = {
  format: 2,
  fingerprint: '2b52a8c4b9cf3b7d',
};

describe('the data format follows what older builds must read', () => {
  it('the fingerprint of event types, stored status values and template versions is pinned with DATA_FORMAT', () => {
    const fingerprint = createHash('sha256').update(whatOlderBuildsRead()).digest('hex').slice(0, 16);
    assert.deepEqual(
      { format: DATA_FORMAT, fingerprint },
      PINNED,
      'what an older build must read changed: raise DATA_FORMAT in data-format.ts if an older build cannot read it, then pin the new fingerprint with it',
    );
  });
});
