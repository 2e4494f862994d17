import type pg from 'pg';
import { aggregateStream, handleCommand, type EventStore } from '@switchyard/event-store';
import { isSchemaManaged } from '@switchyard/platform';
import { storedAlertRuleSchema, type AlertRule } from '../domain/rules.js';
import {
  alertRulesDecider,
  alertRulesStream,
  type AlertRulesCommand,
  type AlertRulesEvent,
  type AlertRulesState,
  type RuleCommandMetadata,
  type RuleOverride,
  type RuleSource,
} from '../domain/alert-rules.js';

export { composeRules, type RuleOverride, type RuleSource, type SourcedRule } from '../domain/alert-rules.js';

const DDL = `
create schema if not exists monitoring;
create table if not exists monitoring.alert_rules (
  id text primary key,
  rule jsonb,
  updated_at timestamptz not null,
  updated_by text not null
);`;

type LegacyRow = { id: string; rule: AlertRule | null; updatedAt: string; updatedBy: string };
type Layers = readonly { source: RuleSource; rules: readonly AlertRule[] }[];

/** What a rule command appended, and the overrides after it. */
export interface RuleChange {
  readonly events: readonly AlertRulesEvent[];
  readonly overrides: readonly RuleOverride[];
  /** Global position of the last event appended (undefined: nothing appended). */
  readonly position?: number;
}

/**
 * Rule changes made through the API, as events in the stream `alertrules-<monitor>` (the
 * alert-rules decider decides them); `monitoring.alert_rules` is their read model (projection
 * `monitor-alert-rules`), a deleted rule a row with a null rule, so a deleted default stays
 * deleted after a restart. The rules in force are folded from the stream, not read from the table.
 */
export class RuleOverrideStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly eventStore: EventStore,
    private readonly monitorName = 'monitor',
  ) {}

  get streamId(): string {
    return alertRulesStream(this.monitorName);
  }

  async migrate(): Promise<void> {
    if (isSchemaManaged(this.pool)) return; // migrated by the owner role
    await this.pool.query(DDL);
  }

  /**
   * The overrides in the order they were last changed. Rows of `monitoring.alert_rules` written
   * before rule changes were events are imported into the (then empty) stream first, once.
   */
  async load(): Promise<RuleOverride[]> {
    const { state, revision } = await aggregateStream<AlertRulesEvent, AlertRulesState>(
      this.eventStore,
      this.streamId,
      alertRulesDecider,
    );
    if (revision === -1) {
      const rows = await this.legacyRows();
      if (rows.length > 0) {
        const at = new Date().toISOString();
        const r = await this.run({
          type: 'ImportAlertRules',
          data: { rows },
          metadata: { correlationId: 'monitor', timestamp: at, actor: 'system:monitor' },
        });
        return [...r.overrides];
      }
    }
    return [...state.overrides];
  }

  private async legacyRows(): Promise<LegacyRow[]> {
    const r = await this.pool.query(
      'select id, rule, updated_at, updated_by from monitoring.alert_rules order by updated_at, id',
    );
    // A stored rule that no longer parses (schema grew stricter) is skipped rather than blocking the start.
    return r.rows.flatMap((x: { id: string; rule: unknown; updated_at: Date; updated_by: string }): LegacyRow[] => {
      const base = { id: x.id, updatedAt: x.updated_at.toISOString(), updatedBy: x.updated_by };
      if (x.rule === null) return [{ ...base, rule: null }];
      const p = storedAlertRuleSchema.safeParse(x.rule);
      return p.success ? [{ ...base, rule: p.data }] : [];
    });
  }

  /** Add or replace rules (all or nothing); `layers` say what is in force besides the overrides. */
  put(rules: readonly AlertRule[], layers: Layers, metadata: RuleCommandMetadata): Promise<RuleChange> {
    return this.run({ type: 'PutAlertRules', data: { rules, layers }, metadata });
  }

  /** Delete a rule of any layer (not_found when none is in force). */
  delete(id: string, layers: Layers, metadata: RuleCommandMetadata): Promise<RuleChange> {
    return this.run({ type: 'DeleteAlertRule', data: { id, layers }, metadata });
  }

  private async run(command: AlertRulesCommand): Promise<RuleChange> {
    const r = await handleCommand<AlertRulesCommand, AlertRulesEvent, AlertRulesState>(
      this.eventStore,
      this.streamId,
      alertRulesDecider,
      command,
    );
    return {
      events: r.events,
      overrides: r.state.overrides,
      ...(r.position !== undefined ? { position: r.position } : {}),
    };
  }
}
