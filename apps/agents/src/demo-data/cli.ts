#!/usr/bin/env node
/**
 * Load the demo business data set into DATABASE_URL (schema `business`).
 *   node apps/agents/dist/demo-data/cli.js [--reset] [--seed N]
 */
import { z } from 'zod';
import { createLogger, createPgPool, parseConfig } from '@switchyard/platform';
import { loadDemoData } from './load.js';

const env = parseConfig(
  process.env,
  z.object({
    DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
    LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  }),
);
const logger = createLogger('demo-data', env.LOG_LEVEL);
const args = process.argv.slice(2);
const seedIdx = args.indexOf('--seed');
const seed = seedIdx >= 0 ? Number(args[seedIdx + 1]) : undefined;
if (seed !== undefined && !Number.isInteger(seed)) {
  logger.error({ seed: args[seedIdx + 1] }, '--seed must be an integer');
  process.exit(2);
}
const pool = createPgPool({ connectionString: env.DATABASE_URL, max: 2 }, { name: 'demo-data', logger });
try {
  const started = Date.now();
  const result = await loadDemoData(pool, { reset: args.includes('--reset'), ...(seed !== undefined ? { seed } : {}) });
  logger.info(
    { ...result, ms: Date.now() - started },
    result.loaded ? 'demo data loaded' : 'demo data already present',
  );
} catch (err) {
  logger.error({ err }, 'demo data load failed');
  process.exitCode = 1;
} finally {
  await pool.end();
}
