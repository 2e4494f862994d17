import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DeciderSpecification } from '@switchyard/testing';
import { AppError } from '@switchyard/platform';
import {
  alertRulesDecider,
  composeRules,
  type AlertRulesCommand,
  type AlertRulesEvent,
  type AlertRulesState,
  type RuleCommandMetadata,
} from './alert-rules.js';
import { defaultAlertRules, type AlertRule } from './rules.js';

const spec = DeciderSpecification.for<AlertRulesCommand, AlertRulesEvent, AlertRulesState>(alertRulesDecider);
const meta: RuleCommandMetadata = { correlationId: 'c1', timestamp: '2026-12-03T10:00:00.000Z', actor: 'apikey:admin' };
const layers = [{ source: 'default' as const, rules: defaultAlertRules }];
const cpu = defaultAlertRules.find((r) => r.id === 'cpu_high')!;
const custom: AlertRule = {
  id: 'queue_deep',
  name: 'Queue deep',
  metric: 'queue_depth',
  match: {},
  comparator: '>',
  threshold: 100,
  for_ms: 0,
  severity: 'warning',
  labels: {},
};
const put = (...rules: AlertRule[]): AlertRulesCommand => ({
  type: 'PutAlertRules',
  data: { rules, layers },
  metadata: meta,
});
const del = (id: string): AlertRulesCommand => ({ type: 'DeleteAlertRule', data: { id, layers }, metadata: meta });
const created = (rule: AlertRule): AlertRulesEvent => ({ type: 'AlertRuleCreated', data: { rule }, metadata: meta });
const updated = (rule: AlertRule, previous: AlertRule | null): AlertRulesEvent => ({
  type: 'AlertRuleUpdated',
  data: { rule, previous },
  metadata: meta,
});
const deleted = (id: string, previous: AlertRule | null): AlertRulesEvent => ({
  type: 'AlertRuleDeleted',
  data: { id, previous },
  metadata: meta,
});
const isCode = (code: string) => (e: unknown) => e instanceof AppError && e.code === code;

describe('alert rules decider', () => {
  describe('no changes yet (the configured layers only)', () => {
    it('a new id is created, a configured one updated with what it replaces', () => {
      const hot = { ...cpu, threshold: 95 };
      spec
        .given([])
        .when(put(custom, hot))
        .then([created(custom), updated(hot, cpu)]);
    });
    it('the same id twice in one request is refused, nothing recorded', () => {
      spec
        .given([])
        .when(put(custom, { ...custom, threshold: 1 }))
        .thenThrows(isCode('validation'));
    });
    it('deleting a configured rule records a tombstone', () => {
      spec
        .given([])
        .when(del('disk_high'))
        .then([
          deleted(
            'disk_high',
            defaultAlertRules.find((r) => r.id === 'disk_high')!,
          ),
        ]);
    });
    it('deleting an unknown rule: not_found naming the valid ids', () => {
      const err = spec.given([]).when(del('nope')).thenThrows<AppError>(isCode('not_found'));
      assert.deepEqual(
        err.details.valid,
        defaultAlertRules.map((r) => r.id),
      );
    });
    it('an import of the rows written before the log brings them in, in order, with their time and author', () => {
      const rows = [
        { id: 'queue_deep', rule: custom, updatedAt: '2026-01-01T00:00:00.000Z', updatedBy: 'ann' },
        { id: 'disk_high', rule: null, updatedAt: '2026-01-02T00:00:00.000Z', updatedBy: 'bob' },
      ];
      spec
        .given([])
        .when({ type: 'ImportAlertRules', data: { rows }, metadata: meta })
        .then([
          {
            type: 'AlertRuleUpdated',
            data: { rule: custom, previous: null },
            metadata: { ...meta, timestamp: rows[0]!.updatedAt, actor: 'ann' },
          },
          {
            type: 'AlertRuleDeleted',
            data: { id: 'disk_high', previous: null },
            metadata: { ...meta, timestamp: rows[1]!.updatedAt, actor: 'bob' },
          },
        ]);
    });
  });

  describe('after changes', () => {
    it('a deleted rule is no longer in force: deleting it again is not_found, putting it again creates it', () => {
      const given = spec.given([deleted('cpu_high', cpu)]);
      assert.ok(!composeRules(layers, given.state.overrides).some((r) => r.rule.id === 'cpu_high'));
      given.when(del('cpu_high')).thenThrows(isCode('not_found'));
      spec
        .given([deleted('cpu_high', cpu)])
        .when(put(cpu))
        .then([created(cpu)]);
    });
    it('an API rule is updated with the API version as previous, and its source is api', () => {
      const given = spec.given([created(custom)]);
      assert.deepEqual(composeRules(layers, given.state.overrides).find((r) => r.rule.id === custom.id)?.source, 'api');
      const higher = { ...custom, threshold: 500 };
      given.when(put(higher)).then([updated(higher, custom)]);
    });
    it('an import into a stream that already has changes does nothing', () => {
      spec
        .given([created(custom)])
        .when({
          type: 'ImportAlertRules',
          data: { rows: [{ id: 'x', rule: null, updatedAt: meta.timestamp, updatedBy: 'ann' }] },
          metadata: meta,
        })
        .thenNothingHappened();
    });
    it('a change moves the id to the end of the overrides (the order rules are listed in)', () => {
      const s = spec.given([
        created(custom),
        updated({ ...cpu, threshold: 90 }, cpu),
        updated({ ...custom, threshold: 7 }, custom),
      ]).state;
      assert.deepEqual(
        s.overrides.map((o) => o.id),
        ['cpu_high', 'queue_deep'],
      );
    });
  });
});
