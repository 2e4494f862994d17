#!/usr/bin/env node
/**
 * Container healthcheck of one launcher process: exits 0 when its health file
 * (SWITCHYARD_HEALTH_FILE) is fresh, every unit runs, and each of its listeners' health URLs
 * answers 2xx; else prints why and exits 1.
 *
 *   node apps/launcher/dist/healthcheck.js [--max-age-ms N]
 */
import { parseArgs } from 'node:util';
import { judgeHealth, readHealthFile } from './health-file.js';

const { values } = parseArgs({
  options: { 'max-age-ms': { type: 'string', default: '30000' }, 'timeout-ms': { type: 'string', default: '4000' } },
});
const fail = (reason: string): never => {
  process.stdout.write(`unhealthy: ${reason}\n`);
  process.exit(1);
};

const path = process.env.SWITCHYARD_HEALTH_FILE;
if (!path) fail('SWITCHYARD_HEALTH_FILE is not set');
const file = readHealthFile(path!);
if ('error' in file) fail(file.error);
else {
  const verdict = judgeHealth(file, Date.now(), Number(values['max-age-ms']));
  if (!verdict.ok) fail(verdict.reason);
  for (const url of file.probes) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(Number(values['timeout-ms'])) });
      await res.body?.cancel();
      if (!res.ok) fail(`${url} answered ${res.status}`);
    } catch (err) {
      fail(`${url}: ${(err as Error).message}`);
    }
  }
  process.stdout.write(`healthy: ${file.units.length} units, ${file.probes.length} listeners\n`);
}
