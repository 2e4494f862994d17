import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { AppError } from './errors.js';
import { configSchema, parseConfig } from './config.js';
import type { Logger } from './logger.js';

/**
 * The process's memory budget: how close it is to being killed for memory, as one share.
 *
 * A process dies of memory in one of two ways, and each has its own measure:
 * - V8 aborts when the heap's used bytes reach its limit (`heap_size_limit`). Node sizes that
 *   limit from the host's memory (about 4 GB on a 16 GB host), not from a container's;
 * - the kernel kills the process when its memory cgroup (a container, a systemd unit's
 *   MemoryMax, a cgroup v1 `memory.limit_in_bytes`) cannot be brought back under its limit. What
 *   counts there is the cgroup's working set (its charge less the file cache it can drop:
 *   `inactive_file`), which takes in every process of the cgroup (the launcher's embedded
 *   PostgreSQL and nats-server too); the process's own RSS counts against an operator's
 *   MEMORY_LIMIT_MB.
 * The share is the worst of those measures, each against its own limit; the ceiling is the
 * smallest limit. The limits are read once (at construction), the use at most once per
 * READING_MS.
 */

/** The environment variable that sets the ceiling by hand (MEMORY_LIMIT_MB, in configSchema). */
export const memoryBudgetEnvSchema = configSchema.pick({ MEMORY_LIMIT_MB: true });

/** Share of the ceiling past which new work is refused (see MemoryBudget.admit). */
export const MEMORY_HIGH_SHARE = 0.75;
/** Share at which refusing stops again: a little under the mark, so one reading either side does not flap. */
export const MEMORY_CLEAR_SHARE = 0.7;
/** How long one reading of the use stands. */
export const READING_MS = 500;
/** What a refusal tells the client to wait before trying again. */
export const MEMORY_RETRY_AFTER_MS = 5_000;
/** A limit at least this large means none (cgroup v1 writes 2^63 rounded to a page; Node's unconstrained answer is 2^64). */
const NO_LIMIT = 2 ** 60;

/** Where the readings come from; a test gives its own. */
export interface MemorySources {
  heap: () => { usedBytes: number; limitBytes: number };
  rssBytes: () => number;
  /** `process.constrainedMemory()`: the cgroup limit libuv found (0 or huge when none). */
  constrainedBytes: () => number | undefined;
  /** A file's text, or undefined when it cannot be read. */
  readFile: (path: string) => string | undefined;
}

export const processMemorySources: MemorySources = {
  heap: () => {
    const h = getHeapStatistics();
    return { usedBytes: h.used_heap_size, limitBytes: h.heap_size_limit };
  },
  rssBytes: () => process.memoryUsage.rss(),
  constrainedBytes: () => (typeof process.constrainedMemory === 'function' ? process.constrainedMemory() : undefined),
  readFile: (path) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
};

/** The process's memory cgroup: its limit, and the files its use is read from. */
export interface MemoryCgroup {
  readonly version: 1 | 2;
  readonly dir: string;
  readonly limitBytes: number;
}

const limitOf = (text: string | undefined): number | undefined => {
  const n = Number(text?.trim());
  return Number.isFinite(n) && n > 0 && n < NO_LIMIT ? n : undefined;
};

/**
 * The memory cgroup this process is in, when it has a limit: the directory /proc/self/cgroup
 * names (v2 `0::/path`, v1 `N:memory:/path`) under /sys/fs/cgroup, else the mount's root (a
 * container whose cgroup namespace shows its own cgroup as `/`).
 */
export function findMemoryCgroup(read: MemorySources['readFile'], root = '/sys/fs/cgroup'): MemoryCgroup | undefined {
  const lines = (read('/proc/self/cgroup') ?? '').split('\n');
  const v1Path = lines
    .map((l) => l.split(':'))
    .find((p) => p.length >= 3 && (p[1] ?? '').split(',').includes('memory'))?.[2];
  const v2Path = lines.map((l) => l.split(':')).find((p) => p.length >= 3 && p[0] === '0' && p[1] === '')?.[2];
  const candidates: { version: 1 | 2; dir: string; file: string }[] = [];
  if (v1Path !== undefined) {
    candidates.push({
      version: 1,
      dir: `${root}/memory${v1Path === '/' ? '' : v1Path}`,
      file: 'memory.limit_in_bytes',
    });
  }
  if (v2Path !== undefined)
    candidates.push({ version: 2, dir: `${root}${v2Path === '/' ? '' : v2Path}`, file: 'memory.max' });
  candidates.push(
    { version: 2, dir: root, file: 'memory.max' },
    { version: 1, dir: `${root}/memory`, file: 'memory.limit_in_bytes' },
  );
  let found: MemoryCgroup | undefined;
  for (const c of candidates) {
    const limitBytes = limitOf(read(`${c.dir}/${c.file}`));
    if (limitBytes !== undefined && (found === undefined || limitBytes < found.limitBytes))
      found = { version: c.version, dir: c.dir, limitBytes };
  }
  return found;
}

/** The cgroup's working set: its charge less the file cache the kernel drops before it kills (what the OOM decision sees). */
export function cgroupWorkingSetBytes(cg: MemoryCgroup, read: MemorySources['readFile']): number | undefined {
  const usage = Number(read(`${cg.dir}/${cg.version === 2 ? 'memory.current' : 'memory.usage_in_bytes'}`)?.trim());
  if (!Number.isFinite(usage)) return undefined;
  const stat = read(`${cg.dir}/memory.stat`) ?? '';
  const key = cg.version === 2 ? 'inactive_file' : 'total_inactive_file';
  const inactive = Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(stat)?.[1] ?? 0);
  return Math.max(0, usage - inactive);
}

/** What limits the process, smallest first: the one that decides is `ceiling`. */
export interface MemoryCeiling {
  /** The smallest of the limits below. */
  readonly bytes: number;
  readonly source: 'v8_heap' | 'cgroup' | 'constrained_memory' | 'MEMORY_LIMIT_MB';
  readonly heapLimitBytes: number;
  readonly cgroup?: MemoryCgroup;
  /** `process.constrainedMemory()` when it names a limit. */
  readonly constrainedBytes?: number;
  readonly configuredBytes?: number;
}

export function memoryCeiling(sources: MemorySources, configuredMb?: number): MemoryCeiling {
  const heapLimitBytes = sources.heap().limitBytes;
  const cgroup = findMemoryCgroup(sources.readFile);
  const constrainedBytes = limitOf(String(sources.constrainedBytes() ?? ''));
  const configuredBytes = configuredMb !== undefined ? configuredMb * 1024 * 1024 : undefined;
  const limits: [number | undefined, MemoryCeiling['source']][] = [
    [heapLimitBytes, 'v8_heap'],
    [cgroup?.limitBytes, 'cgroup'],
    [constrainedBytes, 'constrained_memory'],
    [configuredBytes, 'MEMORY_LIMIT_MB'],
  ];
  let [bytes, source] = [heapLimitBytes, 'v8_heap' as MemoryCeiling['source']];
  for (const [b, s] of limits) if (b !== undefined && b < bytes) [bytes, source] = [b, s];
  return {
    bytes,
    source,
    heapLimitBytes,
    ...(cgroup ? { cgroup } : {}),
    ...(constrainedBytes !== undefined ? { constrainedBytes } : {}),
    ...(configuredBytes !== undefined ? { configuredBytes } : {}),
  };
}

/** One reading: the share of the ceiling in use (the worst of the measures) and what it is made of. */
export interface MemoryReading {
  readonly share: number;
  /** The measure that gave the share. */
  readonly by: 'heap' | 'cgroup_working_set' | 'rss';
  readonly ceilingBytes: number;
  readonly ceilingSource: MemoryCeiling['source'];
  readonly heapUsedBytes: number;
  readonly rssBytes: number;
  readonly cgroupWorkingSetBytes?: number;
}

export interface MemoryBudgetOptions {
  readonly sources?: MemorySources;
  /** MEMORY_LIMIT_MB (default: the environment's). */
  readonly configuredMb?: number;
  readonly highShare?: number;
  readonly clearShare?: number;
  /** The monotonic clock a reading is aged by (a step of the wall clock must not freeze it). */
  readonly now?: () => number;
}

/** The process's memory ceiling and its use; `admit` refuses new work while the use is high. */
export class MemoryBudget {
  readonly ceiling: MemoryCeiling;
  readonly highShare: number;
  readonly clearShare: number;
  private readonly sources: MemorySources;
  private readonly now: () => number;
  private last: { at: number; reading: MemoryReading } | undefined;
  private high = false;
  private log: Logger | undefined;

  constructor(o: MemoryBudgetOptions = {}) {
    this.sources = o.sources ?? processMemorySources;
    this.now = o.now ?? (() => performance.now());
    this.highShare = o.highShare ?? MEMORY_HIGH_SHARE;
    this.clearShare = Math.min(o.clearShare ?? MEMORY_CLEAR_SHARE, this.highShare);
    const configuredMb =
      'configuredMb' in o ? o.configuredMb : parseConfig(process.env, memoryBudgetEnvSchema).MEMORY_LIMIT_MB;
    this.ceiling = memoryCeiling(this.sources, configuredMb);
  }

  /** Where the process's warnings go (entering and leaving high use); the first logger given stays. */
  logTo(log: Logger): this {
    this.log ??= log;
    return this;
  }

  /** The use now (a reading stands READING_MS). */
  read(): MemoryReading {
    const at = this.now();
    if (this.last && at - this.last.at < READING_MS) return this.last.reading;
    const heap = this.sources.heap();
    const rssBytes = this.sources.rssBytes();
    const c = this.ceiling;
    const measures: [number, MemoryReading['by']][] = [[heap.usedBytes / heap.limitBytes, 'heap']];
    const workingSet = c.cgroup ? cgroupWorkingSetBytes(c.cgroup, this.sources.readFile) : undefined;
    if (c.cgroup && workingSet !== undefined) measures.push([workingSet / c.cgroup.limitBytes, 'cgroup_working_set']);
    // The process's own RSS against a limit that is the process's (and against the cgroup's when
    // its use cannot be read): never below what this process alone holds.
    const processLimit = Math.min(
      c.configuredBytes ?? Infinity,
      c.constrainedBytes ?? Infinity,
      c.cgroup?.limitBytes ?? Infinity,
    );
    if (processLimit !== Infinity) measures.push([rssBytes / processLimit, 'rss']);
    const [share, by] = measures.reduce((a, b) => (b[0] > a[0] ? b : a));
    const reading: MemoryReading = {
      share,
      by,
      ceilingBytes: c.bytes,
      ceilingSource: c.source,
      heapUsedBytes: heap.usedBytes,
      rssBytes,
      ...(workingSet !== undefined ? { cgroupWorkingSetBytes: workingSet } : {}),
    };
    this.last = { at, reading };
    this.noteTransition(reading);
    return reading;
  }

  /** True while the use is past highShare (until it falls under clearShare). */
  isHigh(): boolean {
    this.read();
    return this.high;
  }

  /**
   * Refuse new work (503, retryable, `Retry-After`) while the use is high: accepted, it would
   * grow the process into the kill that takes every role and every running execution with it.
   * `what` names the work in the message ("workflow start").
   */
  admit(what: string): void {
    if (!this.isHigh()) return;
    const r = this.read();
    const mb = (b: number) => Math.round(b / (1024 * 1024));
    throw new AppError(
      'unavailable',
      `${what} refused: this process uses ${Math.round(r.share * 100)} % of its memory ceiling ` +
        `(${mb(r.ceilingBytes)} MiB, from ${r.ceilingSource}), past ${Math.round(this.highShare * 100)} %; ` +
        `try again once running work has ended`,
      {
        reason: 'memory',
        limit: 'memory',
        memory_share: Math.round(r.share * 1000) / 1000,
        memory_high_share: this.highShare,
        memory_ceiling_bytes: r.ceilingBytes,
        memory_ceiling_source: r.ceilingSource,
        measured_by: r.by,
        retry_after_ms: MEMORY_RETRY_AFTER_MS,
      },
      true,
    );
  }

  private noteTransition(r: MemoryReading): void {
    const fields = {
      memoryShare: Math.round(r.share * 1000) / 1000,
      measuredBy: r.by,
      ceilingBytes: r.ceilingBytes,
      ceilingSource: r.ceilingSource,
      rssBytes: r.rssBytes,
      heapUsedBytes: r.heapUsedBytes,
      ...(r.cgroupWorkingSetBytes !== undefined ? { cgroupWorkingSetBytes: r.cgroupWorkingSetBytes } : {}),
    };
    if (!this.high && r.share >= this.highShare) {
      this.high = true;
      this.log?.warn(
        fields,
        `memory past ${Math.round(this.highShare * 100)} % of the ceiling: new workflow starts are refused (503) until it falls`,
      );
    } else if (this.high && r.share < this.clearShare) {
      this.high = false;
      this.log?.warn(
        fields,
        `memory back under ${Math.round(this.clearShare * 100)} % of the ceiling: workflow starts are accepted again`,
      );
    }
  }
}

let shared: MemoryBudget | undefined;
/** The process's one budget (every role of a launcher shares the process, so they share it). */
export function processMemoryBudget(): MemoryBudget {
  shared ??= new MemoryBudget();
  return shared;
}
/** Replace the process's budget (a test injects its readings). Returns the previous one. */
export function setProcessMemoryBudget(budget: MemoryBudget | undefined): MemoryBudget | undefined {
  const before = shared;
  shared = budget;
  return before;
}
