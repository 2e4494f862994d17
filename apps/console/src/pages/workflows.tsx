import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { WorkflowExecutionState } from '@switchyard/domain';
import { allDefinitions, api, can, get, fmtMs, fmtTime, type EventJson } from '../api';
import { Dag } from '../dag';
import { navigate, useLive } from '../router';
import { ExecutionsList } from './executions';
import { initialValue, SchemaForm, type Schema } from '../schema-form';
import { ErrorNote, Json, StatusBadge } from '../ui';

export function WorkflowsPage() {
  const [defs, setDefs] = useState<any[]>([]);
  const [sel, setSel] = useState<string>('');
  const [input, setInput] = useState<Record<string, unknown>>({});
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    allDefinitions().then(setDefs, setError);
  }, []);
  const def = defs.find((d) => d.id === sel);
  // The form starts again in the same update as the pick (an effect ran after the next paint, and
  // on a busy machine wiped what was typed by then).
  const pick = (d: any) => {
    if (d.id === sel) return; // the same definition again keeps what was typed
    setSel(d.id);
    setInput(initialValue(d.input as Schema));
  };
  return (
    <section>
      <h1>Workflows</h1>
      <ErrorNote error={error} />
      <h2>Templates and definitions</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">id</th>
            <th scope="col">version</th>
            <th scope="col">name</th>
            <th scope="col">source</th>
            <th scope="col">steps</th>
          </tr>
        </thead>
        <tbody>
          {defs.map((d) => (
            <tr key={d.id} data-definition={d.id} class={sel === d.id ? 'selected' : ''}>
              <td>
                <button type="button" class="link" aria-pressed={sel === d.id} onClick={() => pick(d)}>
                  {d.id}
                </button>
              </td>
              <td>{d.version}</td>
              <td>{d.name}</td>
              <td>{d.source}</td>
              <td>{d.steps.length}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {def ? (
        <div class="split">
          <div>
            <h3>
              <bdi>{def.name}</bdi> (v{def.version})
            </h3>
            <p>{def.description}</p>
            <Dag steps={def.steps} label={`steps of ${def.id}`} />
          </div>
          <form
            data-testid="start-form"
            onSubmit={async (e) => {
              e.preventDefault();
              setError(null);
              try {
                const r = await api('POST', `/api/v1/workflows/start/${encodeURIComponent(def.id)}`, input);
                navigate(`/ui/workflows/executions/${encodeURIComponent(r.execution_id)}`);
              } catch (err) {
                setError(err);
              }
            }}
          >
            <h3>Start {def.id}</h3>
            <SchemaForm schema={def.input as Schema} value={input} onChange={setInput} />
            {can('operator') ? (
              <button type="submit">Start</button>
            ) : (
              <p class="muted">Starting needs an operator key.</p>
            )}
          </form>
        </div>
      ) : (
        <p class="muted">Pick a definition to see its DAG and start it.</p>
      )}
      <ExecutionsList defs={defs} />
    </section>
  );
}

type Domain = typeof import('@switchyard/domain');
// The decider (with its expression engine) is the bulk of the bundle: loaded with the first execution page only.
let domain: Promise<Domain> | undefined;
const loadDomain = (): Promise<Domain> => (domain ??= import('@switchyard/domain'));

/** Fold the first `n` events with the server's own decider (the same `evolve` the engine uses). */
function foldUntil(d: Domain | null, events: readonly EventJson[], n: number): WorkflowExecutionState {
  if (!d) return { status: 'not_started' };
  let s: WorkflowExecutionState = d.initialWorkflowState;
  for (const e of events.slice(0, n)) {
    try {
      s = d.evolveWorkflow(s, { type: e.type, data: e.data, metadata: e.metadata } as never);
    } catch {
      /* an event this bundle's decider does not know: keep the state */
    }
  }
  return s;
}

/** The events of an execution after those `held` has, every page of them. */
async function eventsAfter(id: string, held: { events: readonly EventJson[] }): Promise<EventJson[]> {
  const out: EventJson[] = [];
  let after = held.events.length ? held.events[held.events.length - 1]!.revision : undefined;
  for (;;) {
    const page = await get(
      `/api/v1/workflows/executions/${encodeURIComponent(id)}/events${after === undefined ? '' : `?after=${after}`}`,
    );
    out.push(...page.events);
    if (!page.next || page.events.length === 0) return out;
    after = page.events[page.events.length - 1].revision;
  }
}

export function ExecutionPage({ id }: { id: string }) {
  const [detail, setDetail] = useState<any>(null);
  const [events, setEvents] = useState<EventJson[]>([]);
  const [at, setAt] = useState<number | null>(null); // null: follow the latest event
  const [step, setStep] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [dom, setDom] = useState<Domain | null>(null);
  useEffect(() => {
    loadDomain().then(setDom, setError);
  }, []);
  // The events held so far: each load asks only for the ones after them (the gateway answers a
  // page of at most 1,000 at a time), so a long execution is read once, not on every change.
  // `generation` moves on each reset, so a load begun before one (A, then B, then A again) adds nothing.
  const held = useRef<{ id: string; events: EventJson[]; generation: number }>({ id, events: [], generation: 0 });
  const load = async () => {
    try {
      if (held.current.id !== id) held.current = { id, events: [], generation: held.current.generation + 1 };
      const generation = held.current.generation;
      const [d, more] = await Promise.all([
        get(`/api/v1/workflows/executions/${encodeURIComponent(id)}`),
        eventsAfter(id, held.current),
      ]);
      if (held.current.generation !== generation) return; // the page moved to another execution meanwhile
      // Another load may have added some meanwhile: keep each revision once, in order.
      const known = held.current;
      const lastKnown = known.events.length ? known.events[known.events.length - 1]!.revision : -1;
      const fresh = more.filter((e) => e.revision > lastKnown);
      if (fresh.length) held.current = { id, events: [...known.events, ...fresh], generation };
      setDetail(d);
      setEvents(held.current.events);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useLive(load, (e) => e.streamId === `workflow_execution-${id}`, [id], 300, 5000);
  const n = at ?? events.length;
  const state = useMemo(() => foldUntil(dom, events, n), [dom, events, n]);
  const started = state.status === 'not_started' ? null : state;
  const steps = (started?.definition.steps ?? detail?.steps?.map((s: any) => ({ id: s.step_id, needs: [] })) ?? []).map(
    (s: any) => ({
      id: s.id,
      needs: s.needs ?? [],
      uses: s.uses,
      status: started?.steps[s.id]?.status ?? 'pending',
    }),
  );
  const stepDetail = detail?.steps?.filter((s: any) => s.step_id === step) ?? [];
  const atEvent = n > 0 ? events[n - 1] : undefined;
  const ended = detail && ['completed', 'failed', 'canceled'].includes(detail.status);
  return (
    <section>
      <h1>
        Execution <code>{id.slice(0, 8)}</code>
      </h1>
      <ErrorNote error={error} />
      {!detail ? (
        <p aria-busy="true">Loading…</p>
      ) : (
        <>
          <p data-testid="exec-status">
            <bdi>{detail.definition_name ?? detail.definition_id}</bdi> v{detail.definition_version}:{' '}
            <StatusBadge status={detail.status} /> started {fmtTime(detail.started_at)}, took{' '}
            {fmtMs(detail.duration_ms)}
            {can('operator') && !ended ? (
              <button
                type="button"
                class="danger"
                onClick={async () => {
                  try {
                    await api('POST', `/api/v1/workflows/executions/${encodeURIComponent(id)}/cancel`, {
                      reason: 'canceled from the console',
                    });
                    await load();
                  } catch (e) {
                    setError(e);
                  }
                }}
              >
                Cancel execution
              </button>
            ) : null}
          </p>
          <div class="timetravel">
            <label for="tt">
              Time travel: state after event {n} of {events.length}
              {at === null ? ' (live)' : ''}
            </label>
            <input
              id="tt"
              type="range"
              min={1}
              max={Math.max(1, events.length)}
              value={n}
              onInput={(e) => {
                const v = Number((e.target as HTMLInputElement).value);
                setAt(v >= events.length ? null : v);
              }}
            />
            <span data-testid="tt-event">{atEvent ? `${atEvent.type} at ${fmtTime(atEvent.recordedAt)}` : ''}</span>
            {at !== null ? (
              <button type="button" class="link" onClick={() => setAt(null)}>
                back to live
              </button>
            ) : null}
          </div>
          <p class="muted" data-testid="tt-state">
            state at this event: <StatusBadge status={state.status} />
          </p>
          <Dag steps={steps} selected={step} onSelect={setStep} label={`steps of execution ${id}`} />
          {step ? (
            <div class="card" data-testid="step-detail">
              <h2>Step {step}</h2>
              {stepDetail.length === 0 ? (
                <p class="muted">not scheduled yet</p>
              ) : (
                stepDetail.map((s: any) => (
                  <div>
                    <p>
                      {s.uses} <StatusBadge status={s.status} /> attempts {s.attempts}, {fmtTime(s.started_at)} →{' '}
                      {fmtTime(s.ended_at)} (
                      {s.started_at && s.ended_at ? fmtMs(Date.parse(s.ended_at) - Date.parse(s.started_at)) : '–'})
                      {s.item_index !== undefined && s.item_index !== null ? `, item ${s.item_index}` : ''}
                    </p>
                    {(s.attempt_history ?? []).map((a: any) => (
                      <details>
                        <summary>
                          attempt {a.attempt}
                          {a.item_index !== null && a.item_index !== undefined ? ` (item ${a.item_index})` : ''}:{' '}
                          {a.status}
                        </summary>
                        <h3>input</h3>
                        <Json value={a.input} label="attempt input" />
                        {a.error ? (
                          <>
                            <h3>error</h3>
                            <Json value={a.error} label="attempt error" />
                          </>
                        ) : null}
                      </details>
                    ))}
                    {s.output !== null && s.output !== undefined ? (
                      <>
                        <h3>output</h3>
                        <Json value={s.output} label="step output" />
                      </>
                    ) : null}
                    {s.error ? (
                      <>
                        <h3>error</h3>
                        <Json value={s.error} label="step error" />
                      </>
                    ) : null}
                  </div>
                ))
              )}
            </div>
          ) : (
            <p class="muted">Click a step for its attempts, input, output and error.</p>
          )}
          {detail.output ? (
            <>
              <h2>Output</h2>
              <Json value={detail.output} label="execution output" />
            </>
          ) : null}
          {detail.error ? (
            <>
              <h2>Error</h2>
              <Json value={detail.error} label="execution error" />
            </>
          ) : null}
        </>
      )}
    </section>
  );
}
