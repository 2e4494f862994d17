import { readFileSync } from 'node:fs';

/** Linux's USER_HZ: /proc reports CPU time in ticks of 10 ms. */
const TICK_MS = 10;

/**
 * CPU time (user + system, in ms) a process has used so far, from /proc/<pid>/stat (Linux), for
 * benches that report where the time goes across processes; undefined when it cannot be read
 * (another OS, the process gone).
 */
export function processCpuMs(pid: number | string): number | undefined {
  try {
    // The fields after the command name, which is in parentheses and may contain spaces.
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_MS;
  } catch {
    return undefined;
  }
}

/** CPU ms so far of each process of a local PostgreSQL server that pg_stat_activity lists (its backends and its own). */
export async function postgresCpuMs(db: {
  query: (sql: string) => Promise<{ rows: { pid: number }[] }>;
}): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const { pid } of (await db.query('select pid from pg_stat_activity')).rows) {
    const ms = processCpuMs(pid);
    if (ms !== undefined) out.set(pid, ms);
  }
  return out;
}

/** CPU ms used between two readings of several processes: one that started in between counts from zero, one that ended is missed. */
export function cpuMsBetween(before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>): number {
  return [...after].reduce((sum, [pid, ms]) => sum + ms - (before.get(pid) ?? 0), 0);
}
