import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from './errors.js';
import type { Logger } from './logger.js';
import { MemoryBudget, memoryCeiling, type MemorySources } from './memory-budget.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Readings as a test sets them: files by path, the heap, the RSS, constrainedMemory(). */
function fakeSources(o: {
  files?: Record<string, string>;
  heapUsed?: number;
  heapLimit?: number;
  rss?: number;
  constrained?: number;
}) {
  const s = { heapUsed: 100 * MiB, heapLimit: 4.3 * GiB, rss: 300 * MiB, constrained: 0, files: {}, ...o };
  const sources: MemorySources = {
    heap: () => ({ usedBytes: s.heapUsed, limitBytes: s.heapLimit }),
    rssBytes: () => s.rss,
    constrainedBytes: () => s.constrained,
    readFile: (p) => s.files[p],
  };
  return { s, sources };
}

const v1 = (dir: string, limit: number | string, usage?: number, inactive = 0) => ({
  '/proc/self/cgroup': `9:name=systemd:/\n4:memory:${dir}\n0::/\n`,
  [`/sys/fs/cgroup/memory${dir}/memory.limit_in_bytes`]: `${limit}\n`,
  '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n',
  ...(usage !== undefined
    ? {
        [`/sys/fs/cgroup/memory${dir}/memory.usage_in_bytes`]: `${usage}\n`,
        [`/sys/fs/cgroup/memory${dir}/memory.stat`]: `cache 1\ninactive_file 5\ntotal_inactive_file ${inactive}\n`,
      }
    : {}),
});

describe('memoryCeiling', () => {
  it("takes V8's heap limit when nothing smaller is set (an unlimited cgroup, constrainedMemory's 2^64)", () => {
    const { sources } = fakeSources({ files: v1('/z1', '9223372036854771712'), constrained: 2 ** 64 });
    const c = memoryCeiling(sources);
    assert.equal(c.source, 'v8_heap');
    assert.equal(c.bytes, 4.3 * GiB);
    assert.equal(c.cgroup, undefined);
  });

  it("takes a cgroup v1 limit of the process's own cgroup (as /proc/self/cgroup names it) when smaller", () => {
    const { sources } = fakeSources({ files: v1('/z1', 900 * MiB) });
    const c = memoryCeiling(sources);
    assert.equal(c.source, 'cgroup');
    assert.equal(c.bytes, 900 * MiB);
    assert.deepEqual(c.cgroup, { version: 1, dir: '/sys/fs/cgroup/memory/z1', limitBytes: 900 * MiB });
  });

  it("takes a cgroup v2 memory.max, the process's own or the namespace root's; `max` is none", () => {
    const own = fakeSources({
      files: {
        '/proc/self/cgroup': '0::/system.slice/switchyard.service\n',
        '/sys/fs/cgroup/system.slice/switchyard.service/memory.max': `${2 * GiB}\n`,
        '/sys/fs/cgroup/memory.max': 'max\n',
      },
    });
    assert.deepEqual(memoryCeiling(own.sources).cgroup, {
      version: 2,
      dir: '/sys/fs/cgroup/system.slice/switchyard.service',
      limitBytes: 2 * GiB,
    });
    const container = fakeSources({
      files: { '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/memory.max': `${1536 * MiB}\n` },
    });
    const c = memoryCeiling(container.sources);
    assert.equal(c.bytes, 1536 * MiB);
    assert.equal(c.cgroup?.dir, '/sys/fs/cgroup');
    const none = fakeSources({ files: { '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/memory.max': 'max\n' } });
    assert.equal(memoryCeiling(none.sources).source, 'v8_heap');
  });

  it('takes process.constrainedMemory() and MEMORY_LIMIT_MB when they are the smallest', () => {
    const { sources } = fakeSources({ files: v1('/z1', 3 * GiB), constrained: 2 * GiB });
    assert.equal(memoryCeiling(sources).source, 'constrained_memory');
    const c = memoryCeiling(sources, 1024);
    assert.equal(c.source, 'MEMORY_LIMIT_MB');
    assert.equal(c.bytes, GiB);
    const small = fakeSources({ heapLimit: 512 * MiB, files: v1('/z1', 3 * GiB) });
    assert.equal(memoryCeiling(small.sources, 1024).source, 'v8_heap');
  });
});

describe('MemoryBudget', () => {
  it('measures the cgroup by its working set (usage less inactive file cache), the heap by its own limit, and takes the worst', () => {
    let now = 0;
    const { s, sources } = fakeSources({ files: v1('/z1', 1000 * MiB, 600 * MiB, 200 * MiB), rss: 300 * MiB });
    const budget = new MemoryBudget({ sources, configuredMb: undefined, now: () => now });
    let r = budget.read();
    assert.equal(r.by, 'cgroup_working_set');
    assert.equal(r.share, 0.4);
    s.rss = 500 * MiB;
    assert.equal(budget.read().share, 0.4, 'a reading stands for a moment');
    now += 1_000;
    r = budget.read();
    assert.equal(r.by, 'rss', 'the process alone holds more than the cgroup reads');
    assert.equal(r.share, 0.5);
    s.heapUsed = 0.9 * s.heapLimit;
    now += 1_000;
    r = budget.read();
    assert.equal(r.by, 'heap');
    assert.ok(Math.abs(r.share - 0.9) < 1e-9);
  });

  it('refuses past the high mark with a retryable 503 naming memory, logs entering and leaving, and admits again under the clear mark', () => {
    let now = 0;
    const { s, sources } = fakeSources({ rss: 100 * MiB });
    const budget = new MemoryBudget({ sources, configuredMb: 1000, now: () => now });
    const warnings: string[] = [];
    budget.logTo({ warn: (_: unknown, msg: string) => warnings.push(msg) } as unknown as Logger);
    budget.admit('workflow start');
    s.rss = 800 * MiB;
    now += 1_000;
    const refusal = (() => {
      try {
        budget.admit('workflow start');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(refusal instanceof AppError);
    assert.equal(refusal.status, 503);
    assert.equal(refusal.retryable, true);
    assert.equal(refusal.details['reason'], 'memory');
    assert.equal(refusal.details['memory_ceiling_source'], 'MEMORY_LIMIT_MB');
    assert.equal(typeof refusal.details['retry_after_ms'], 'number');
    assert.match(refusal.message, /workflow start refused: .*memory ceiling \(1000 MiB/);
    assert.equal(warnings.length, 1);
    s.rss = 730 * MiB; // under the high mark, over the clear mark: still refused
    now += 1_000;
    assert.throws(() => budget.admit('workflow start'), AppError);
    s.rss = 600 * MiB;
    now += 1_000;
    budget.admit('workflow start');
    assert.equal(warnings.length, 2);
    assert.match(warnings[1] ?? '', /accepted again/);
  });
});
