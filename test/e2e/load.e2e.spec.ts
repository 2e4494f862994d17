/**
 * The short load test (`npm run load` is the long one; see test/load/harness.ts): the whole system
 * as `npm start` runs it, 80 workflow starts and 80 delegations from 50 concurrent clients at the
 * default limits, with a SIGKILL of the launcher mid-run and a restart (one system start and one
 * restart keep it near 90 s; `npm run load` also runs the burst without the kill).
 * Every accepted unit of work must complete (none fails because of load or of the restart),
 * nothing may be lost or run twice (checked in the event store), and an execution read right after
 * its 202 must be found. The figures are printed; timings are not asserted (shared 2-core machines).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { formatReport, runLoad, type LoadReport } from '../load/harness.js';

const root = path.resolve(import.meta.dirname, '..', '..', '..');
const sizes = { workflows: 80, delegations: 80, clients: 50, completionTimeoutMs: 180_000, root };

function check(r: LoadReport): void {
  console.log(formatReport(r));
  const accepted = r.accepted.workflows + r.accepted.delegations;
  assert.equal(
    accepted,
    sizes.workflows + sizes.delegations,
    `every request accepted (refused: ${JSON.stringify(r.refused)})`,
  );
  assert.deepEqual(r.failed, {}, 'no unit of work failed');
  assert.equal(r.lost, 0, 'every accepted unit ended (its terminal event is in the store)');
  assert.equal(r.completed.workflows + r.completed.delegations, accepted, 'every accepted unit completed');
  assert.equal(r.read_your_writes.missing, 0, 'an execution is found right after its 202');
  assert.equal(r.read_your_writes.stale, 0, 'an ended execution does not read as running');
  assert.equal(r.duplicated.terminal, 0, 'no execution or task ended twice');
  assert.equal(r.duplicated.steps, 0, 'no step succeeded twice');
}

describe('load: the whole system under a burst of work, killed mid-run', () => {
  it('a burst of starts and delegations with a SIGKILL of the process mid-run and a restart: all accepted work completes once', async () => {
    const r = await runLoad('short, sigkill mid-run', { ...sizes, killAt: 0.5 });
    check(r);
    assert.ok(r.killed_at_ms !== undefined, 'the launcher was killed');
    // A start whose 202 was lost with the process is sent again; until every command endpoint
    // honours Idempotency-Key (another change), such a start can run twice: printed, not asserted.
    if (r.duplicated.units > 0)
      console.log(
        `# units started twice after the kill (a start re-sent after its answer was lost): ${r.duplicated.units}`,
      );
  });
});
