/** Small shared pieces. */
import { ApiError, json } from './api';
import { showBidi } from './bidi';

const TONE: Record<string, string> = {
  healthy: 'ok',
  up: 'ok',
  met: 'ok',
  missed: 'bad',
  closed: 'ok',
  succeeded: 'ok',
  completed: 'ok',
  resolved: 'ok',
  ready: 'ok',
  true: 'ok',
  degraded: 'warn',
  half_open: 'warn',
  'half-open': 'warn',
  pending: 'warn',
  warning: 'warn',
  canceling: 'warn',
  queued: 'warn',
  retry_wait: 'warn',
  unhealthy: 'bad',
  down: 'bad',
  open: 'bad',
  failed: 'bad',
  firing: 'bad',
  critical: 'bad',
  timed_out: 'bad',
  false: 'bad',
  running: 'info',
  working: 'info',
  assigned: 'info',
  submitted: 'info',
  info: 'info',
  canceled: 'neutral',
  skipped: 'neutral',
  unconfigured: 'neutral',
  unknown: 'neutral',
};

/** A state word on a coloured pill: the word carries the meaning, the colour only helps. */
export function StatusBadge({ status }: { status: string | null | undefined }) {
  const s = String(status ?? 'unknown');
  return (
    <span class={`badge ${TONE[s] ?? 'neutral'}`} data-status={s}>
      {s}
    </span>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  if (error instanceof ApiError) {
    return (
      <div class="error" role="alert">
        <strong>
          {error.status} <bdi>{error.problem.title ?? ''}</bdi>
        </strong>{' '}
        <bdi>{error.problem.detail ?? ''}</bdi>
        {error.problem.errors?.length ? (
          <ul>
            {error.problem.errors.map((e) => (
              <li>
                <code>{e.path}</code>: <bdi>{e.message}</bdi>
              </li>
            ))}
          </ul>
        ) : null}
      </div>
    );
  }
  return (
    <div class="error" role="alert">
      <bdi>{String((error as Error)?.message ?? error)}</bdi>
    </div>
  );
}

export function Json({ value, label }: { value: unknown; label?: string }) {
  return (
    <pre class="json" tabIndex={0} aria-label={label ?? 'JSON'}>
      {showBidi(json(value))}
    </pre>
  );
}
