import { readFileSync } from 'node:fs';

/**
 * The OS users whose sockets listen on TCP `port` (any local address), from the kernel's socket
 * tables; undefined where there are none to read (not Linux). A server we started runs as us: a
 * listener of another user on our port is someone who took it while it was free, and is not to be
 * adopted, whatever it answers.
 */
export function listenerUids(
  port: number,
  tables: readonly string[] = ['/proc/net/tcp', '/proc/net/tcp6'],
): Set<number> | undefined {
  const uids = new Set<number>();
  let read = false;
  for (const table of tables) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    read = true;
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length < 8 || f[3] !== '0A') continue; // 0A: LISTEN
      const local = f[1]!;
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) !== port) continue;
      uids.add(Number(f[7]));
    }
  }
  return read ? uids : undefined;
}

/** Why a listener on `port` is not ours to adopt (another OS user owns it), or undefined. */
export function foreignListener(port: number, tables?: readonly string[]): string | undefined {
  const own = process.getuid?.();
  if (own === undefined) return undefined;
  const uids = listenerUids(port, tables);
  const foreign = [...(uids ?? [])].filter((u) => u !== own);
  return foreign.length > 0
    ? `127.0.0.1:${port} is held by a process of another OS user (uid ${foreign.join(', ')}), not by a server this launcher started: it is not adopted; stop that process`
    : undefined;
}
