/** Request metrics of MCP tool calls and agent tasks: counters, histograms and stored series. */
export * from './observations.js';
export * from './prometheus.js';
export * from './rules.js';
export * from './consumer.js';
