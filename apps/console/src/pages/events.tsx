import { useEffect, useState } from 'preact/hooks';
import { can, get, fmtTime, onEvent, type EventJson } from '../api';
import { ErrorNote, Json } from '../ui';

const MAX_LIVE = 200;

/** One entry of `GET /api/v1/audit` (who did what, by event). */
interface AuditEntry {
  readonly position: number;
  readonly recordedAt: string;
  readonly actor: string;
  readonly type: string;
  readonly streamId: string;
  readonly revision: number;
  readonly eventId: string;
  readonly correlationId: string | null;
  readonly onBehalfOf: string | null;
}

/** An audit entry as a row of the events table (its actor where an event's metadata has it). */
const auditRow = (a: AuditEntry): EventJson => ({
  id: a.eventId,
  streamId: a.streamId,
  type: a.type,
  revision: a.revision,
  position: a.position,
  recordedAt: a.recordedAt,
  data: { correlationId: a.correlationId, onBehalfOf: a.onBehalfOf },
  metadata: { actor: a.actor, correlationId: a.correlationId, onBehalfOf: a.onBehalfOf },
});

function EventRows({ events }: { events: EventJson[] }) {
  const [open, setOpen] = useState<string | null>(null);
  if (!events.length) return <p class="muted">no events</p>;
  return (
    <table class="events">
      <thead>
        <tr>
          <th scope="col">position</th>
          <th scope="col">time</th>
          <th scope="col">type</th>
          <th scope="col">stream</th>
          <th scope="col">actor</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e) => (
          <>
            <tr data-type={e.type}>
              <td>
                <button
                  type="button"
                  class="link"
                  aria-expanded={open === e.id}
                  onClick={() => setOpen(open === e.id ? null : e.id)}
                >
                  {e.position}
                </button>
              </td>
              <td>{fmtTime(e.recordedAt)}</td>
              <td>{e.type}</td>
              <td>
                <code>{e.streamId}</code>
              </td>
              <td>{String(e.metadata?.actor ?? '')}</td>
            </tr>
            {open === e.id ? (
              <tr>
                <td colSpan={5}>
                  <Json value={e} label={`event ${e.position}`} />
                </td>
              </tr>
            ) : null}
          </>
        ))}
      </tbody>
    </table>
  );
}

export function EventsPage() {
  const [type, setType] = useState('');
  const [stream, setStream] = useState('');
  const [actor, setActor] = useState('');
  const [live, setLive] = useState<EventJson[]>([]);
  const [log, setLog] = useState<EventJson[]>([]);
  const [source, setSource] = useState<'events' | 'audit'>('events');
  const [error, setError] = useState<unknown>(null);
  const matches = (e: EventJson) =>
    (!type || e.type.toLowerCase().includes(type.toLowerCase())) &&
    (!stream || e.streamId.startsWith(stream)) &&
    (!actor || String(e.metadata?.actor ?? '').includes(actor));
  useEffect(() => onEvent((e) => setLive((l) => [e, ...l].slice(0, MAX_LIVE))), []);
  useEffect(() => {
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- the callback catches its own errors
    const t = setTimeout(async () => {
      try {
        if (source === 'audit') {
          const q = new URLSearchParams({ limit: '100' });
          if (actor) q.set('actor', actor);
          if (type) q.set('type', type);
          setLog((await get<{ entries: AuditEntry[] }>(`/api/v1/audit?${q}`)).entries.map(auditRow).filter(matches));
        } else {
          const q = new URLSearchParams({ limit: '100', direction: 'backwards' });
          if (type) q.set('type', type);
          if (stream) q.set('stream_prefix', stream);
          setLog((await get(`/api/v1/events?${q}`)).events.filter(matches));
        }
        setError(null);
      } catch (e) {
        // No rows of the other log, or of an earlier filter, under this one's heading.
        setLog([]);
        setError(e);
      }
    }, 300);
    return () => clearTimeout(t);
  }, [type, stream, actor, source]);
  return (
    <section>
      <h1>Events</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="ev-type">type</label>
          <input
            id="ev-type"
            type="text"
            placeholder="WorkflowCompleted"
            value={type}
            onInput={(e) => setType((e.target as HTMLInputElement).value.trim())}
          />
        </div>
        <div class="field">
          <label for="ev-stream">stream prefix</label>
          <input
            id="ev-stream"
            type="text"
            placeholder="workflow_execution-"
            value={stream}
            onInput={(e) => setStream((e.target as HTMLInputElement).value.trim())}
          />
        </div>
        <div class="field">
          <label for="ev-actor">actor</label>
          <input
            id="ev-actor"
            type="text"
            placeholder="apikey:…"
            value={actor}
            onInput={(e) => setActor((e.target as HTMLInputElement).value.trim())}
          />
        </div>
        <div class="field">
          <label for="ev-source">log</label>
          <select
            id="ev-source"
            value={source}
            onChange={(e) => setSource((e.target as HTMLSelectElement).value as 'events' | 'audit')}
          >
            <option value="events">event log</option>
            {can('admin') ? <option value="audit">audit (with an actor)</option> : null}
          </select>
        </div>
      </form>
      <p class="muted">Type filters match exact names on the server (the log) and substrings live.</p>
      <ErrorNote error={error} />
      <div class="split">
        <div>
          <h2>Live</h2>
          <EventRows events={live.filter(matches)} />
        </div>
        <div>
          <h2>{source === 'audit' ? 'Audit log' : 'Event log'} (newest first)</h2>
          <EventRows events={log} />
        </div>
      </div>
    </section>
  );
}
