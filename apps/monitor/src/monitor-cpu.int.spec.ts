import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { freshDatabase } from '@switchyard/testing';
import { AppError } from '@switchyard/platform';
import { Monitor, type MonitorEvent } from './monitor.js';
import { metricNames, type AlertRule } from './domain/rules.js';
import { shouldNotify } from './domain/alerts.js';

/** Wait until `pred` holds, polling; the deadline is generous because the CI machine is shared. */
async function waitFor<T>(
  what: string,
  pred: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Burns CPU in 50 ms slices until the parent says stop (IPC), then idles but stays alive, so
// its CPU falls to ~0 while it is still sampled. The test, not a clock, decides when load ends.
const BURNER = `
let stop = false;
process.on('message', () => { stop = true; });
function burn() { const end = Date.now() + 50; while (Date.now() < end) {} if (!stop) setImmediate(burn); }
burn();
setInterval(() => {}, 1000);`;

describe('CPU alert driven by a real load', () => {
  let child: ChildProcess;
  let monitor: Monitor;
  const published: MonitorEvent[] = [];

  before(async () => {
    // The rule watches the burner's own CPU (% of one core): on a machine shared with other
    // work the system total can be high anyway, the child's own share cannot. The threshold
    // is low because a shared 2-core machine may give the child only part of a core.
    const rule: AlertRule = {
      id: 'burner_cpu',
      name: 'Burner CPU high',
      metric: metricNames.processCpuPercent,
      match: { name: 'burner' },
      comparator: '>',
      threshold: 10,
      for_ms: 1_000,
      severity: 'warning',
      labels: {},
    };
    monitor = new Monitor({
      databaseUrl: await freshDatabase('monitor_cpu'),
      publish: (events) => {
        published.push(...events);
      },
      sampler: { diskIntervalMs: 3_600_000 },
      settings: { sampleIntervalMs: 250, rules: [rule] },
    });
    await monitor.start();
    child = spawn(process.execPath, ['-e', BURNER], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    monitor.watchProcess(child.pid!, 'burner');
  });
  after(async () => {
    child.kill('SIGKILL');
    await monitor.stop();
  });

  it('goes pending, fires while the child burns CPU, resolves after it stops', async () => {
    const firing = await waitFor('AlertFiring', () => published.find((e) => e.type === 'AlertFiring'));
    assert.ok(shouldNotify(firing));
    const pending = published.find((e) => e.type === 'AlertPending');
    assert.ok(pending && firing.metadata.at - pending.metadata.at >= 1_000, 'fired only after `for`');
    const [row] = await monitor.listAlerts({ state: 'firing' });
    assert.equal(row?.ruleId, 'burner_cpu');
    assert.equal(row?.labels.name, 'burner');
    assert.match(
      await monitor.renderPrometheus(),
      /switchyard_alerts\{alertname="Burner CPU high",alertstate="firing"/,
    );

    child.send('stop');
    const resolved = await waitFor('AlertResolved', () => published.find((e) => e.type === 'AlertResolved'));
    assert.equal(resolved.type === 'AlertResolved' && resolved.data.how, 'auto');
    const [after] = await monitor.listAlerts({});
    assert.equal(after?.state, 'resolved');
    assert.equal(after?.resolvedHow, 'auto');
    // The samples that drove it are stored: some above the threshold, and the last ones below.
    const raw = await monitor.store.rawSamples(
      metricNames.processCpuPercent,
      pending.metadata.at - 60_000,
      Date.now() + 1_000,
      { name: 'burner' },
    );
    assert.ok(raw.some((s) => s.value > 10) && raw.at(-1)!.value <= 10);
    // A resolved alert cannot be resolved by hand (409).
    await assert.rejects(
      monitor.resolveAlert(after.id, 'ann', 'done'),
      (e: unknown) => e instanceof AppError && e.code === 'illegal_state' && e.status === 409,
    );
  });
});
