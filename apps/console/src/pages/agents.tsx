import { useEffect, useState } from 'preact/hooks';
import { api, can, get, fmtMs, fmtPct, onEvent } from '../api';
import { useLive } from '../router';
import { initialValue, SchemaForm, type Schema } from '../schema-form';
import { ErrorNote, Json, StatusBadge } from '../ui';

const ENDED = new Set(['completed', 'failed', 'canceled', 'timed_out']);

export function AgentsPage() {
  const [caps, setCaps] = useState<any[]>([]);
  const [health, setHealth] = useState<any[]>([]);
  const [perf, setPerf] = useState<any[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [taskType, setTaskType] = useState('');
  const [context, setContext] = useState<Record<string, unknown>>({});
  const [priority, setPriority] = useState('normal');
  const [task, setTask] = useState<any>(null);
  useEffect(() => {
    get('/api/v1/integration/agents/capabilities').then((c) => setCaps(c.agents), setError);
  }, []);
  useLive(
    async () => {
      try {
        const [h, p] = await Promise.all([
          get('/api/v1/integration/agents/health'),
          get('/api/v1/integration/agents/performance'),
        ]);
        setHealth(h.agents);
        setPerf(p.agents);
      } catch (e) {
        setError(e);
      }
    },
    (e) => e.streamId.startsWith('task-'),
    [],
    1500,
  );
  const types = caps.flatMap((a) => a.task_types.map((t: any) => ({ ...t, agent: a.agent })));
  const chosen = types.find((t) => t.type === taskType);
  // The form starts again in the same update as the choice (an effect ran after the next paint, and
  // on a busy machine wiped what was typed by then).
  const choose = (type: string) => {
    setTaskType(type);
    setContext(initialValue(types.find((t) => t.type === type)?.input_schema as Schema));
  };
  // Follow the delegated task live: its stream's events trigger a re-read.
  useEffect(() => {
    if (!task?.task_id || ENDED.has(task.status)) return;
    const id = task.task_id as string;
    const load = () => get(`/api/v1/integration/agents/tasks/${encodeURIComponent(id)}`).then(setTask, setError);
    const off = onEvent((e) => e.streamId === `task-${id}` && void load());
    const t = setInterval(() => void load(), 3000); // fire and forget: load() reports its own errors (setError)
    void load();
    return () => {
      off();
      clearInterval(t);
    };
  }, [task?.task_id, task && ENDED.has(task.status)]);
  return (
    <section>
      <h1>Agents</h1>
      <ErrorNote error={error} />
      <div class="cards">
        {caps.map((a) => {
          const h = health.find((x) => x.agent === a.agent);
          const p = perf.find((x) => x.agent === a.agent);
          return (
            <article key={a.agent} class="card" data-agent={a.agent}>
              <h2>
                {a.agent} <StatusBadge status={h?.status ?? (a.available ? 'up' : 'down')} />
              </h2>
              <p>{a.description}</p>
              <p class="muted">
                load {h?.in_flight ?? 0} / {a.max_concurrency}, queued {h?.queued ?? 0}, {h?.instances?.length ?? 0}{' '}
                instance(s)
              </p>
              <p class="muted">
                done {p?.tasks_done ?? 0}, success{' '}
                {p?.success_rate === undefined || p?.success_rate === null ? '–' : fmtPct(p.success_rate * 100, 0)}, p50{' '}
                {fmtMs(p?.latency_p50_ms)}, p95 {fmtMs(p?.latency_p95_ms)}
              </p>
              <ul>
                {a.task_types.map((t: any) => (
                  <li>
                    <code>{t.type}</code> {t.description}
                  </li>
                ))}
              </ul>
            </article>
          );
        })}
      </div>
      <h2>Delegate a task</h2>
      <form
        data-testid="delegate-form"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          try {
            setTask(
              await api('POST', '/api/v1/integration/agents/delegate', { task_type: taskType, context, priority }),
            );
          } catch (err) {
            setError(err);
          }
        }}
      >
        <div class="field">
          <label for="task-type">task type</label>
          <select
            id="task-type"
            value={taskType}
            onChange={(e) => choose((e.target as HTMLSelectElement).value)}
            required
          >
            <option value="">(choose)</option>
            {types.map((t) => (
              <option value={t.type}>
                {t.type} ({t.agent})
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="priority">priority</label>
          <select id="priority" value={priority} onChange={(e) => setPriority((e.target as HTMLSelectElement).value)}>
            {['critical', 'high', 'normal', 'low'].map((p) => (
              <option value={p}>{p}</option>
            ))}
          </select>
        </div>
        {chosen ? (
          <fieldset>
            <legend>context</legend>
            <SchemaForm schema={chosen.input_schema as Schema} value={context} onChange={setContext} />
          </fieldset>
        ) : null}
        {can('operator') ? (
          <button type="submit" disabled={!taskType}>
            Delegate
          </button>
        ) : (
          <p class="muted">Delegating needs an operator key.</p>
        )}
      </form>
      {task ? (
        <div data-testid="task">
          <h3>
            Task {task.task_id} <StatusBadge status={task.status} />
          </h3>
          <p>agent: {task.agent ?? task.assigned_agent ?? '–'}</p>
          {task.result !== undefined ? <Json value={task.result} label="task result" /> : null}
          {task.error ? <Json value={task.error} label="task error" /> : null}
        </div>
      ) : null}
    </section>
  );
}
