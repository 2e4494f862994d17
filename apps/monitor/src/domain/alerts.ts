import { AppError } from '@switchyard/platform';
import { alertLabels, compare, fingerprint, type AlertRule, type Labels, type Severity } from './rules.js';
import {
  MAX_SILENCES_REGEX_PROGRAM_SIZE,
  matcherRegexProblem,
  matchesWhole,
  silenceRegexProgramSize,
} from '@switchyard/contracts';

/**
 * Alerting as a decider (Alertmanager-like): each alert, keyed by fingerprint (rule id +
 * sorted labels), goes inactive -> pending -> firing -> resolved. Silences suppress
 * notifications, never state. No clock here: every command carries its `at` (epoch ms).
 */

// ---------- silences ----------

/** One matcher on an alert label; `regex` anchors the pattern on the whole value. */
export interface Matcher {
  readonly name: string;
  readonly value: string;
  readonly isRegex?: boolean;
  readonly isEqual?: boolean; // default true; false means "does not match"
}

export interface Silence {
  readonly id: string;
  readonly matchers: readonly Matcher[];
  readonly createdBy: string;
  readonly comment: string;
  readonly startsAt: number;
  readonly endsAt: number;
}

/**
 * Whether one matcher matches (regexes are RE2, anchored, linear time). A matcher whose regex is
 * not valid never matches, `isEqual: false` or not, so its silence suppresses nothing: input is
 * validated, but a bad matcher stored before must not silence everything nor stop evaluation.
 */
export function matcherMatches(m: Matcher, labels: Labels): boolean {
  // Own labels only: a matcher named `constructor` or `toString` read the object's inherited
  // function, and the regex test on it threw on every round, which stopped all alerting.
  const actual = (Object.hasOwn(labels, m.name) ? labels[m.name] : undefined) ?? '';
  const hit = m.isRegex ? matchesWhole(m.value, actual) : actual === m.value;
  if (hit === null) return false;
  return (m.isEqual ?? true) ? hit : !hit;
}

/** The matchers of a silence whose regex is not valid, with why (the Monitor warns about them). */
export function invalidMatchers(s: Pick<Silence, 'matchers'>): { index: number; matcher: Matcher; problem: string }[] {
  const out: { index: number; matcher: Matcher; problem: string }[] = [];
  s.matchers.forEach((matcher, index) => {
    const problem = matcher.isRegex ? matcherRegexProblem(matcher.value) : null;
    if (problem) out.push({ index, matcher, problem });
  });
  return out;
}

/**
 * A silence is active at `at` in [startsAt, endsAt) and matches when all matchers match. Plain
 * matchers are tested first: one that fails spares the regexes.
 */
export function silenceSuppresses(s: Silence, labels: Labels, at: number): boolean {
  return (
    s.startsAt <= at &&
    at < s.endsAt &&
    s.matchers.every((m) => m.isRegex || matcherMatches(m, labels)) &&
    s.matchers.every((m) => !m.isRegex || matcherMatches(m, labels))
  );
}

// ---------- state ----------

// A type, not an interface: the events built on it are assignable to a plain JSON record.
type AlertBase = {
  readonly fingerprint: string;
  readonly ruleId: string;
  readonly name: string;
  readonly severity: Severity;
  readonly labels: Labels;
};
export type AlertInstance =
  | (AlertBase & { readonly status: 'pending'; readonly pendingSince: number; readonly suppressedBy: string | null })
  | (AlertBase & {
      readonly status: 'firing';
      readonly pendingSince: number;
      readonly firingSince: number;
      readonly suppressedBy: string | null;
    })
  | (AlertBase & { readonly status: 'resolved'; readonly resolvedAt: number; readonly manual: boolean });

export interface AlertingState {
  readonly alerts: Readonly<Record<string, AlertInstance>>;
  readonly silences: Readonly<Record<string, Silence>>;
}
export const initialAlertingState: AlertingState = { alerts: {}, silences: {} };

// ---------- commands ----------

type Cmd<T extends string, D> = {
  readonly type: T;
  readonly data: D;
  readonly metadata: { readonly at: number; readonly correlationId?: string };
};

export type EvaluateSample = Cmd<
  'EvaluateSample',
  {
    rule: AlertRule;
    labels: Labels;
    value: number;
    /**
     * How long the alert has been pending as the monitor observed it, on its monotonic clock: a
     * pending alert fires once this reaches the rule's `for`. The wall clock does not judge it
     * (after a step back of an hour `at - pendingSince` falls short for an hour). The monitor counts
     * an alert pending from before its start from that start: nothing was observed while it was not
     * running, so the breach must hold for its whole `for` again. Without it: `at - pendingSince`.
     */
    pendingForMs?: number | undefined;
  }
>;
export type ResolveManually = Cmd<'ResolveManually', { fingerprint: string; actor: string; reason: string }>;
export type AddSilence = Cmd<'AddSilence', { silence: Silence }>;
/**
 * Silences in force at once (until they end or are expired): every alert evaluation is checked
 * against each of them, and each is kept and listed; an operator may add them, a year long each.
 */
export const MAX_SILENCES = 1_000;
export type ExpireSilence = Cmd<'ExpireSilence', { silenceId: string; actor: string }>;
export type AlertingCommand = EvaluateSample | ResolveManually | AddSilence | ExpireSilence;

// ---------- events ----------

type Evt<T extends string, D> = {
  readonly type: T;
  readonly data: D;
  readonly metadata: { readonly at: number; readonly correlationId?: string };
};
type AlertRef = AlertBase & { readonly value?: number; readonly threshold?: number };

export type AlertPending = Evt<'AlertPending', AlertRef & { value: number; threshold: number }>;
export type AlertFiring = Evt<
  'AlertFiring',
  AlertRef & { value: number; threshold: number; pendingSince: number; suppressedBy: string | null }
>;
/** Back to inactive: the condition cleared before `for` elapsed (never notified). */
export type AlertPendingCleared = Evt<'AlertPendingCleared', AlertRef & { value: number }>;
export type AlertResolved = Evt<
  'AlertResolved',
  AlertRef & {
    how: 'auto' | 'manual';
    actor: string | null;
    reason: string | null;
    firingSince: number | null;
    suppressedBy: string | null;
  }
>;
/** An active alert became suppressed by a silence (at pending/firing time, or when the silence was added). */
export type AlertSilenced = Evt<'AlertSilenced', AlertRef & { silenceId: string }>;
/** The silence suppressing a firing alert ended and no other covers it: notify now. */
export type AlertUnsilenced = Evt<'AlertUnsilenced', AlertRef & { silenceId: string }>;
export type SilenceAdded = Evt<'SilenceAdded', { silence: Silence }>;
export type SilenceExpired = Evt<'SilenceExpired', { silenceId: string; actor: string }>;

export type AlertingEvent =
  | AlertPending
  | AlertFiring
  | AlertPendingCleared
  | AlertResolved
  | AlertSilenced
  | AlertUnsilenced
  | SilenceAdded
  | SilenceExpired;

/**
 * Whether an event should reach people (the notification channel): firing, resolution of a
 * notified alert and un-silencing; never while a silence suppresses it.
 */
export function shouldNotify(e: AlertingEvent): boolean {
  switch (e.type) {
    case 'AlertFiring':
      return e.data.suppressedBy === null;
    case 'AlertResolved':
      return e.data.suppressedBy === null && e.data.firingSince !== null;
    case 'AlertUnsilenced':
      return true;
    default:
      return false;
  }
}

// ---------- decide ----------

function activeSilenceFor(state: AlertingState, labels: Labels, at: number, except?: string): string | null {
  const ids = Object.keys(state.silences).sort();
  for (const id of ids) {
    if (id === except) continue;
    if (silenceSuppresses(state.silences[id]!, labels, at)) return id;
  }
  return null;
}

function base(a: AlertInstance): AlertBase {
  return { fingerprint: a.fingerprint, ruleId: a.ruleId, name: a.name, severity: a.severity, labels: a.labels };
}

export function decideAlerting(command: AlertingCommand, state: AlertingState): AlertingEvent[] {
  const meta = command.metadata;
  switch (command.type) {
    case 'EvaluateSample': {
      const { rule, value } = command.data;
      if (!Number.isFinite(value)) return []; // no data is not a breach nor a recovery
      const labels = alertLabels(rule, command.data.labels);
      const fp = fingerprint(rule.id, { ...command.data.labels, ...rule.labels });
      const ref: AlertBase = { fingerprint: fp, ruleId: rule.id, name: rule.name, severity: rule.severity, labels };
      const breach = compare(value, rule.comparator, rule.threshold);
      const current = state.alerts[fp];
      const at = meta.at;
      if (!current || current.status === 'resolved') {
        if (!breach) return [];
        const suppressedBy = activeSilenceFor(state, labels, at);
        const events: AlertingEvent[] = [
          { type: 'AlertPending', data: { ...ref, value, threshold: rule.threshold }, metadata: meta },
        ];
        if (suppressedBy)
          events.push({ type: 'AlertSilenced', data: { ...ref, silenceId: suppressedBy }, metadata: meta });
        if (rule.for_ms === 0) {
          events.push({
            type: 'AlertFiring',
            data: { ...ref, value, threshold: rule.threshold, pendingSince: at, suppressedBy },
            metadata: meta,
          });
        }
        return events;
      }
      if (current.status === 'pending') {
        if (!breach) return [{ type: 'AlertPendingCleared', data: { ...base(current), value }, metadata: meta }];
        if ((command.data.pendingForMs ?? at - current.pendingSince) < rule.for_ms) return [];
        const suppressedBy = activeSilenceFor(state, current.labels, at);
        const events: AlertingEvent[] = [];
        if (suppressedBy && suppressedBy !== current.suppressedBy) {
          events.push({ type: 'AlertSilenced', data: { ...base(current), silenceId: suppressedBy }, metadata: meta });
        }
        events.push({
          type: 'AlertFiring',
          data: {
            ...base(current),
            value,
            threshold: rule.threshold,
            pendingSince: current.pendingSince,
            suppressedBy,
          },
          metadata: meta,
        });
        return events;
      }
      // firing
      if (breach) return [];
      return [
        {
          type: 'AlertResolved',
          data: {
            ...base(current),
            value,
            how: 'auto',
            actor: null,
            reason: null,
            firingSince: current.firingSince,
            suppressedBy: activeSilenceFor(state, current.labels, at),
          },
          metadata: meta,
        },
      ];
    }
    case 'ResolveManually': {
      const { fingerprint: fp, actor, reason } = command.data;
      const current = state.alerts[fp];
      if (!current) throw new AppError('not_found', `alert ${fp} not found`, { fingerprint: fp });
      if (current.status === 'resolved') {
        throw new AppError('illegal_state', `alert ${fp} is already resolved`, {
          fingerprint: fp,
          status: current.status,
        });
      }
      if (!actor.trim() || !reason.trim())
        throw new AppError('validation', 'a manual resolve needs who and why', { fingerprint: fp });
      return [
        {
          type: 'AlertResolved',
          data: {
            ...base(current),
            how: 'manual',
            actor,
            reason,
            firingSince: current.status === 'firing' ? current.firingSince : null,
            suppressedBy: activeSilenceFor(state, current.labels, meta.at),
          },
          metadata: meta,
        },
      ];
    }
    case 'AddSilence': {
      const { silence } = command.data;
      const held = Object.keys(state.silences).length;
      if (held >= MAX_SILENCES)
        throw new AppError(
          'illegal_state',
          `at most ${MAX_SILENCES} silences may be in force at once: expire one first`,
          { silences: held, max: MAX_SILENCES },
          false,
        );
      if (state.silences[silence.id])
        throw new AppError('conflict', `silence ${silence.id} already exists`, { silenceId: silence.id });
      // Every evaluation tests every silence in force: their regexes together must stay compiled.
      const adding = silenceRegexProgramSize(silence.matchers);
      if (adding > 0) {
        let inForce = 0;
        for (const other of Object.values(state.silences)) inForce += silenceRegexProgramSize(other.matchers);
        if (inForce + adding > MAX_SILENCES_REGEX_PROGRAM_SIZE)
          throw new AppError(
            'illegal_state',
            `the silences in force may hold at most ${MAX_SILENCES_REGEX_PROGRAM_SIZE} regex instructions together (estimated as compiled); they hold ${inForce} and this one needs ${adding}: expire one, or use plain matchers`,
            { in_force: inForce, adding, max: MAX_SILENCES_REGEX_PROGRAM_SIZE },
            false,
          );
      }
      if (silence.matchers.length === 0)
        throw new AppError('validation', 'a silence needs at least one matcher', { silenceId: silence.id });
      if (silence.endsAt <= silence.startsAt)
        throw new AppError('validation', 'a silence must end after it starts', { silenceId: silence.id });
      const events: AlertingEvent[] = [{ type: 'SilenceAdded', data: { silence }, metadata: meta }];
      for (const fp of Object.keys(state.alerts).sort()) {
        const a = state.alerts[fp]!;
        if (a.status === 'resolved' || a.suppressedBy) continue;
        if (silenceSuppresses(silence, a.labels, meta.at)) {
          events.push({ type: 'AlertSilenced', data: { ...base(a), silenceId: silence.id }, metadata: meta });
        }
      }
      return events;
    }
    case 'ExpireSilence': {
      const { silenceId, actor } = command.data;
      if (!state.silences[silenceId]) throw new AppError('not_found', `silence ${silenceId} not found`, { silenceId });
      const events: AlertingEvent[] = [{ type: 'SilenceExpired', data: { silenceId, actor }, metadata: meta }];
      for (const fp of Object.keys(state.alerts).sort()) {
        const a = state.alerts[fp]!;
        if (a.status !== 'firing' || a.suppressedBy !== silenceId) continue;
        const other = activeSilenceFor(state, a.labels, meta.at, silenceId);
        if (other) events.push({ type: 'AlertSilenced', data: { ...base(a), silenceId: other }, metadata: meta });
        else events.push({ type: 'AlertUnsilenced', data: { ...base(a), silenceId }, metadata: meta });
      }
      return events;
    }
    default: {
      const never: never = command;
      throw new Error(`unknown command ${(never as { type: string }).type}`);
    }
  }
}

// ---------- evolve ----------

export function evolveAlerting(state: AlertingState, event: AlertingEvent): AlertingState {
  const at = event.metadata.at;
  const put = (a: AlertInstance): AlertingState => ({ ...state, alerts: { ...state.alerts, [a.fingerprint]: a } });
  switch (event.type) {
    case 'AlertPending': {
      const { fingerprint: fp, ruleId, name, severity, labels } = event.data;
      return put({
        fingerprint: fp,
        ruleId,
        name,
        severity,
        labels,
        status: 'pending',
        pendingSince: at,
        suppressedBy: null,
      });
    }
    case 'AlertFiring': {
      const { fingerprint: fp, ruleId, name, severity, labels, pendingSince, suppressedBy } = event.data;
      return put({
        fingerprint: fp,
        ruleId,
        name,
        severity,
        labels,
        status: 'firing',
        pendingSince,
        firingSince: at,
        suppressedBy,
      });
    }
    case 'AlertPendingCleared': {
      const { [event.data.fingerprint]: _gone, ...rest } = state.alerts;
      return { ...state, alerts: rest };
    }
    case 'AlertResolved': {
      const { fingerprint: fp, ruleId, name, severity, labels, how } = event.data;
      return put({
        fingerprint: fp,
        ruleId,
        name,
        severity,
        labels,
        status: 'resolved',
        resolvedAt: at,
        manual: how === 'manual',
      });
    }
    case 'AlertSilenced': {
      const a = state.alerts[event.data.fingerprint];
      if (!a || a.status === 'resolved') return state;
      return put({ ...a, suppressedBy: event.data.silenceId });
    }
    case 'AlertUnsilenced': {
      const a = state.alerts[event.data.fingerprint];
      if (!a || a.status === 'resolved') return state;
      return put({ ...a, suppressedBy: null });
    }
    case 'SilenceAdded':
      return { ...state, silences: { ...state.silences, [event.data.silence.id]: event.data.silence } };
    case 'SilenceExpired': {
      const { [event.data.silenceId]: _gone, ...rest } = state.silences;
      return { ...state, silences: rest };
    }
    default: {
      const never: never = event;
      throw new Error(`unknown event ${(never as { type: string }).type}`);
    }
  }
}

/** Silences whose `endsAt` has passed at `at`: the Monitor sends ExpireSilence for each. */
export function dueSilences(state: AlertingState, at: number): string[] {
  return Object.values(state.silences)
    .filter((s) => s.endsAt <= at)
    .map((s) => s.id)
    .sort();
}
