import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { counterRate, cpuPercents, parseProcStatTicks, parseVmRssBytes } from './sampler.js';

const t = (user: number, idle: number) => ({ user, nice: 0, sys: 0, irq: 0, idle });
describe('sampler helpers', () => {
  it('cpu percent per core and total from counter deltas', () => {
    const r = cpuPercents([t(0, 0), t(0, 0)], [t(100, 0), t(25, 75)]);
    assert.deepEqual(r.perCore, [100, 25]);
    assert.equal(r.total, 62.5);
  });
  it('a core without elapsed time is null', () => {
    assert.deepEqual(cpuPercents([t(5, 5)], [t(5, 5)]), { total: null, perCore: [null] });
  });
  it('counter rates: per second, null on reset', () => {
    assert.equal(counterRate(1000, 6000, 5000), 1000);
    assert.equal(counterRate(6000, 10, 5000), null);
  });
  it('parses /proc/<pid>/stat even with spaces and parens in comm', () => {
    const stat =
      '4242 (node (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 50 0 0 20 0 11 0 100 1000000 5000 18446744073709551615';
    assert.equal(parseProcStatTicks(stat), 200);
    assert.equal(parseProcStatTicks('garbage'), null);
  });
  it('parses VmRSS', () => {
    assert.equal(parseVmRssBytes('Name:\tnode\nVmRSS:\t   2048 kB\n'), 2048 * 1024);
    assert.equal(parseVmRssBytes('Name: x'), null);
  });
});
