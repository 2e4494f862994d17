import {
  MAX_ALERT_RULE_FOR_MS,
  alertRuleSchema,
  storedAlertRuleSchema,
  comparatorSchema,
  severitySchema,
  type AlertRule,
  type Comparator,
  type Labels,
  type Severity,
} from '@switchyard/contracts';

// The rule shapes are the monitor's wire contract (put_rules, the gateway's rule routes): @switchyard/contracts.
export {
  MAX_ALERT_RULE_FOR_MS,
  alertRuleSchema,
  storedAlertRuleSchema,
  comparatorSchema,
  severitySchema,
  type AlertRule,
  type Comparator,
  type Labels,
  type Severity,
};

/** Metric names the sampler and the probes emit; rules refer to these. */
export const metricNames = {
  cpuPercent: 'system_cpu_usage_percent',
  memoryPercent: 'system_memory_used_percent',
  memoryUsedBytes: 'system_memory_used_bytes',
  memoryTotalBytes: 'system_memory_total_bytes',
  diskPercent: 'system_disk_used_percent',
  diskUsedBytes: 'system_disk_used_bytes',
  diskSizeBytes: 'system_disk_size_bytes',
  netRxRate: 'system_network_rx_bytes_per_second',
  netTxRate: 'system_network_tx_bytes_per_second',
  processCpuPercent: 'process_cpu_percent',
  processRssBytes: 'process_rss_bytes',
  processHeapUsedBytes: 'process_heap_used_bytes',
  processHeapTotalBytes: 'process_heap_total_bytes',
  processEventLoopLagP99Ms: 'process_event_loop_lag_p99_ms',
  processEventLoopLagMeanMs: 'process_event_loop_lag_mean_ms',
  probeResponseMs: 'probe_response_ms',
  probeUp: 'probe_up',
  serviceUp: 'service_up',
} as const;

/**
 * The default rules, with the specification's thresholds: cpu > 80 %, memory > 85 %, disk > 90 %,
 * response time > 5 s, service unavailable > 30 s.
 * - `response_slow` fires as soon as a probe has waited more than 5 s (`for` 0: the threshold is
 *   already a duration); the Monitor evaluates a probe still waiting at that moment, so it fires
 *   when 5 s pass, whether the answer comes at 6 s or never. It resolves on an answer of 5 s or less.
 * - `service_unavailable` watches every probe's outcome (`probe_up`), so it is pending from the
 *   first failed probe and fires 30 s later if no probe succeeded meanwhile (the Monitor checks
 *   at that deadline, not at the next probe). One successful probe clears or resolves it.
 * - The `for` of the resource rules is ours: a short spike is normal on a shared machine (a build,
 *   a test run, a vacuum), a sustained one is worth a page.
 */
export const defaultAlertRules: readonly AlertRule[] = [
  {
    id: 'cpu_high',
    name: 'CPU usage high',
    metric: metricNames.cpuPercent,
    match: { cpu: 'total' },
    comparator: '>',
    threshold: 80,
    for_ms: 120_000,
    severity: 'warning',
    labels: {},
  },
  {
    id: 'memory_high',
    name: 'Memory usage high',
    metric: metricNames.memoryPercent,
    match: {},
    comparator: '>',
    threshold: 85,
    for_ms: 120_000,
    severity: 'warning',
    labels: {},
  },
  {
    id: 'disk_high',
    name: 'Disk usage high',
    metric: metricNames.diskPercent,
    match: {},
    comparator: '>',
    threshold: 90,
    for_ms: 300_000,
    severity: 'critical',
    labels: {},
  },
  {
    id: 'response_slow',
    name: 'Response time above 5 s',
    metric: metricNames.probeResponseMs,
    match: {},
    comparator: '>',
    threshold: 5_000,
    for_ms: 0,
    severity: 'warning',
    labels: {},
  },
  {
    id: 'service_unavailable',
    name: 'Service unavailable',
    metric: metricNames.probeUp,
    match: {},
    comparator: '<',
    threshold: 1,
    for_ms: 30_000,
    severity: 'critical',
    labels: {},
  },
];

export function compare(value: number, comparator: Comparator, threshold: number): boolean {
  switch (comparator) {
    case '>':
      return value > threshold;
    case '>=':
      return value >= threshold;
    case '<':
      return value < threshold;
    case '<=':
      return value <= threshold;
    case '==':
      return value === threshold;
    case '!=':
      return value !== threshold;
    default: {
      const never: never = comparator;
      throw new Error(`unknown comparator ${String(never)}`);
    }
  }
}

/** True when the series labels contain every pair of the rule's `match`. */
export function ruleMatches(rule: Pick<AlertRule, 'metric' | 'match'>, metric: string, labels: Labels): boolean {
  if (rule.metric !== metric) return false;
  return Object.entries(rule.match).every(([k, v]) => Object.hasOwn(labels, k) && labels[k] === v);
}

/** Labels sorted by name, so equal label sets serialise equally. */
export function sortLabels(labels: Labels): Labels {
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** `rule{a="1",b="2"}`: the canonical text an alert is deduplicated on. */
export function canonicalKey(ruleId: string, labels: Labels): string {
  const body = Object.entries(sortLabels(labels))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(',');
  return `${ruleId}{${body}}`;
}

/**
 * Alert fingerprint: FNV-1a 64 of the canonical key (rule id + sorted labels), 16 hex chars.
 * Written by hand (a dozen lines) so the domain stays free of node:crypto.
 */
export function fingerprint(ruleId: string, labels: Labels): string {
  const text = canonicalKey(ruleId, labels);
  let h = 0xcbf29ce484222325n;
  const prime = 0x100000001b3n;
  const mask = 0xffffffffffffffffn;
  for (let i = 0; i < text.length; i++) {
    h ^= BigInt(text.charCodeAt(i));
    h = (h * prime) & mask;
  }
  return h.toString(16).padStart(16, '0');
}

/** Alert labels = series labels + rule labels + `alertname`/`rule_id`/`severity` (rule wins). */
export function alertLabels(rule: AlertRule, seriesLabels: Labels): Labels {
  return sortLabels({
    ...seriesLabels,
    ...rule.labels,
    alertname: rule.name,
    rule_id: rule.id,
    severity: rule.severity,
  });
}
