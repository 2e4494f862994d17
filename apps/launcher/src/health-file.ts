import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import type { Supervisor } from './supervisor.js';

/**
 * A launcher process's own health as a file, for a container healthcheck: roles without a
 * listener (relay, workflows, dispatcher, connectors, monitor) have no URL to probe, and a probe
 * of the process over NATS would test NATS more than the process. The launcher rewrites it every
 * few seconds; `healthcheck.js` reads it.
 */
export const healthFileSchema = z.object({
  /** When it was written (ms since the epoch): an old file means a hung or dead process. */
  at: z.number(),
  pid: z.number().int(),
  roles: z.array(z.string()),
  units: z.array(z.object({ name: z.string(), state: z.string(), lastError: z.string().optional() })),
  /** Health URLs of this process's listeners (loopback), probed by the healthcheck too. */
  probes: z.array(z.string()),
});
export type HealthFile = z.infer<typeof healthFileSchema>;

export type HealthVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Healthy when written less than `maxAgeMs` ago and every unit runs. Pure: `now` comes in. */
export function judgeHealth(file: HealthFile, now: number, maxAgeMs: number): HealthVerdict {
  const age = now - file.at;
  if (age > maxAgeMs)
    return { ok: false, reason: `health file is ${Math.round(age / 1000)} s old (process ${file.pid} hung or gone)` };
  const bad = file.units.filter((u) => u.state !== 'running');
  if (bad.length)
    return {
      ok: false,
      reason: bad.map((u) => `${u.name} ${u.state}${u.lastError ? ` (${u.lastError})` : ''}`).join('; '),
    };
  return { ok: true };
}

/** Read and parse the file; a missing or malformed file is a verdict, not an exception. */
export function readHealthFile(path: string): HealthFile | { error: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return {
      error: `no health file at ${path} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'}): not started yet`,
    };
  }
  try {
    return healthFileSchema.parse(JSON.parse(text));
  } catch {
    return { error: `health file ${path} is malformed` };
  }
}

/**
 * Write the supervisor's state to `path` now and every `intervalMs` (write then rename, so a
 * reader never sees half a file). Returns a stop function.
 */
export function startHealthFile(
  path: string,
  supervisor: Supervisor,
  info: { roles: readonly string[]; probes: readonly string[] },
  intervalMs = 5_000,
): () => void {
  const write = () => {
    const file: HealthFile = {
      at: Date.now(),
      pid: process.pid,
      roles: [...info.roles],
      units: supervisor
        .status()
        .map((u) => ({ name: u.name, state: u.state, ...(u.lastError ? { lastError: u.lastError } : {}) })),
      probes: [...info.probes],
    };
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(file));
    renameSync(tmp, path);
  };
  write();
  const timer = setInterval(() => {
    try {
      write();
    } catch {
      // A full or read-only disk: the file goes stale and the healthcheck says so.
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
