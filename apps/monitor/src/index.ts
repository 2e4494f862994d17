/** @switchyard/monitor: system sampling, health probes, alerting and availability. */
export * from './domain/rules.js';
export * from './domain/alert-rules.js';
export * from './domain/alerts.js';
export * from './domain/health.js';
export * from './domain/availability.js';
export * from './domain/trends.js';
export * from './sampler.js';
export * from './store.js';
export * from './probes.js';
export * from './prometheus.js';
export * from './monitor.js';
export * from './events.js';
export * from './projections.js';
export * from './rebuild.js';
export * from './config.js';
export * from './wiring/index.js';
export * from './call-metrics/index.js';
