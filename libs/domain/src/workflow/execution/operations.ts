/**
 * Pure planning for operations on recorded executions: which outputs a fork copies (`planFork`),
 * the state after any revision (`stateAt`), and what another definition version would have
 * decided differently on an execution's recorded outcomes (`checkReplay`). No I/O: callers read
 * the stream and hand its events in.
 */
import { DomainError, type CommandMetadata } from '../../decider.js';
import type { StepDefinition, WorkflowDefinition } from '../definition/schema.js';
import { evaluateCondition, evaluateItems, resolveMapping, withExpressionBudget } from '../definition/expressions.js';
import { compensationStepIds } from '../definition/validate.js';
import { canonicalJson } from '../definition/registration.js';
import {
  compensationKey,
  decideWorkflow,
  downstreamOf,
  evolveWorkflow,
  expressionContext,
  initialWorkflowState,
} from './decider.js';
import type {
  CopiedStep,
  StartedExecution,
  StepError,
  StepState,
  WorkflowCommand,
  WorkflowEvent,
  WorkflowExecutionState,
} from './types.js';

/** An event with the stream revision it was recorded at. */
export interface RevisionedEvent {
  readonly revision: number;
  readonly event: WorkflowEvent;
}

/** The state after the event at `revision` (all events up to and including it, folded by the decider's evolve). */
export function stateAt(events: readonly RevisionedEvent[], revision: number): WorkflowExecutionState {
  let s = initialWorkflowState;
  for (const e of events) {
    if (e.revision > revision) break;
    s = evolveWorkflow(s, e.event);
  }
  return s;
}

export interface ForkPlan {
  /** Outputs the fork takes over (with the source revision that recorded each). */
  readonly copies: readonly CopiedStep[];
  /** Steps the fork runs: `fromStep`, the steps the source undid, and everything downstream of them (in the source or the target definition). */
  readonly rerun: readonly string[];
}

/**
 * What a fork of `source` from `fromStep` onto `target` copies: every step that succeeded in the
 * source (ran, or was itself copied by an earlier fork) and is neither `fromStep` nor downstream
 * of it, in the source's definition or in the target's. Compensation steps are never copied, nor
 * is a step whose effect the source compensated (its own compensation or an item's started): it
 * runs again, with what depends on it.
 * With an `input` other than the source's, a step is copied only when it would have run the same
 * on it (its condition holds, its items and resolved inputs are the ones it ran with); one that
 * would not runs again, and so does what depends on it: an output is never taken over for an
 * input it was not made from (a lookup of one customer's e-mail standing for another's).
 * 400 when `fromStep` is a step of neither definition. Copies the target lacks are left in: the
 * decider refuses them (409 naming them), so the operator sees what the new version drops.
 */
export function planFork(
  source: StartedExecution,
  events: readonly RevisionedEvent[],
  fromStep: string,
  target: WorkflowDefinition,
  input: Record<string, unknown> = source.input,
): ForkPlan {
  // A source still running may yet undo what a fork would copy (a cancel runs its compensations)
  // or do again what the fork redoes: only a settled execution is forked.
  if (source.status === 'running' || source.status === 'canceling') {
    throw new DomainError(
      'illegal_state',
      `workflow execution is ${source.status}: only an ended execution (completed, failed or canceled) can be forked; cancel it first or wait for its end`,
      { status: source.status },
    );
  }
  const inSource = source.definition.steps.some((d) => d.id === fromStep);
  const inTarget = target.steps.some((d) => d.id === fromStep);
  if (!inSource && !inTarget) {
    throw new DomainError('validation', `step "${fromStep}" is not part of workflow "${source.definition.id}"`, {
      stepId: fromStep,
    });
  }
  // A compensation never runs as a step of its own: a fork from it would run nothing from there.
  if (compensationStepIds(source.definition).has(fromStep) || compensationStepIds(target).has(fromStep)) {
    throw new DomainError(
      'validation',
      `step "${fromStep}" is a compensation: it runs only to undo another step; fork from a step that runs in the normal flow`,
      { stepId: fromStep },
    );
  }
  // A step whose effect the source undid (its compensation, or an item's, started: a cancel, or
  // its failure) has no output to take over: it names records that may be gone. It runs again.
  const undone = [...new Set(Object.values(source.compensations).map((c) => c.forStepId))];
  const rerun = new Set([
    fromStep,
    ...undone,
    ...downstreamOf(source.definition, [fromStep, ...undone]),
    ...downstreamOf(target, [fromStep, ...undone]),
  ]);
  const comp = compensationStepIds(source.definition);
  // The revision that recorded each step's final output (the last one wins).
  const recordedAt = new Map<string, number>();
  for (const { revision, event } of events) {
    if ((event.type === 'StepSucceeded' && event.data.itemIndex === undefined) || event.type === 'StepOutputCopied')
      recordedAt.set(event.data.stepId, revision);
  }
  if (canonicalJson(input) !== canonicalJson(source.input)) {
    // Until nothing changes: a step that runs again takes what depends on it along.
    for (let changed = true; changed;) {
      changed = false;
      for (const d of source.definition.steps) {
        const st = source.steps[d.id];
        if (!st || st.status !== 'succeeded' || rerun.has(d.id) || comp.has(d.id)) continue;
        if (wouldRunTheSame(source, d, st, input)) continue;
        for (const id of [d.id, ...downstreamOf(source.definition, [d.id]), ...downstreamOf(target, [d.id])])
          rerun.add(id);
        changed = true;
      }
    }
  }
  const copies: CopiedStep[] = [];
  for (const d of source.definition.steps) {
    const st = source.steps[d.id];
    if (!st || st.status !== 'succeeded' || rerun.has(d.id) || comp.has(d.id)) continue;
    copies.push({ stepId: d.id, output: st.output ?? null, revision: recordedAt.get(d.id) ?? -1 });
  }
  return { copies, rerun: target.steps.filter((d) => rerun.has(d.id)).map((d) => d.id) };
}

/**
 * Whether step `d` of the source would have run just as it did had the execution's input been
 * `input`: its `if` holds, and its for_each items and each unit's resolved input are the ones it
 * ran with (a wait step has no input: its condition alone). A step with no recorded run (copied
 * by an earlier fork) or an expression that fails counts as different: it runs again.
 */
function wouldRunTheSame(
  source: StartedExecution,
  d: StepDefinition,
  st: StepState,
  input: Record<string, unknown>,
): boolean {
  const as = { ...source, input };
  try {
    return withExpressionBudget(() => {
      const ctx = expressionContext(as);
      if (d.if !== undefined && !evaluateCondition(d.if, ctx)) return false;
      if (d.uses === undefined) return true;
      if (d.for_each) {
        const items = evaluateItems(d.for_each.items, ctx);
        if (!Array.isArray(items) || canonicalJson(items) !== canonicalJson(st.items ?? null)) return false;
        return items.every((item, index) => {
          const unit = st.units[index];
          const resolved = resolveMapping(d.with, expressionContext(as, { item, index }));
          return unit !== undefined && canonicalJson(resolved) === canonicalJson(unit.input);
        });
      }
      const unit = st.units[0];
      return unit !== undefined && canonicalJson(resolveMapping(d.with, ctx)) === canonicalJson(unit.input);
    });
  } catch {
    return false;
  }
}

// ---- replay check -------------------------------------------------------------------

export type ReplayDifferenceKind =
  | 'step_added'
  | 'step_removed'
  | 'needs_changed'
  | 'uses_changed'
  | 'condition_changed'
  | 'now_runs'
  | 'now_skipped'
  | 'input_changed'
  | 'undetermined';

export interface ReplayDifference {
  readonly step_id: string;
  readonly kind: ReplayDifferenceKind;
  /** What happened in the recorded execution, and what the checked version decides instead. */
  readonly recorded: unknown;
  readonly replayed: unknown;
}

export interface ReplayReport {
  readonly execution_id: string;
  readonly recorded_version: number;
  readonly recorded_status: string;
  /** How the checked version would end on the recorded outcomes; `undetermined` when a step it runs has no recorded outcome. */
  readonly replayed_status: string;
  readonly same: boolean;
  readonly differences: readonly ReplayDifference[];
  /** The checked version refuses the recorded input (it would not start). */
  readonly input_problem?: string;
}

const MAX_REPLAY_ROUNDS = 10_000;

/** A unit's key in cancelOrder's sets: its step and item. */
const unitKeyOf = (stepId: string, itemIndex: number | undefined): string => `${stepId}[${itemIndex ?? ''}]`;

/** The units (`step[item]`) whose outcome, and those whose dispatch, the recording had before its first cancel request. */
function cancelOrder(events: readonly WorkflowEvent[]): { answeredBefore: Set<string>; sentBefore: Set<string> } {
  const answeredBefore = new Set<string>();
  const sentBefore = new Set<string>();
  for (const e of events) {
    if (e.type === 'ExecutionCancelRequested') break;
    const d = e.data as { stepId?: string; itemIndex?: number };
    if (d.stepId === undefined) continue;
    const key = unitKeyOf(d.stepId, d.itemIndex);
    if (e.type === 'StepSucceeded' || e.type === 'StepFailed') answeredBefore.add(key);
    else if (e.type === 'StepDispatched' || e.type === 'StepRedispatched') sentBefore.add(key);
  }
  return { answeredBefore, sentBefore };
}

/**
 * Replay a finished execution's recorded step outcomes through `target`'s decider: start it on the
 * recorded input, answer every unit it schedules with what that step (or item) answered in the
 * recording (a failure as final), and compare what it decides with what was recorded: steps added
 * or removed, dependency, tool and condition changes, steps that would now run or be skipped, and
 * step inputs that now resolve differently. A step the recording never ran, or whose input now
 * differs from the recorded one, cannot be answered with the recording: what follows from it is
 * `undetermined` (the check calls no tool).
 */
export function checkReplay(
  source: StartedExecution,
  target: WorkflowDefinition,
  events?: readonly WorkflowEvent[],
): ReplayReport {
  const base = {
    execution_id: source.executionId,
    recorded_version: source.definition.version,
    recorded_status: source.status,
  };
  const meta: CommandMetadata = {
    timestamp: source.startedAt,
    actor: 'system:replay-check',
    correlationId: source.correlationId,
  };
  const cmd = (c: Omit<WorkflowCommand, 'metadata'>): WorkflowCommand => ({ ...c, metadata: meta }) as WorkflowCommand;
  let state: WorkflowExecutionState = initialWorkflowState;
  const apply = (c: WorkflowCommand) => {
    for (const e of decideWorkflow(c, state)) state = evolveWorkflow(state, e);
  };
  try {
    apply(
      cmd({
        type: 'StartWorkflow',
        data: {
          executionId: source.executionId,
          definition: target,
          input: source.input,
          seed: source.seed,
          // Under the cap the recording ran under, when it says (a different one decides a different order).
          ...(source.maxUnitsInFlight !== undefined ? { maxUnitsInFlight: source.maxUnitsInFlight } : {}),
        },
      }),
    );
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const details = e instanceof DomainError ? JSON.stringify(e.details['problems'] ?? '') : '';
    return {
      ...base,
      replayed_status: 'not_started',
      same: false,
      differences: [],
      input_problem: `${message} ${details}`.trim(),
    };
  }
  const unanswerable = new Set<string>();
  const inputChanged = new Set<string>();
  const recordedCancel = source.status === 'canceled' || source.status === 'canceling';
  // Where the recording's cancel came among its units' outcomes (when its events are given): a
  // unit answered before it is answered before the replayed cancel, one sent before it is sent
  // (so the cancel lets it finish, as it did), and the rest only after the replayed cancel; else
  // answers the recording got after its cancel would let the replay schedule items it never did.
  const order = recordedCancel && events ? cancelOrder(events) : undefined;
  const feedRecorded = () => {
    for (
      let round = 0;
      round < MAX_REPLAY_ROUNDS && (state.status === 'running' || state.status === 'canceling');
      round++
    ) {
      const s: StartedExecution = state;
      let fed = false;
      for (const st of Object.values(s.steps)) {
        for (const u of st.units) {
          if (!u || (u.phase !== 'scheduled' && u.phase !== 'dispatched') || unanswerable.has(st.id)) continue;
          const rec = source.steps[st.id];
          const ref = u.itemIndex === undefined ? { stepId: st.id } : { stepId: st.id, itemIndex: u.itemIndex };
          const recUnit = rec?.units[u.itemIndex ?? 0];
          if (order && state.status === 'running' && !order.answeredBefore.has(unitKeyOf(st.id, u.itemIndex))) {
            if (u.phase === 'scheduled' && order.sentBefore.has(unitKeyOf(st.id, u.itemIndex))) {
              apply(cmd({ type: 'RecordStepDispatched', data: { ...ref, attempt: u.attempt } }));
              fed = true;
            }
            continue;
          }
          // A unit whose input now resolves differently would not get the recorded answer: what follows is not known.
          if (recUnit && canonicalJson(recUnit.input ?? null) !== canonicalJson(u.input ?? null)) {
            inputChanged.add(st.id);
            unanswerable.add(st.id);
            continue;
          }
          // A for_each step a fork copied has its items' outputs and no units of its own.
          const copiedItem =
            rec?.status === 'succeeded' &&
            rec.copiedFrom !== undefined &&
            u.itemIndex !== undefined &&
            Array.isArray(rec.output) &&
            u.itemIndex < rec.output.length;
          const recordedSuccess =
            recUnit?.phase === 'succeeded' || copiedItem || (rec?.status === 'succeeded' && u.itemIndex === undefined);
          // Stopped by the recording's cancel: answered by the replayed cancel (below), not as a
          // failure. An item that succeeded before the cancel stopped its step is answered with its
          // success: the step's `canceled` error is not the item's.
          const stoppedByCancel =
            !recordedSuccess &&
            (source.status === 'canceled' || source.status === 'canceling') &&
            ((recUnit?.phase as string | undefined) === 'canceled' ||
              (recUnit?.error ?? rec?.error)?.code === 'canceled');
          if (stoppedByCancel && state.status === 'running') continue;
          if (recordedSuccess) {
            const output =
              recUnit?.phase === 'succeeded'
                ? recUnit.output
                : copiedItem
                  ? (rec.output as unknown[])[u.itemIndex]
                  : rec!.output;
            apply(cmd({ type: 'RecordStepSucceeded', data: { ...ref, attempt: u.attempt, output: output ?? null } }));
          } else if (recUnit?.phase === 'failed' || rec?.status === 'failed') {
            const error: StepError = {
              ...(recUnit?.error ?? rec?.error ?? { code: 'failed', message: 'failed' }),
              retryable: false,
            };
            apply(cmd({ type: 'RecordStepFailed', data: { ...ref, attempt: u.attempt, error } }));
          } else {
            unanswerable.add(st.id);
            continue;
          }
          fed = true;
        }
      }
      // A wait step gets what the recording's got: its signal (the payload it consumed), or its
      // timeout; a wait for another signal than the recorded one has no recorded answer.
      for (const st of Object.values(s.steps)) {
        if (st.status !== 'running' || !st.wait || st.wait.ended) continue;
        const rec = source.steps[st.id];
        // A wait a fork copied has its output and no wait of its own: it ends with that output
        // (a signal carrying it; a null output is a wait that timed out and went on).
        const recordedSignal = source.definition.steps.find((d) => d.id === st.id)?.wait?.signal;
        const copied = rec?.copiedFrom !== undefined && rec.status === 'succeeded' && recordedSignal === st.wait.signal;
        const signaled = isPlainObject(rec?.output);
        const ending = copied
          ? signaled
            ? 'signaled'
            : 'timed_out'
          : rec?.wait?.signal !== st.wait.signal
            ? undefined
            : rec.wait.ended === 'signaled' && signaled
              ? 'signaled'
              : rec.wait.ended === 'timed_out'
                ? 'timed_out'
                : undefined;
        if (ending === undefined) continue;
        if (ending === 'signaled')
          apply(
            cmd({
              type: 'SendSignal',
              data: {
                signalId: `replay:${st.id}`,
                name: st.wait.signal,
                payload: rec!.output as Record<string, unknown>,
              },
            }),
          );
        else
          apply({
            type: 'RecordWaitTimedOut',
            data: { stepId: st.id },
            metadata: { ...meta, timestamp: st.wait.timeoutAt },
          });
        if (!copied) {
          fed = true;
          continue;
        }
        // A copied answer counts as fed only if the wait took it (a payload its signal refuses
        // would be offered every round).
        const now = (state as StartedExecution).steps[st.id];
        if (now?.status !== 'running' || now.wait?.ended) fed = true;
        else unanswerable.add(st.id);
      }
      for (const c of Object.values(s.compensations)) {
        if (c.status !== 'running') continue;
        const rec = source.compensations[compensationKey(c)];
        const item = c.itemIndex === undefined ? {} : { itemIndex: c.itemIndex };
        if (rec?.status === 'failed')
          apply(
            cmd({
              type: 'RecordCompensationFailed',
              data: {
                stepId: c.stepId,
                ...item,
                error: rec.error ?? { code: 'failed', message: 'failed', retryable: false },
              },
            }),
          );
        else
          apply(
            cmd({
              type: 'RecordCompensationSucceeded',
              data: { stepId: c.stepId, ...item, output: rec?.output ?? null },
            }),
          );
        fed = true;
      }
      if (!fed) break;
    }
  };
  feedRecorded();
  // A recording that was canceled was canceled from outside, where its answers end: the replay,
  // fed as far as they go, is canceled there too (and runs the compensations the recording ran),
  // or every canceled execution would count as deciding differently.
  if ((source.status === 'canceled' || source.status === 'canceling') && state.status === 'running') {
    apply(cmd({ type: 'RequestCancel', data: { reason: 'replayed cancel' } }));
    feedRecorded();
  }
  const replayed = state as StartedExecution;
  const differences: ReplayDifference[] = [];
  const srcDefs = new Map(source.definition.steps.map((d) => [d.id, d]));
  const tgtDefs = new Map(target.steps.map((d) => [d.id, d]));
  const undetermined = new Set([
    ...[...unanswerable].filter((id) => !inputChanged.has(id)),
    ...downstreamOf(target, unanswerable),
  ]);
  const outcome = (st: { status: string; skipReason?: string } | undefined) =>
    !st ? 'absent' : st.status === 'skipped' ? `skipped (${st.skipReason ?? 'skipped'})` : st.status;
  const ran = (st: { status: string } | undefined) =>
    st !== undefined && (st.status === 'succeeded' || st.status === 'failed' || st.status === 'running');
  for (const [id, t] of tgtDefs) {
    const s = srcDefs.get(id);
    const rStep = replayed.steps[id];
    if (!s) {
      differences.push({
        step_id: id,
        kind: 'step_added',
        recorded: 'absent',
        replayed: undetermined.has(id) ? 'undetermined' : outcome(rStep),
      });
      continue;
    }
    if (canonicalJson([...s.needs].sort()) !== canonicalJson([...t.needs].sort()))
      differences.push({ step_id: id, kind: 'needs_changed', recorded: s.needs, replayed: t.needs });
    if (s.uses !== t.uses) differences.push({ step_id: id, kind: 'uses_changed', recorded: s.uses, replayed: t.uses });
    if ((s.if ?? null) !== (t.if ?? null))
      differences.push({ step_id: id, kind: 'condition_changed', recorded: s.if ?? null, replayed: t.if ?? null });
    const sStep = source.steps[id];
    if (undetermined.has(id)) {
      differences.push({
        step_id: id,
        kind: 'undetermined',
        recorded: outcome(sStep),
        replayed: 'follows a step the recording cannot answer (it never ran, or its input changed)',
      });
      continue;
    }
    if (!ran(sStep) && ran(rStep))
      differences.push({ step_id: id, kind: 'now_runs', recorded: outcome(sStep), replayed: outcome(rStep) });
    else if (ran(sStep) && !ran(rStep))
      differences.push({ step_id: id, kind: 'now_skipped', recorded: outcome(sStep), replayed: outcome(rStep) });
    // A step a fork copied has no recorded input to compare.
    else if (ran(sStep) && ran(rStep) && !sStep!.copiedFrom) {
      const sIn = sStep!.units.map((u) => u?.input ?? null);
      const rIn = rStep!.units.map((u) => u?.input ?? null);
      if (canonicalJson(sIn) !== canonicalJson(rIn))
        differences.push({ step_id: id, kind: 'input_changed', recorded: sIn, replayed: rIn });
    }
  }
  for (const [id] of srcDefs) {
    if (!tgtDefs.has(id))
      differences.push({ step_id: id, kind: 'step_removed', recorded: outcome(source.steps[id]), replayed: 'absent' });
  }
  const replayedStatus =
    replayed.status === 'running' || replayed.status === 'canceling' ? 'undetermined' : replayed.status;
  return {
    ...base,
    replayed_status: replayedStatus,
    same: differences.length === 0 && replayedStatus === source.status,
    differences,
  };
}

/** A JSON object (not null, not an array): what a signal's payload is. */
function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
