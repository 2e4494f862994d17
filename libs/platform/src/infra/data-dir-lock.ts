import { mkdirSync, readFileSync, realpathSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { z } from 'zod';

/** The file that says which process runs the embedded servers of a data dir. */
export const DATA_DIR_LOCK_FILE = 'launcher.lock';

const lockSchema = z.object({
  pid: z.number().int().positive(),
  host: z.string(),
  started: z.string().nullable(),
  /** The data dir the holder took (its real path): a record copied with the dir to another path is not a holder of the copy. */
  dir: z.string().optional(),
});
type LockRecord = z.infer<typeof lockSchema>;

/** Thrown when another live process holds the data dir. */
export class DataDirInUseError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: LockRecord,
  ) {
    super(
      `another switchyard launcher (pid ${holder.pid}) runs on DATA_DIR ${dataDir} and owns its PostgreSQL and nats-server: stop it first, or give this one a DATA_DIR of its own (if no such process runs, delete ${path.join(dataDir, DATA_DIR_LOCK_FILE)})`,
    );
    this.name = 'DataDirInUseError';
  }
}

/** When the process started, as the kernel counts it (field 22 of /proc/<pid>/stat), or null where there is no /proc. */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the recorded holder still runs: the same host, its pid alive, and (where /proc tells)
 * started when the record says, so a pid the system gave to another process since does not count.
 * A record from another host (a data dir copied from elsewhere: a restore) is not checked: the
 * embedded servers listen on loopback only, so a data dir is not shared between hosts.
 */
function holds(r: LockRecord, dir: string): boolean {
  if (r.host !== hostname() || r.pid === process.pid) return false;
  if (r.dir !== undefined && r.dir !== dir) return false;
  if (!alive(r.pid)) return false;
  const started = processStart(r.pid);
  return started === null || r.started === null || started === r.started;
}

export interface DataDirLock {
  /** Remove the lock if it is still this process's. Idempotent. */
  release(): void;
}

/**
 * Take the data dir for this process, before any embedded server of it is started or adopted:
 * a second launcher on the same data dir would otherwise adopt the first one's PostgreSQL and
 * nats-server as if left by a killed run, and stop them when its own start failed. A lock left by
 * a process that no longer runs (killed) is taken over. Throws DataDirInUseError naming the holder.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = path.join(dataDir, DATA_DIR_LOCK_FILE);
  const dir = realpathSync(dataDir);
  const mine: LockRecord = { pid: process.pid, host: hostname(), started: processStart(process.pid), dir };
  const text = `${JSON.stringify(mine)}\n`;
  const create = (): boolean => {
    try {
      writeFileSync(file, text, { flag: 'wx', mode: 0o600 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      return false;
    }
  };
  const holder = (): LockRecord | undefined => {
    try {
      const parsed = lockSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined; // unreadable, or removed meanwhile: stale
    }
  };
  if (!create()) {
    // Taking over a stale lock: read, remove and create again under a mutex (an atomic mkdir), so
    // that of several starters at once only one removes the stale file and creates its own (without
    // it, one could remove the file another had just created, and both would hold the dir).
    const mutex = `${file}.takeover`;
    for (let attempt = 0; ; attempt++) {
      try {
        mkdirSync(mutex);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // One left by a starter killed inside it (it holds it for a few milliseconds): taken over.
        try {
          if (Date.now() - statSync(mutex).mtimeMs > 10_000) rmdirSync(mutex);
        } catch {
          // gone meanwhile
        }
        if (attempt >= 200) throw err;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 25);
      }
    }
    try {
      const held = holder();
      if (held && holds(held, dir)) throw new DataDirInUseError(dataDir, held);
      try {
        unlinkSync(file);
      } catch {
        // already gone
      }
      if (!create()) {
        const now = holder();
        throw now ? new DataDirInUseError(dataDir, now) : new Error(`could not take ${file}`);
      }
    } finally {
      try {
        rmdirSync(mutex);
      } catch {
        // gone
      }
    }
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    try {
      if (readFileSync(file, 'utf8') === text) unlinkSync(file);
    } catch {
      // gone already
    }
  };
  process.once('exit', release);
  return { release };
}
