import { useEffect, useState } from 'preact/hooks';
import { api, can, get, fmtMs, fmtTime } from '../api';
import { Chart, type Series } from '../chart';
import { useLive } from '../router';
import { ErrorNote, StatusBadge } from '../ui';

const METRICS: {
  title: string;
  metrics: string[];
  unit: string;
  scale?: number;
  only?: (labels: Record<string, string>) => boolean;
}[] = [
  {
    title: 'CPU',
    metrics: ['system_cpu_usage_percent'],
    unit: '%',
    only: (l) => l.cpu === 'total' || l.cpu === undefined,
  },
  { title: 'Memory', metrics: ['system_memory_used_percent'], unit: '%' },
  { title: 'Disk', metrics: ['system_disk_used_percent'], unit: '%' },
  {
    title: 'Network',
    metrics: ['system_network_rx_bytes_per_second', 'system_network_tx_bytes_per_second'],
    unit: ' kB/s',
    scale: 1 / 1024,
  },
  { title: 'Event loop lag', metrics: ['process_event_loop_lag_mean_ms'], unit: ' ms' },
];

function TrendCharts() {
  const [window, setWindow] = useState<'1h' | '24h' | '7d'>('1h');
  const [data, setData] = useState<Record<string, Series[]>>({});
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let stop = false;
    const load = async () => {
      try {
        const out: Record<string, Series[]> = {};
        await Promise.all(
          METRICS.map(async (m) => {
            const series: Series[] = [];
            for (const metric of m.metrics) {
              const r = await get(`/api/v1/system/performance-trends?metric=${metric}&window=${window}`);
              for (const s of r.series as any[]) {
                if (m.only && !m.only(s.labels)) continue;
                const labels = Object.entries(s.labels as Record<string, string>)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(',');
                series.push({
                  label: `${metric.replace(/^(system|process)_/, '').replace(/_bytes_per_second|_percent|_ms$/g, '')}${labels ? ` ${labels}` : ''}`,
                  points: s.buckets.map((b: any) => ({
                    t: b.start,
                    v: b.avg === null ? null : b.avg * (m.scale ?? 1),
                  })),
                });
              }
            }
            out[m.title] = series.slice(0, 8);
          }),
        );
        if (!stop) setData(out);
      } catch (e) {
        if (!stop) setError(e);
      }
    };
    void load();
    const t = setInterval(() => void load(), 30_000); // fire and forget: load() catches its own errors
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [window]);
  return (
    <>
      <div role="group" aria-label="window" class="buttons">
        {(['1h', '24h', '7d'] as const).map((w) => (
          <button
            type="button"
            aria-pressed={window === w}
            class={window === w ? 'active' : ''}
            onClick={() => setWindow(w)}
          >
            {w}
          </button>
        ))}
      </div>
      <ErrorNote error={error} />
      <div class="charts">
        {METRICS.map((m) => (
          <Chart title={`${m.title} (${window})`} series={data[m.title] ?? []} unit={m.unit} />
        ))}
      </div>
    </>
  );
}

const EMPTY_RULE = {
  id: '',
  name: '',
  metric: 'system_memory_used_percent',
  comparator: '>',
  threshold: 85,
  for_ms: 0,
  severity: 'warning',
};

export function SystemPage() {
  const [alerts, setAlerts] = useState<any[]>([]);
  const [avail, setAvail] = useState<any[]>([]);
  const [report, setReport] = useState<any>(null);
  const [rules, setRules] = useState<any[]>([]);
  const [rule, setRule] = useState<any>(EMPTY_RULE);
  const [error, setError] = useState<unknown>(null);
  const loadRules = () =>
    can('admin') ? get('/api/v1/system/alert-rules').then((r) => setRules(r.rules), setError) : Promise.resolve();
  useLive(
    async () => {
      try {
        const [a, h] = await Promise.all([get('/api/v1/system/alerts'), get('/api/v1/system/health-report')]);
        setAlerts(a.alerts);
        setReport(h);
      } catch (e) {
        setError(e);
      }
    },
    (e) => e.streamId.startsWith('alert') || e.streamId.startsWith('service-'),
    [],
    500,
    5000,
  );
  useEffect(() => {
    get('/api/v1/system/availability').then((r) => setAvail(r.services), setError);
    void loadRules();
  }, []);
  return (
    <section>
      <h1>System</h1>
      <ErrorNote error={error} />
      {report ? (
        <p data-testid="health-verdict">
          Health: <StatusBadge status={report.status} />{' '}
          {report.reasons?.map((r: any) => (typeof r === 'string' ? r : r.message)).join('; ')}
        </p>
      ) : null}
      <h2>Performance trends</h2>
      <TrendCharts />
      <h2>Alerts</h2>
      <table data-testid="alerts">
        <thead>
          <tr>
            <th scope="col">alert</th>
            <th scope="col">state</th>
            <th scope="col">severity</th>
            <th scope="col">value</th>
            <th scope="col">since</th>
            <th scope="col">resolved</th>
            <th scope="col">actions</th>
          </tr>
        </thead>
        <tbody>
          {alerts.length === 0 ? (
            <tr>
              <td colSpan={7} class="muted">
                no alerts
              </td>
            </tr>
          ) : (
            // Keyed: a row keeps its DOM (and its buttons) when alerts above it come and go, so a
            // click lands on the alert it was aimed at, not on whichever took that row's place.
            alerts.map((a) => (
              <tr key={a.id} data-alert={a.id} data-rule={a.ruleId} data-state={a.state}>
                <td>
                  <bdi>{a.name}</bdi>{' '}
                  <small class="muted">
                    {Object.entries(a.labels ?? {})
                      .map(([k, v]) => `${k}=${String(v)}`)
                      .join(' ')}
                  </small>
                </td>
                <td>
                  <StatusBadge status={a.state} />
                </td>
                <td>
                  <StatusBadge status={a.severity} />
                </td>
                <td>
                  {a.value === null ? '–' : Number(a.value).toFixed(2)}{' '}
                  {a.threshold !== null ? `(threshold ${a.threshold})` : ''}
                </td>
                <td>{fmtTime(a.firingSince ?? a.pendingSince)}</td>
                <td>{a.resolvedAt ? `${fmtTime(a.resolvedAt)} ${a.resolvedHow ?? ''} ${a.resolvedBy ?? ''}` : ''}</td>
                <td>
                  {can('operator') && a.state !== 'resolved' ? (
                    <>
                      <button
                        type="button"
                        onClick={async () => {
                          try {
                            await api('POST', `/api/v1/system/alerts/${encodeURIComponent(a.id)}/resolve`, {
                              reason: 'resolved from the console',
                            });
                            setAlerts((await get('/api/v1/system/alerts')).alerts);
                          } catch (e) {
                            setError(e);
                          }
                        }}
                      >
                        Resolve
                      </button>{' '}
                      <button
                        type="button"
                        onClick={async () => {
                          try {
                            await api('POST', '/api/v1/system/alerts/silences', {
                              matchers: [{ name: 'rule_id', value: a.ruleId }],
                              comment: 'silenced from the console',
                              duration_ms: 3_600_000,
                            });
                          } catch (e) {
                            setError(e);
                          }
                        }}
                      >
                        Silence 1 h
                      </button>
                    </>
                  ) : null}
                </td>
              </tr>
            ))
          )}
        </tbody>
      </table>
      <h2>Availability</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">service</th>
            <th scope="col">1 h</th>
            <th scope="col">24 h</th>
            <th scope="col">7 d</th>
            <th scope="col">30 d</th>
            <th scope="col">SLA</th>
            <th scope="col">MTTR (30 d)</th>
          </tr>
        </thead>
        <tbody>
          {avail.map((s) => (
            <tr>
              <td>{s.service}</td>
              {['1h', '24h', '7d', '30d'].map((w) => (
                <td>{s.windows[w]?.uptimePercent?.toFixed(2) ?? '–'} %</td>
              ))}
              <td>
                {s.windows['30d']?.slaTargetPercent} %{' '}
                <StatusBadge status={s.windows['30d']?.slaMet ? 'met' : 'missed'} />
              </td>
              <td>{fmtMs(s.windows['30d']?.mttrMs)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {can('admin') ? (
        <>
          <h2>Alert rules</h2>
          <table data-testid="rules">
            <thead>
              <tr>
                <th scope="col">id</th>
                <th scope="col">name</th>
                <th scope="col">condition</th>
                <th scope="col">for</th>
                <th scope="col">severity</th>
                <th scope="col">source</th>
                <th scope="col">actions</th>
              </tr>
            </thead>
            <tbody>
              {rules.map((r) => (
                <tr key={r.id} data-rule={r.id}>
                  <td>{r.id}</td>
                  <td>{r.name}</td>
                  <td>
                    <code>
                      {r.metric} {r.comparator} {r.threshold}
                    </code>
                  </td>
                  <td>{fmtMs(r.for_ms)}</td>
                  <td>{r.severity}</td>
                  <td>{r.source}</td>
                  <td>
                    <button type="button" onClick={() => setRule({ ...r })}>
                      Edit
                    </button>{' '}
                    <button
                      type="button"
                      onClick={async () => {
                        try {
                          await api('DELETE', `/api/v1/system/alert-rules?id=${encodeURIComponent(r.id)}`);
                          await loadRules();
                        } catch (e) {
                          setError(e);
                        }
                      }}
                    >
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <form
            data-testid="rule-form"
            class="inline-form"
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                const { source: _s, ...body } = rule;
                await api('PUT', '/api/v1/system/alert-rules', {
                  ...body,
                  threshold: Number(body.threshold),
                  for_ms: Number(body.for_ms),
                  match: body.match ?? {},
                  labels: body.labels ?? {},
                });
                setRule(EMPTY_RULE);
                await loadRules();
              } catch (err) {
                setError(err);
              }
            }}
          >
            <h3>Add or replace a rule</h3>
            {(
              [
                ['id', 'text'],
                ['name', 'text'],
                ['metric', 'text'],
                ['threshold', 'number'],
                ['for_ms', 'number'],
              ] as const
            ).map(([k, type]) => (
              <div class="field">
                <label for={`rule-${k}`}>{k}</label>
                <input
                  id={`rule-${k}`}
                  type={type as 'text'}
                  step="any"
                  required
                  value={rule[k]}
                  onInput={(e) => setRule({ ...rule, [k]: (e.target as HTMLInputElement).value })}
                />
              </div>
            ))}
            <div class="field">
              <label for="rule-comparator">comparator</label>
              <select
                id="rule-comparator"
                value={rule.comparator}
                onChange={(e) => setRule({ ...rule, comparator: (e.target as HTMLSelectElement).value })}
              >
                {['>', '>=', '<', '<=', '==', '!='].map((c) => (
                  <option value={c}>{c}</option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="rule-severity">severity</label>
              <select
                id="rule-severity"
                value={rule.severity}
                onChange={(e) => setRule({ ...rule, severity: (e.target as HTMLSelectElement).value })}
              >
                {['info', 'warning', 'critical'].map((c) => (
                  <option value={c}>{c}</option>
                ))}
              </select>
            </div>
            <button type="submit">Save rule</button>
          </form>
        </>
      ) : null}
    </section>
  );
}
