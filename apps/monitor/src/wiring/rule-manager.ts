import type { Logger } from '@switchyard/platform';
import type { AlertRule } from '../domain/rules.js';
import { MONITOR_ACTOR } from '../events.js';
import type { Monitor } from '../monitor.js';
import { monitorProjectionNames } from '../projections.js';
import { currentCommandScope } from './publisher.js';
import {
  composeRules,
  type RuleChange,
  type RuleOverride,
  type RuleOverrideStore,
  type RuleSource,
  type SourcedRule,
} from './rules.js';

/**
 * The alert rules in force: the configured layers plus the API's changes. Every change is a
 * command on the rules stream (decided by the alert-rules decider, appended with its expected
 * revision), then swapped into the Monitor's rule list in place (the Monitor reads that list on
 * each evaluation, inside its queue, so a swap is atomic). An answer waits for the
 * `monitoring.alert_rules` read model to show the change.
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

  /** Load the overrides from the log; returns the rules in force (to build the Monitor with). */
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
  put(monitor: Monitor, rules: readonly AlertRule[], actor: string, at = Date.now()): Promise<SourcedRule[]> {
    return this.serial(async () => {
      const before = new Map(this.current.map((r) => [r.rule.id, r.rule]));
      const change = await this.store.put(rules, this.layers, this.metadata(actor, at));
      await this.applied(monitor, change);
      for (const r of rules) {
        const old = before.get(r.id);
        // A rule that now watches other series would never see its old alerts recover.
        if (old && (old.metric !== r.metric || JSON.stringify(old.match) !== JSON.stringify(r.match))) {
          await this.resolveAlertsOf(monitor, r.id, actor, `rule ${r.id} changed its series`);
        }
      }
      this.log.info({ rules: rules.map((r) => r.id), actor }, 'alert rules updated');
      return this.list();
    });
  }

  /** Delete a rule of any layer; its active alerts are resolved (nothing would resolve them later). */
  delete(monitor: Monitor, id: string, actor: string, at = Date.now()): Promise<number> {
    return this.serial(async () => {
      const change = await this.store.delete(id, this.layers, this.metadata(actor, at));
      await this.applied(monitor, change);
      const resolved = await this.resolveAlertsOf(monitor, id, actor, `rule ${id} deleted`);
      this.log.info({ rule: id, actor, resolved }, 'alert rule deleted');
      return resolved;
    });
  }

  // The request's correlation id when a request caused the change; who asked is the actor.
  private metadata(actor: string, at: number) {
    const s = currentCommandScope();
    return {
      correlationId: s?.correlationId ?? 'monitor',
      ...(s?.causationId ? { causationId: s.causationId } : {}),
      timestamp: new Date(at).toISOString(),
      actor: actor || MONITOR_ACTOR,
    };
  }

  // Swap the new rules in, then wait for the read model so a reader of the table sees the change.
  private async applied(monitor: Monitor, change: RuleChange): Promise<void> {
    this.overrides = [...change.overrides];
    this.swap(monitor);
    if (change.position !== undefined) {
      await monitor
        .waitForReadModels(change.position, [monitorProjectionNames.alertRules])
        .catch((err: unknown) =>
          this.log.warn({ err, position: change.position }, 'the alert rules read model is behind; answering anyway'),
        );
    }
  }

  private swap(monitor: Monitor): void {
    this.current = composeRules(this.layers, this.overrides);
    const list = monitor.settings.rules;
    list.splice(0, list.length, ...this.current.map((r) => r.rule));
    // A deleted rule or a changed `for` must not leave a deadline timer behind.
    monitor.rulesChanged();
  }

  private async resolveAlertsOf(monitor: Monitor, ruleId: string, actor: string, reason: string): Promise<number> {
    let n = 0;
    for (const a of Object.values(monitor.alertingState.alerts)) {
      if (a.ruleId !== ruleId || a.status === 'resolved') continue;
      await monitor.resolveAlert(a.fingerprint, actor, reason).then(
        () => n++,
        (err) => this.log.warn({ err, fingerprint: a.fingerprint }, 'could not resolve an orphaned alert'),
      );
    }
    return n;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined);
    return p;
  }
}
