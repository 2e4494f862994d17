import type { EventJson } from './sse.js';

/** One step as `watch` draws it. */
export interface StepView {
  readonly id: string;
  state: 'pending' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'skipped' | 'canceled';
  /** Attempts beyond the first (policy and transient retries). */
  retries: number;
  startedAt?: number;
  endedAt?: number;
  error?: string;
  /** for_each items done / total. */
  items?: { done: number; total: number };
}

/** The state of one execution, folded from its events (the same events the engine wrote). */
export class ExecutionView {
  readonly steps = new Map<string, StepView>();
  status: 'unknown' | 'running' | 'completed' | 'failed' | 'canceled' = 'unknown';
  name = '';
  error?: string;
  startedAt?: number;
  endedAt?: number;
  lastPosition = -1;

  constructor(readonly executionId: string) {}

  get ended(): boolean {
    return this.status === 'completed' || this.status === 'failed' || this.status === 'canceled';
  }

  private step(id: string): StepView {
    let s = this.steps.get(id);
    if (!s) {
      s = { id, state: 'pending', retries: 0 };
      this.steps.set(id, s);
    }
    return s;
  }

  /** Apply one event; returns the ids of the steps it changed (for line-by-line output). */
  apply(e: EventJson): string[] {
    this.lastPosition = Math.max(this.lastPosition, e.position);
    const d = (e.data ?? {}) as Record<string, any>;
    const at = Date.parse(d.at ?? d.scheduledAt ?? d.dispatchedAt ?? e.recordedAt);
    const whole = d.itemIndex === undefined || d.itemIndex === null;
    switch (e.type) {
      case 'WorkflowStarted': {
        this.status = 'running';
        this.startedAt = Date.parse(d.startedAt ?? e.recordedAt);
        this.name = d.definition?.name ?? d.definition?.id ?? '';
        for (const s of (d.definition?.steps ?? []) as { id: string }[]) this.step(s.id);
        return [];
      }
      case 'StepExpanded': {
        const s = this.step(d.stepId);
        // Items a retry kept (they succeeded in the run before) count as done from the start.
        const kept = Array.isArray(d.keptItems) ? d.keptItems.length : 0;
        s.items = { done: kept, total: Array.isArray(d.items) ? d.items.length : 0 };
        s.state = 'running';
        s.startedAt ??= Date.parse(e.recordedAt);
        return [s.id];
      }
      case 'StepScheduled':
      case 'StepDispatched':
      case 'StepRedispatched': {
        const s = this.step(d.stepId);
        const wasPending = s.state === 'pending';
        if (s.state === 'pending' || s.state === 'retrying') s.state = 'running';
        s.startedAt ??= at;
        // A line for a step's first attempt, and for the first attempt of a run an ExecutionRetried started.
        return e.type === 'StepScheduled' && ((d.attempt ?? 1) === 1 || wasPending) && whole ? [s.id] : [];
      }
      case 'WaitStarted': {
        // A wait step runs while it waits for its signal (it ends as StepSucceeded / StepFailed).
        const s = this.step(d.stepId);
        s.state = 'running';
        s.startedAt ??= Date.parse(d.startedAt ?? e.recordedAt);
        return [s.id];
      }
      case 'StepRetryScheduled': {
        const s = this.step(d.stepId);
        s.retries += 1;
        s.state = 'retrying';
        return [s.id];
      }
      case 'StepSucceeded': {
        const s = this.step(d.stepId);
        if (!whole) {
          if (s.items) s.items.done += 1;
          return [];
        }
        s.state = 'succeeded';
        s.endedAt = at;
        return [s.id];
      }
      case 'StepFailed': {
        const s = this.step(d.stepId);
        if (!d.final || !whole) return [];
        s.state = 'failed';
        s.endedAt = at;
        s.error = d.error?.message ?? d.error?.code;
        return [s.id];
      }
      case 'StepSkipped': {
        const s = this.step(d.stepId);
        s.state = 'skipped';
        s.endedAt = at;
        s.error = d.reason;
        return [s.id];
      }
      case 'WorkflowCompleted':
      case 'WorkflowFailed':
      case 'WorkflowCanceled': {
        this.status =
          e.type === 'WorkflowCompleted' ? 'completed' : e.type === 'WorkflowFailed' ? 'failed' : 'canceled';
        this.endedAt = Date.parse(d.completedAt ?? d.failedAt ?? d.canceledAt ?? d.at ?? e.recordedAt);
        if (e.type !== 'WorkflowCompleted') this.error = d.error?.message ?? d.reason ?? d.error?.code;
        // Steps still open when the execution ends did not run to the end.
        for (const s of this.steps.values())
          if (
            s.state === 'running' ||
            s.state === 'retrying' ||
            (s.state === 'pending' && e.type !== 'WorkflowCompleted')
          )
            s.state = 'canceled';
        return [];
      }
      case 'StepOutputCopied': {
        // A fork took the output over from its source: done without running.
        const s = this.step(d.stepId);
        s.state = 'succeeded';
        s.startedAt ??= at;
        s.endedAt = at;
        return [s.id];
      }
      case 'ExecutionRetried': {
        // Running again: the named steps start over; the others keep what they had.
        this.status = 'running';
        this.error = undefined;
        this.endedAt = undefined;
        for (const id of (d.steps ?? []) as string[]) this.steps.set(id, { id, state: 'pending', retries: 0 });
        return [];
      }
      default:
        return [];
    }
  }
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const MARK: Record<StepView['state'], string> = {
  pending: '·',
  running: '',
  retrying: '',
  succeeded: '✔',
  failed: '✖',
  skipped: '-',
  canceled: '○',
};

export function duration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '';
  return ms < 1000
    ? `${Math.max(0, Math.round(ms))}ms`
    : ms < 60_000
      ? `${(ms / 1000).toFixed(1)}s`
      : `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

/** One line of a step: mark, id, state, duration, retries, items, error. */
export function stepLine(s: StepView, now: number, frame?: number, width = 24): string {
  const open = s.state === 'running' || s.state === 'retrying';
  // Without a frame (plain lines, not redrawn) a running step is a start marker with no clock.
  const mark = open ? (frame === undefined ? '▸' : SPINNER[frame % SPINNER.length]!) : MARK[s.state];
  const took =
    s.startedAt !== undefined && s.state !== 'pending' && s.state !== 'skipped' && !(open && frame === undefined)
      ? duration((s.endedAt ?? now) - s.startedAt)
      : '';
  const parts = [`${mark} ${s.id.padEnd(width)}`, s.state.padEnd(9), took.padStart(7)];
  if (s.items) parts.push(`${s.items.done}/${s.items.total} items`);
  if (s.retries) parts.push(`${s.retries} ${s.retries === 1 ? 'retry' : 'retries'}`);
  if (s.error) parts.push(`(${s.error})`);
  return parts.join('  ').trimEnd();
}

/** The whole block: a header and one line per step. */
export function renderView(v: ExecutionView, now: number, frame?: number): string[] {
  const width = Math.max(8, ...[...v.steps.keys()].map((k) => k.length));
  const total = v.startedAt !== undefined ? duration((v.endedAt ?? now) - v.startedAt) : '';
  const head = `${v.name || 'workflow'} ${v.executionId}  ${v.status}${total ? `  ${total}` : ''}${v.error ? `  (${v.error})` : ''}`;
  return [head, ...[...v.steps.values()].map((s) => `  ${stepLine(s, now, frame, width)}`)];
}
