import type pg from 'pg';
import { isSchemaManaged, withTransaction } from '@switchyard/platform';
import { alertRuleSchema, type AlertRule } from '../domain/rules.js';
import type { RuleJson } from '@switchyard/contracts';

export type RuleSource = RuleJson['source'];
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
 * persisted overrides (a tombstone removes a rule of any layer). A later layer replaces a
 * rule of the same id. Pure; order is first appearance, new ids at the end.
 */
export function composeRules(layers: readonly { source: RuleSource; rules: readonly AlertRule[] }[], overrides: readonly RuleOverride[]): SourcedRule[] {
  const byId = new Map<string, SourcedRule>();
  for (const layer of layers) for (const rule of layer.rules) byId.set(rule.id, { rule, source: layer.source });
  for (const o of overrides) {
    if (o.rule === null) byId.delete(o.id);
    else byId.set(o.id, { rule: o.rule, source: 'api' });
  }
  return [...byId.values()];
}

const DDL = `
create schema if not exists monitoring;
create table if not exists monitoring.alert_rules (
  id text primary key,
  rule jsonb,
  updated_at timestamptz not null,
  updated_by text not null
);`;

/**
 * Rule changes made through the API, in PostgreSQL (`monitoring.alert_rules`), so they
 * survive a restart. A deleted rule is a row with a null rule: a deleted default stays deleted.
 */
export class RuleOverrideStore {
  constructor(private readonly pool: pg.Pool) {}

  async migrate(): Promise<void> {
    if (isSchemaManaged(this.pool)) return; // migrated by the owner role
    await this.pool.query(DDL);
  }

  async load(): Promise<RuleOverride[]> {
    const r = await this.pool.query('select id, rule from monitoring.alert_rules order by updated_at, id');
    // A stored rule that no longer parses (schema grew stricter) is skipped rather than blocking the start.
    return r.rows.flatMap((x: { id: string; rule: unknown }): RuleOverride[] => {
      if (x.rule === null) return [{ id: x.id, rule: null }];
      const p = alertRuleSchema.safeParse(x.rule);
      return p.success ? [{ id: x.id, rule: p.data }] : [];
    });
  }

  /** Upsert several rules in one transaction. */
  async put(rules: readonly AlertRule[], actor: string, at = new Date()): Promise<void> {
    await withTransaction(this.pool, async (c) => {
      for (const rule of rules) {
        await c.query(
          `insert into monitoring.alert_rules (id, rule, updated_at, updated_by) values ($1, $2, $3, $4)
           on conflict (id) do update set rule = $2, updated_at = $3, updated_by = $4`,
          [rule.id, JSON.stringify(rule), at, actor],
        );
      }
    });
  }

  async delete(id: string, actor: string, at = new Date()): Promise<void> {
    await this.pool.query(
      `insert into monitoring.alert_rules (id, rule, updated_at, updated_by) values ($1, null, $2, $3)
       on conflict (id) do update set rule = null, updated_at = $2, updated_by = $3`,
      [id, at, actor],
    );
  }
}
