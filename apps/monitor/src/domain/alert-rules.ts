import { AppError } from '@switchyard/platform';
import type { AlertRule } from './rules.js';

/**
 * The alert rules changed through the API, as a decider. The rules in force are the configured
 * layers (defaults, MONITOR_RULES_FILE, MONITOR_RULES) with these changes on top; the layers are
 * configuration, not events, so a command carries them and the decider composes the rules in
 * force itself (pure: no I/O, no clock; the time and the actor arrive in the command).
 * One stream per monitor (`alertrules-<name>`): the changes are few and ordered.
 */

export type RuleSource = 'default' | 'file' | 'env' | 'api';
export interface SourcedRule {
  readonly rule: AlertRule;
  readonly source: RuleSource;
}

/** A rule change made through the API: the rule, or a tombstone for a deleted one. */
export interface RuleOverride {
  readonly id: string;
  readonly rule: AlertRule | null;
}

/**
 * The rules in force, by layer: defaults, then the file, then the env, then the API's
 * overrides (a tombstone removes a rule of any layer). A later layer replaces a rule of the
 * same id. Order is first appearance, new ids at the end.
 */
export function composeRules(
  layers: readonly { source: RuleSource; rules: readonly AlertRule[] }[],
  overrides: readonly RuleOverride[],
): SourcedRule[] {
  const byId = new Map<string, SourcedRule>();
  for (const layer of layers) for (const rule of layer.rules) byId.set(rule.id, { rule, source: layer.source });
  for (const o of overrides) {
    if (o.rule === null) byId.delete(o.id);
    else byId.set(o.id, { rule: o.rule, source: 'api' });
  }
  return [...byId.values()];
}

// ---------- state ----------

/** The API's overrides in the order they were last changed (a change moves an id to the end). */
export interface AlertRulesState {
  readonly overrides: readonly RuleOverride[];
}
export const initialAlertRulesState: AlertRulesState = { overrides: [] };

// ---------- commands and events ----------

/** Time and correlation arrive in the command; `timestamp` is ISO-8601 (the event store's field). */
export interface RuleCommandMetadata {
  readonly correlationId: string;
  readonly timestamp: string;
  readonly actor: string;
  readonly causationId?: string;
  readonly [key: string]: unknown;
}
type Cmd<T extends string, D> = { readonly type: T; readonly data: D; readonly metadata: RuleCommandMetadata };
type Evt<T extends string, D> = { readonly type: T; readonly data: D; readonly metadata: RuleCommandMetadata };
type Layers = readonly { source: RuleSource; rules: readonly AlertRule[] }[];

/** Add or replace rules by id (all or nothing). `layers`: the configured layers, to know what is in force. */
export type PutAlertRules = Cmd<'PutAlertRules', { rules: readonly AlertRule[]; layers: Layers }>;
/** Delete a rule of any layer (a tombstone). */
export type DeleteAlertRule = Cmd<'DeleteAlertRule', { id: string; layers: Layers }>;
/** Bring the rows of `monitoring.alert_rules` written before rule changes were events into the log, once. */
export type ImportAlertRules = Cmd<
  'ImportAlertRules',
  { rows: readonly { id: string; rule: AlertRule | null; updatedAt: string; updatedBy: string }[] }
>;
export type AlertRulesCommand = PutAlertRules | DeleteAlertRule | ImportAlertRules;

export type AlertRuleCreated = Evt<'AlertRuleCreated', { rule: AlertRule }>;
export type AlertRuleUpdated = Evt<'AlertRuleUpdated', { rule: AlertRule; previous: AlertRule | null }>;
export type AlertRuleDeleted = Evt<'AlertRuleDeleted', { id: string; previous: AlertRule | null }>;
export type AlertRulesEvent = AlertRuleCreated | AlertRuleUpdated | AlertRuleDeleted;
export const alertRulesEventTypes: readonly AlertRulesEvent['type'][] = [
  'AlertRuleCreated',
  'AlertRuleUpdated',
  'AlertRuleDeleted',
];

export function decideAlertRules(command: AlertRulesCommand, state: AlertRulesState): AlertRulesEvent[] {
  const meta = command.metadata;
  switch (command.type) {
    case 'PutAlertRules': {
      const seen = new Set<string>();
      for (const r of command.data.rules) {
        if (seen.has(r.id)) throw new AppError('validation', `rule ${r.id} appears twice`, { id: r.id });
        seen.add(r.id);
      }
      const inForce = new Map(composeRules(command.data.layers, state.overrides).map((r) => [r.rule.id, r.rule]));
      return command.data.rules.map((rule): AlertRulesEvent => {
        const previous = inForce.get(rule.id);
        return previous
          ? { type: 'AlertRuleUpdated', data: { rule, previous }, metadata: meta }
          : { type: 'AlertRuleCreated', data: { rule }, metadata: meta };
      });
    }
    case 'DeleteAlertRule': {
      const { id } = command.data;
      const inForce = composeRules(command.data.layers, state.overrides);
      const previous = inForce.find((r) => r.rule.id === id);
      if (!previous)
        throw new AppError('not_found', `no alert rule ${id}`, { id, valid: inForce.map((r) => r.rule.id) });
      return [{ type: 'AlertRuleDeleted', data: { id, previous: previous.rule }, metadata: meta }];
    }
    case 'ImportAlertRules': {
      // Only into an empty log: an import after changes were recorded would replay old rows over them.
      if (state.overrides.length > 0) return [];
      return command.data.rows.map((row): AlertRulesEvent => {
        const m = { ...meta, timestamp: row.updatedAt, actor: row.updatedBy };
        return row.rule === null
          ? { type: 'AlertRuleDeleted', data: { id: row.id, previous: null }, metadata: m }
          : { type: 'AlertRuleUpdated', data: { rule: row.rule, previous: null }, metadata: m };
      });
    }
    default: {
      const never: never = command;
      throw new Error(`unknown command ${(never as { type: string }).type}`);
    }
  }
}

export function evolveAlertRules(state: AlertRulesState, event: AlertRulesEvent): AlertRulesState {
  const id = event.type === 'AlertRuleDeleted' ? event.data.id : event.data.rule.id;
  const rest = state.overrides.filter((o) => o.id !== id);
  switch (event.type) {
    case 'AlertRuleCreated':
    case 'AlertRuleUpdated':
      return { overrides: [...rest, { id, rule: event.data.rule }] };
    case 'AlertRuleDeleted':
      return { overrides: [...rest, { id, rule: null }] };
    default: {
      const never: never = event;
      throw new Error(`unknown event ${(never as { type: string }).type}`);
    }
  }
}

export const alertRulesDecider = {
  decide: decideAlertRules,
  evolve: evolveAlertRules,
  initialState: initialAlertRulesState,
};

/** The stream of one monitor's rule changes. */
export const alertRulesStream = (monitorName = 'monitor'): string => `alertrules-${monitorName}`;
