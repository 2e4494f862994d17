import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Supervisor, type SupervisedHandle } from './supervisor.js';

const logger = pino({ level: 'silent' });

/** A fake component (pure unit test): counts starts and stops, fails on demand, can refuse to start. */
class Fake {
  starts = 0;
  stops = 0;
  refuse = 0;
  readonly log: string[];
  private failNow: ((err: Error) => void) | undefined;
  constructor(
    readonly name: string,
    log: string[],
  ) {
    this.log = log;
  }
  start = async (): Promise<SupervisedHandle> => {
    if (this.refuse > 0) {
      this.refuse--;
      this.log.push(`${this.name}:refused`);
      throw new Error(`${this.name} cannot start yet`);
    }
    this.starts++;
    this.log.push(`${this.name}:start`);
    const failed = new Promise<unknown>((_, reject) => (this.failNow = reject));
    failed.catch(() => undefined);
    return {
      stop: async () => {
        this.stops++;
        this.log.push(`${this.name}:stop`);
      },
      failed,
    };
  };
  crash(message = 'boom'): void {
    this.failNow?.(new Error(message));
  }
}

async function until(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('Supervisor', () => {
  it('restarts a failed component with its dependents, in order, and reports it degraded until it runs again', async () => {
    const log: string[] = [];
    const sup = new Supervisor({ logger, initialBackoffMs: 20, maxBackoffMs: 40 });
    const db = new Fake('db', log);
    const nats = new Fake('nats', log);
    const relay = new Fake('relay', log);
    const gateway = new Fake('gateway', log);
    await sup.add({ name: 'db', start: db.start });
    await sup.add({ name: 'nats', start: nats.start });
    await sup.add({ name: 'relay', start: relay.start, dependsOn: ['nats'] });
    await sup.add({ name: 'gateway', start: gateway.start, dependsOn: ['relay'] });
    assert.deepEqual(sup.degraded(), []);
    log.length = 0;

    nats.refuse = 2; // the first two restart attempts fail: backoff, then again
    nats.crash('connection closed');
    await new Promise((r) => setImmediate(r)); // the failure arrives as a promise rejection
    const during = sup.degraded().map((s) => s.name);
    assert.ok(during.includes('nats') && !during.includes('db'), `degraded while restarting: ${during}`);
    await until('nats back', () => nats.starts === 2 && gateway.starts === 2);
    assert.deepEqual(log, [
      'gateway:stop',
      'relay:stop',
      'nats:stop',
      'nats:refused',
      'nats:refused',
      'nats:start',
      'relay:start',
      'gateway:start',
    ]);
    assert.equal(db.stops, 0, 'a unit nothing ties to the failed one is left alone');
    assert.deepEqual(sup.degraded(), []);
    const st = sup.status().find((s) => s.name === 'nats')!;
    assert.equal(st.restarts, 1);
    assert.equal(st.lastError, 'nats cannot start yet');
    assert.ok(st.lastFailureAt);
    await sup.stopAll();
    assert.deepEqual(log.slice(-4), ['gateway:stop', 'relay:stop', 'nats:stop', 'db:stop']);
  });

  it('ignores a failure reported by a handle it already replaced, and restarts nothing after stopAll', async () => {
    const log: string[] = [];
    const sup = new Supervisor({ logger, initialBackoffMs: 10, maxBackoffMs: 10 });
    const a = new Fake('a', log);
    let firstFailed!: (e: Error) => void;
    let calls = 0;
    await sup.add({
      name: 'a',
      start: async () => {
        calls++;
        const h = await a.start();
        if (calls === 1) {
          const failed = new Promise<unknown>((_, rej) => (firstFailed = rej));
          failed.catch(() => undefined);
          return { ...h, failed };
        }
        return h;
      },
    });
    firstFailed(new Error('first'));
    await until('restarted', () => a.starts === 2);
    firstFailed(new Error('again, from the old handle'));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(a.starts, 2);
    await sup.stopAll();
    a.crash('after stop');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(a.starts, 2);
    assert.equal(sup.status()[0]!.state, 'stopped');
  });

  it('a boot failure throws (fail fast), and fail() from outside restarts a unit', async () => {
    const log: string[] = [];
    const sup = new Supervisor({ logger, initialBackoffMs: 10, maxBackoffMs: 10 });
    const bad = new Fake('bad', log);
    bad.refuse = 1;
    await assert.rejects(sup.add({ name: 'bad', start: bad.start }), /cannot start yet/);
    await assert.rejects(sup.add({ name: 'x', start: bad.start, dependsOn: ['nope'] }), /not started before it/);
    const ok = new Fake('ok', log);
    await sup.add({ name: 'ok', start: ok.start });
    sup.fail('ok', new Error('told'));
    await until('restarted', () => ok.starts === 2);
    assert.equal(sup.status().find((s) => s.name === 'ok')!.lastError, 'told');
    await sup.stopAll();
  });

  it('an unexpected process-level error is counted and reported degraded for a while, then not', async () => {
    const sup = new Supervisor({ logger, unexpectedWindowMs: 50 });
    sup.recordUnexpected('uncaughtException', new Error('socket hang up'));
    const p = sup.degraded();
    assert.equal(p.length, 1);
    assert.equal(p[0]!.name, 'process');
    assert.match(p[0]!.lastError!, /1 unexpected error\(s\), last \(uncaughtException\): socket hang up/);
    await new Promise((r) => setTimeout(r, 80));
    assert.deepEqual(sup.degraded(), []);
    assert.equal(sup.status().find((s) => s.name === 'process')!.state, 'running');
  });

  it('a running unit that says it works only in part is reported degraded with why, and running again once it says nothing', async () => {
    const sup = new Supervisor({ logger });
    let trouble: string | undefined;
    await sup.add({
      name: 'nats-server',
      start: async () => ({ stop: async () => undefined, trouble: () => trouble }),
    });
    assert.deepEqual(sup.degraded(), []);
    trouble = 'JetStream does not answer';
    const d = sup.degraded();
    assert.deepEqual(
      d.map((u) => [u.name, u.state, u.lastError]),
      [['nats-server', 'degraded', 'JetStream does not answer']],
    );
    trouble = undefined;
    assert.deepEqual(sup.degraded(), []);
    await sup.stopAll();
  });
});
