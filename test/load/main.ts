/**
 * `npm run load`: the load test at full size, twice: a plain run, then one with a SIGKILL of the
 * launcher mid-run and a restart. Prints the figures of each and exits 1 when work was lost,
 * duplicated or failed. Sizes from the command line:
 *   node test/dist/load/main.js [--workflows 1000] [--delegations 1000] [--clients 200] [--only plain|kill] [--wait-minutes 10]
 * `--wait-minutes`: how long each phase waits for the accepted work to end after the last request
 * (a unit still running then counts as lost); on a slow or shared machine the agents' throughput
 * at the default limits may need longer than 10 minutes for 2,000 units.
 */
import path from 'node:path';
import { formatReport, runLoad, type LoadReport } from './harness.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const root = path.resolve(import.meta.dirname, '..', '..', '..');
const sizes = {
  workflows: arg('workflows', 1000),
  delegations: arg('delegations', 1000),
  clients: arg('clients', 200),
  completionTimeoutMs: arg('wait-minutes', 10) * 60_000,
};

const reports: LoadReport[] = [];
if (only !== 'kill') reports.push(await runLoad('plain', { ...sizes, root }));
if (reports[0]) console.log(formatReport(reports[0]));
if (only !== 'plain') {
  const r = await runLoad('sigkill mid-run', { ...sizes, root, killAt: 0.5 });
  reports.push(r);
  console.log(formatReport(r));
}
const bad = reports.filter(
  (r) =>
    r.lost > 0 ||
    r.duplicated.units + r.duplicated.terminal + r.duplicated.steps > 0 ||
    Object.keys(r.failed).length > 0 ||
    r.completed.workflows + r.completed.delegations < r.accepted.workflows + r.accepted.delegations,
);
console.log(JSON.stringify(reports));
process.exit(bad.length > 0 ? 1 : 0);
