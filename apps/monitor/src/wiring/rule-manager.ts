import { AppError, type Logger } from '@switchyard/platform';
import type { AlertRule } from '../domain/rules.js';
import type { Monitor } from '../monitor.js';
import { composeRules, type RuleOverride, type RuleOverrideStore, type RuleSource, type SourcedRule } from './rules.js';

/**
 * The alert rules in force: the configured layers plus the API's persisted changes. Every
 * change is written to PostgreSQL first, then swapped into the Monitor's rule list in place
 * (the Monitor reads that list on each evaluation, inside its queue, so a swap is atomic).
 */
export class RuleManager {
  private overrides: RuleOverride[] = [];
  private current: SourcedRule[] = [];
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: RuleOverrideStore,
    private readonly layers: readonly { source: RuleSource; rules: readonly AlertRule[] }[],
    private readonly log: Logger,
  ) {}

  /** Load the persisted overrides; returns the rules in force (to build the Monitor with). */
  async load(): Promise<AlertRule[]> {
    await this.store.migrate();
    this.overrides = await this.store.load();
    this.current = composeRules(this.layers, this.overrides);
    return this.current.map((r) => r.rule);
  }

  list(): SourcedRule[] {
    return [...this.current];
  }

  /** Upsert rules (validated by the caller's schema); resolves alerts a changed series selection would orphan. */
  put(monitor: Monitor, rules: readonly AlertRule[], actor: string): Promise<SourcedRule[]> {
    return this.serial(async () => {
      const ids = new Set<string>();
      for (const r of rules) {
        if (ids.has(r.id)) throw new AppError('validation', `rule ${r.id} appears twice`, { id: r.id });
        ids.add(r.id);
      }
      const before = new Map(this.current.map((r) => [r.rule.id, r.rule]));
      await this.store.put(rules, actor);
      this.overrides = [...this.overrides.filter((o) => !ids.has(o.id)), ...rules.map((rule) => ({ id: rule.id, rule }))];
      this.swap(monitor);
      for (const r of rules) {
        const old = before.get(r.id);
        // A rule that now watches other series would never see its old alerts recover.
        if (old && (old.metric !== r.metric || JSON.stringify(old.match) !== JSON.stringify(r.match))) {
          await this.resolveAlertsOf(monitor, r.id, actor, `rule ${r.id} changed its series`);
        }
      }
      this.log.info({ rules: [...ids], actor }, 'alert rules updated');
      return this.list();
    });
  }

  /** Delete a rule of any layer; its active alerts are resolved (nothing would resolve them later). */
  delete(monitor: Monitor, id: string, actor: string): Promise<number> {
    return this.serial(async () => {
      if (!this.current.some((r) => r.rule.id === id)) {
        throw new AppError('not_found', `no alert rule ${id}`, { id, valid: this.current.map((r) => r.rule.id) });
      }
      await this.store.delete(id, actor);
      this.overrides = [...this.overrides.filter((o) => o.id !== id), { id, rule: null }];
      this.swap(monitor);
      const resolved = await this.resolveAlertsOf(monitor, id, actor, `rule ${id} deleted`);
      this.log.info({ rule: id, actor, resolved }, 'alert rule deleted');
      return resolved;
    });
  }

  private swap(monitor: Monitor): void {
    this.current = composeRules(this.layers, this.overrides);
    const list = monitor.settings.rules;
    list.splice(0, list.length, ...this.current.map((r) => r.rule));
  }

  private async resolveAlertsOf(monitor: Monitor, ruleId: string, actor: string, reason: string): Promise<number> {
    let n = 0;
    for (const a of Object.values(monitor.alertingState.alerts)) {
      if (a.ruleId !== ruleId || a.status === 'resolved') continue;
      await monitor.resolveAlert(a.fingerprint, actor, reason).then(() => n++, (err) => this.log.warn({ err, fingerprint: a.fingerprint }, 'could not resolve an orphaned alert'));
    }
    return n;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined);
    return p;
  }
}
