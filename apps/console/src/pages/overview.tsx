import { useState } from 'preact/hooks';
import { get, fmtMs, fmtTime, fmtPct } from '../api';
import { Link, useLive } from '../router';
import { ErrorNote, StatusBadge } from '../ui';

export function Overview() {
  const [status, setStatus] = useState<any>(null);
  const [running, setRunning] = useState<any[]>([]);
  const [recent, setRecent] = useState<any[]>([]);
  const [error, setError] = useState<unknown>(null);
  useLive(
    async () => {
      try {
        const [s, r, l] = await Promise.all([
          get('/api/v1/integration/status'),
          get('/api/v1/workflows/executions?status=running&limit=20'),
          get('/api/v1/workflows/executions?limit=10'),
        ]);
        setStatus(s);
        setRunning(r.items);
        setRecent(l.items);
        setError(null);
      } catch (e) {
        setError(e);
      }
    },
    () => true,
    [],
    1000,
  );
  return (
    <section>
      <h1>Overview</h1>
      <ErrorNote error={error} />
      {!status ? (
        <p aria-busy="true">Loading…</p>
      ) : (
        <>
          <div class="verdict" data-testid="verdict">
            Overall: <StatusBadge status={status.status} />
            {status.reasons.length ? (
              <ul class="reasons">
                {status.reasons.map((r: any) => (
                  <li>{typeof r === 'string' ? r : (r.message ?? JSON.stringify(r))}</li>
                ))}
              </ul>
            ) : (
              <span class="muted"> no reasons to worry</span>
            )}
          </div>
          <div class="grid">
            <div class="card">
              <h2>Infrastructure</h2>
              <table>
                <thead>
                  <tr>
                    <th scope="col">check</th>
                    <th scope="col">state</th>
                    <th scope="col">took</th>
                  </tr>
                </thead>
                <tbody>
                  {Object.entries(status.infrastructure?.checks ?? {}).map(([k, v]: [string, any]) => (
                    <tr>
                      <td>{k}</td>
                      <td>
                        <StatusBadge status={v.status} />
                      </td>
                      <td>{fmtMs(v.durationMs)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <div class="card">
              <h2>Workflows</h2>
              <p>
                Running: <strong data-testid="running-count">{status.workflows?.running ?? '–'}</strong>, canceling:{' '}
                {status.workflows?.canceling ?? '–'}
              </p>
              <p>
                Last hour: {status.workflows?.last_hour?.completed ?? 0} completed,{' '}
                {status.workflows?.last_hour?.failed ?? 0} failed, {status.workflows?.last_hour?.canceled ?? 0} canceled
              </p>
            </div>
            <div class="card">
              <h2>Alerts</h2>
              <p>
                Firing: <strong>{status.alerts?.firing ?? 0}</strong>, pending: {status.alerts?.pending ?? 0}
              </p>
              <ul>
                {(status.alerts?.items ?? []).map((a: any) => (
                  <li>
                    <StatusBadge status={a.severity ?? 'warning'} /> {a.name ?? a.rule_id ?? a.id}{' '}
                    {a.value !== undefined ? `(${Number(a.value).toFixed(1)})` : ''}
                  </li>
                ))}
              </ul>
            </div>
          </div>
          <h2>MCP servers</h2>
          <table data-testid="mcp-table">
            <thead>
              <tr>
                <th scope="col">server</th>
                <th scope="col">health</th>
                <th scope="col">breaker</th>
                <th scope="col">calls (1 h)</th>
                <th scope="col">failures</th>
                <th scope="col">p95</th>
                <th scope="col">last call</th>
              </tr>
            </thead>
            <tbody>
              {(status.mcp?.servers ?? []).map((s: any) => (
                <tr>
                  <td>{s.server}</td>
                  <td>
                    <StatusBadge status={s.health} />
                  </td>
                  <td>
                    <StatusBadge status={s.breaker} />
                  </td>
                  <td>{s.last_hour?.calls ?? 0}</td>
                  <td>{s.last_hour?.failures ?? 0}</td>
                  <td>{fmtMs(s.last_hour?.p95_ms)}</td>
                  <td>{fmtTime(s.last_call_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Agents</h2>
          <table>
            <thead>
              <tr>
                <th scope="col">agent</th>
                <th scope="col">instances</th>
                <th scope="col">in flight</th>
                <th scope="col">queued</th>
                <th scope="col">done (1 h)</th>
                <th scope="col">success</th>
                <th scope="col">p95</th>
              </tr>
            </thead>
            <tbody>
              {(status.agents?.items ?? []).map((a: any) => (
                <tr>
                  <td>{a.agent}</td>
                  <td>
                    {(a.instances ?? []).map((i: any) => (
                      <StatusBadge status={i.status} />
                    ))}
                  </td>
                  <td>{a.in_flight}</td>
                  <td>{a.queued}</td>
                  <td>{a.last_hour?.completed ?? 0}</td>
                  <td>
                    {a.last_hour?.success_rate === null || a.last_hour?.success_rate === undefined
                      ? '–'
                      : fmtPct(a.last_hour.success_rate * 100, 0)}
                  </td>
                  <td>{fmtMs(a.last_hour?.latency_p95_ms)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <div class="grid two">
            <div>
              <h2>Running executions</h2>
              <ExecTable items={running} />
            </div>
            <div>
              <h2>Recent executions</h2>
              <ExecTable items={recent} />
            </div>
          </div>
        </>
      )}
    </section>
  );
}

export function ExecTable({ items }: { items: any[] }) {
  if (!items.length) return <p class="muted">none</p>;
  return (
    <table class="execs">
      <thead>
        <tr>
          <th scope="col">execution</th>
          <th scope="col">workflow</th>
          <th scope="col">status</th>
          <th scope="col">started</th>
          <th scope="col">took</th>
        </tr>
      </thead>
      <tbody>
        {items.map((x) => (
          <tr key={x.execution_id} data-execution={x.execution_id}>
            <td>
              <Link href={`/ui/workflows/executions/${encodeURIComponent(x.execution_id)}`}>
                {x.execution_id.slice(0, 8)}
              </Link>
            </td>
            <td>{x.definition_id}</td>
            <td>
              <StatusBadge status={x.status} />
            </td>
            <td>{fmtTime(x.started_at)}</td>
            <td>{fmtMs(x.duration_ms)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
