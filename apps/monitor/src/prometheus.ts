import { Gauge, Histogram, Registry } from 'prom-client';
import type { AlertingState } from './domain/alerts.js';
import type { ServiceHealth } from './domain/health.js';
import type { Sample } from './sampler.js';

const sanitize = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, '_');

/**
 * Prometheus exposition via prom-client: the latest value of every sampled series as a gauge
 * `switchyard_<metric>`, probe durations as a histogram, and the alert and service state
 * (like Prometheus' own `ALERTS` series).
 */
export class PrometheusExporter {
  readonly registry = new Registry();
  private readonly gauges = new Map<string, { gauge: Gauge<string>; labelNames: string[] }>();
  private readonly probeDuration: Histogram<string>;
  private readonly alertsGauge: Gauge<string>;
  private readonly serviceGauge: Gauge<string>;
  /** The gauge series labelled with each service, so a retired service's series can be dropped. */
  private readonly seriesOfService = new Map<
    string,
    Map<string, { gauge: Gauge<string>; labels: Record<string, string> }>
  >();

  constructor(private readonly state: () => { alerting: AlertingState; health: ReadonlyMap<string, ServiceHealth> }) {
    this.probeDuration = new Histogram({
      name: 'switchyard_probe_duration_seconds',
      help: 'Health probe duration by service and outcome',
      labelNames: ['service', 'kind', 'ok'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.alertsGauge = new Gauge({
      name: 'switchyard_alerts',
      help: 'Active alerts (1 per pending/firing alert), like Prometheus ALERTS',
      labelNames: ['alertname', 'alertstate', 'severity', 'fingerprint', 'silenced'],
      registers: [this.registry],
    });
    this.serviceGauge = new Gauge({
      name: 'switchyard_service_status',
      help: '1 for the current status of each probed service',
      labelNames: ['service', 'status'],
      registers: [this.registry],
    });
  }

  observeSamples(samples: readonly Sample[]): void {
    for (const s of samples) {
      const name = `switchyard_${sanitize(s.metric)}`;
      const labelNames = Object.keys(s.labels).map(sanitize).sort();
      let g = this.gauges.get(name);
      if (!g) {
        g = {
          gauge: new Gauge({ name, help: `Latest ${s.metric}`, labelNames, registers: [this.registry] }),
          labelNames,
        };
        this.gauges.set(name, g);
      }
      // A series with other label names than the first one seen cannot join this gauge.
      if (g.labelNames.join() !== labelNames.join()) continue;
      const labels = Object.fromEntries(Object.entries(s.labels).map(([k, v]) => [sanitize(k), v]));
      g.gauge.set(labels, s.value);
      const service = s.labels['service'];
      if (service !== undefined) {
        let series = this.seriesOfService.get(service);
        if (!series) this.seriesOfService.set(service, (series = new Map()));
        series.set(`${name}${JSON.stringify(labels)}`, { gauge: g.gauge, labels });
      }
    }
  }

  /** A retired service's latest values are no longer current: drop its series. */
  forgetService(service: string): void {
    for (const { gauge, labels } of this.seriesOfService.get(service)?.values() ?? []) gauge.remove(labels);
    this.seriesOfService.delete(service);
  }

  observeProbe(service: string, kind: string, ok: boolean, responseMs: number): void {
    this.probeDuration.observe({ service, kind, ok: String(ok) }, responseMs / 1000);
  }

  async render(): Promise<string> {
    const { alerting, health } = this.state();
    this.alertsGauge.reset();
    for (const a of Object.values(alerting.alerts)) {
      if (a.status === 'resolved') continue;
      this.alertsGauge.set(
        {
          alertname: a.name,
          alertstate: a.status,
          severity: a.severity,
          fingerprint: a.fingerprint,
          silenced: String(a.suppressedBy !== null),
        },
        1,
      );
    }
    this.serviceGauge.reset();
    for (const [service, h] of health) {
      // Not probed, and no outage: a rule on `status="up"` must not read it as one.
      if (h.status === 'unconfigured') continue;
      for (const status of ['up', 'degraded', 'down'] as const)
        this.serviceGauge.set({ service, status }, h.status === status ? 1 : 0);
    }
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
