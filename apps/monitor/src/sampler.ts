import os from 'node:os';
import { readFile } from 'node:fs/promises';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import si from 'systeminformation';
import { metricNames as M, type Labels } from './domain/rules.js';

/** One measurement: a point of the series (metric, labels). `ts` is epoch ms. */
export interface Sample {
  readonly metric: string;
  readonly labels: Labels;
  readonly ts: number;
  readonly value: number;
}

export interface WatchedProcess {
  readonly pid: number;
  readonly name: string;
}

export interface SamplerOptions {
  /** Disk usage is sampled at most this often (it spawns `df`): default 60 s. */
  readonly diskIntervalMs?: number;
  /** Network counters are read at most this often (systeminformation spawns a shell per read): default 5 s. */
  readonly networkIntervalMs?: number;
  /** Name used in the labels of this process's own metrics. */
  readonly selfName?: string;
  /** Other app processes to measure (Linux: read from /proc). */
  readonly processes?: readonly WatchedProcess[];
  /** Resolution of the event-loop delay histogram in ms (default 20: lower costs more wake-ups). */
  readonly eventLoopResolutionMs?: number;
  /** Network interfaces to leave out (default: loopback). */
  readonly ignoreInterfaces?: readonly string[];
}

// ---------- pure helpers (unit-tested) ----------

export interface CpuTimes {
  readonly user: number;
  readonly nice: number;
  readonly sys: number;
  readonly idle: number;
  readonly irq: number;
}

/** Busy % per core and in total between two `os.cpus()` readings; null for a core without elapsed time. */
export function cpuPercents(
  prev: readonly CpuTimes[],
  cur: readonly CpuTimes[],
): { total: number | null; perCore: (number | null)[] } {
  let busyAll = 0;
  let allAll = 0;
  const perCore = cur.map((c, i) => {
    const p = prev[i];
    if (!p) return null;
    const idle = c.idle - p.idle;
    const all = c.user - p.user + (c.nice - p.nice) + (c.sys - p.sys) + (c.irq - p.irq) + idle;
    if (all <= 0) return null;
    busyAll += all - idle;
    allAll += all;
    return ((all - idle) / all) * 100;
  });
  return { total: allAll > 0 ? (busyAll / allAll) * 100 : null, perCore };
}

/** Bytes per second between two counter readings; null on a reset (counter went down) or no time. */
export function counterRate(prev: number, cur: number, dtMs: number): number | null {
  if (dtMs <= 0 || cur < prev) return null;
  return ((cur - prev) * 1000) / dtMs;
}

/** utime + stime (clock ticks) from the text of /proc/<pid>/stat; the comm field may hold spaces and parens. */
export function parseProcStatTicks(text: string): number | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const fields = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // After "pid (comm) ", field 3 (state) is index 0, so utime (14) is index 11, stime (15) index 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : null;
}

/** VmRSS in bytes from the text of /proc/<pid>/status. */
export function parseVmRssBytes(text: string): number | null {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

// Linux reports /proc times in USER_HZ, which is 100 on every mainstream architecture.
const CLOCK_TICKS_PER_SECOND = 100;

// ---------- the sampler ----------

/**
 * Collects system and process samples. Call `collect()` on an interval (the Monitor does, 5 s
 * by default). Cost choices, measured by bench/monitoring:
 * - CPU from `os.cpus()` deltas: same kernel counters as `si.currentLoad()`, which runs
 *   `execSync('cat /proc/stat | grep cpu')` on every call and so blocks the event loop.
 * - Memory from `si.mem()` (reads /proc/meminfo, no child process).
 * - Disk from `si.fsSize()` (spawns `df`) only every `diskIntervalMs`.
 * - Network from `si.networkStats('*')` (spawns a shell reading /sys counters).
 * - Other processes from /proc/<pid>/stat and /status (two small file reads each).
 */
export class Sampler {
  private readonly opts: Required<Omit<SamplerOptions, 'processes'>>;
  private readonly processes = new Map<number, string>();
  private readonly eld: IntervalHistogram;
  private prevCpu: CpuTimes[] | undefined;
  private prevSelf: { at: number; usage: NodeJS.CpuUsage } | undefined;
  private prevNet = new Map<string, { at: number; rx: number; tx: number }>();
  private prevProc = new Map<number, { at: number; ticks: number }>();
  private lastDiskAt = -Infinity;
  private lastNetAt = -Infinity;

  constructor(options: SamplerOptions = {}) {
    this.opts = {
      diskIntervalMs: options.diskIntervalMs ?? 60_000,
      networkIntervalMs: options.networkIntervalMs ?? 5_000,
      selfName: options.selfName ?? 'monitor',
      eventLoopResolutionMs: options.eventLoopResolutionMs ?? 20,
      ignoreInterfaces: options.ignoreInterfaces ?? ['lo'],
    };
    for (const p of options.processes ?? []) this.processes.set(p.pid, p.name);
    this.eld = monitorEventLoopDelay({ resolution: this.opts.eventLoopResolutionMs });
    this.eld.enable();
    this.prevCpu = os.cpus().map((c) => c.times);
    this.prevSelf = { at: Date.now(), usage: process.cpuUsage() };
  }

  watchProcess(pid: number, name: string): void {
    this.processes.set(pid, name);
  }

  unwatchProcess(pid: number): void {
    this.processes.delete(pid);
    this.prevProc.delete(pid);
  }

  /** Stop the event-loop histogram (its timer keeps costing otherwise). */
  close(): void {
    this.eld.disable();
  }

  /** One round of measurements at `now` (epoch ms). Rates need a previous round, so the first omits them. */
  async collect(now = Date.now()): Promise<Sample[]> {
    const out: Sample[] = [];
    const push = (metric: string, labels: Labels, value: number | null | undefined) => {
      if (value !== null && value !== undefined && Number.isFinite(value)) out.push({ metric, labels, ts: now, value });
    };

    // 1. CPU, total and per core.
    const cpuNow = os.cpus().map((c) => c.times);
    const { total, perCore } = this.prevCpu ? cpuPercents(this.prevCpu, cpuNow) : { total: null, perCore: [] };
    push(M.cpuPercent, { cpu: 'total' }, total);
    perCore.forEach((v, i) => push(M.cpuPercent, { cpu: String(i) }, v));
    // Kernel counters move in 10 ms ticks: right after construction nothing has elapsed yet, so
    // keep the old base and let the next round cover the longer span.
    if (total !== null) this.prevCpu = cpuNow;

    // 2. Memory: "used" is total minus available (page cache can be reclaimed, so it is not "used").
    const mem = await si.mem();
    const used = mem.total - mem.available;
    push(M.memoryTotalBytes, {}, mem.total);
    push(M.memoryUsedBytes, {}, used);
    push(M.memoryPercent, {}, mem.total > 0 ? (used / mem.total) * 100 : null);

    // 3. Disk, less often.
    if (now - this.lastDiskAt >= this.opts.diskIntervalMs) {
      this.lastDiskAt = now;
      const seen = new Set<string>();
      for (const fs of await si.fsSize()) {
        if (seen.has(fs.mount) || !(fs.size > 0)) continue;
        seen.add(fs.mount);
        const labels = { mount: fs.mount, fs: fs.fs };
        push(M.diskPercent, labels, (fs.used / fs.size) * 100);
        push(M.diskUsedBytes, labels, fs.used);
        push(M.diskSizeBytes, labels, fs.size);
      }
    }

    // 4. Network rates from byte counters.
    if (now - this.lastNetAt >= this.opts.networkIntervalMs) {
      this.lastNetAt = now;
      for (const n of await si.networkStats('*')) {
        if (this.opts.ignoreInterfaces.includes(n.iface)) continue;
        const prev = this.prevNet.get(n.iface);
        if (prev) {
          push(M.netRxRate, { iface: n.iface }, counterRate(prev.rx, n.rx_bytes, now - prev.at));
          push(M.netTxRate, { iface: n.iface }, counterRate(prev.tx, n.tx_bytes, now - prev.at));
        }
        this.prevNet.set(n.iface, { at: now, rx: n.rx_bytes, tx: n.tx_bytes });
      }
    }

    // 5. This process: CPU % of one core, memory, event-loop delay since the last round.
    const self = { pid: String(process.pid), name: this.opts.selfName };
    const usage = process.cpuUsage();
    if (this.prevSelf) {
      const dt = now - this.prevSelf.at;
      const cpuMicros = usage.user - this.prevSelf.usage.user + (usage.system - this.prevSelf.usage.system);
      if (dt > 0) push(M.processCpuPercent, self, (cpuMicros / 1000 / dt) * 100);
    }
    this.prevSelf = { at: now, usage };
    const mu = process.memoryUsage();
    push(M.processRssBytes, self, mu.rss);
    push(M.processHeapUsedBytes, self, mu.heapUsed);
    push(M.processHeapTotalBytes, self, mu.heapTotal);
    if (this.eld.count > 0) {
      // The histogram records the time between its timer's runs, which includes the resolution itself.
      const lag = (ns: number) => Math.max(0, ns / 1e6 - this.opts.eventLoopResolutionMs);
      push(M.processEventLoopLagP99Ms, self, lag(this.eld.percentile(99)));
      push(M.processEventLoopLagMeanMs, self, lag(this.eld.mean));
    }
    this.eld.reset();

    // 6. Other app processes (Linux /proc); a process that is gone is simply not sampled.
    for (const [pid, name] of this.processes) {
      const labels = { pid: String(pid), name };
      try {
        const [stat, status] = await Promise.all([
          readFile(`/proc/${pid}/stat`, 'utf8'),
          readFile(`/proc/${pid}/status`, 'utf8'),
        ]);
        const ticks = parseProcStatTicks(stat);
        const prev = this.prevProc.get(pid);
        if (ticks !== null) {
          if (prev && now > prev.at)
            push(
              M.processCpuPercent,
              labels,
              ((((ticks - prev.ticks) / CLOCK_TICKS_PER_SECOND) * 1000) / (now - prev.at)) * 100,
            );
          this.prevProc.set(pid, { at: now, ticks });
        }
        push(M.processRssBytes, labels, parseVmRssBytes(status));
      } catch {
        this.prevProc.delete(pid);
      }
    }
    return out;
  }
}
