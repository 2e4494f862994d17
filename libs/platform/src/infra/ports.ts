import { createServer, Socket } from 'node:net';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * The kernel's range for the local ports of outgoing connections (Linux default 32768-60999).
 * A port picked inside it can be taken by any client socket (a pg or NATS connection) between
 * our check and the real bind seconds later; below it, only a listener can take it.
 */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi) return [lo, hi];
  } catch {
    /* not Linux: use the default */
  }
  return [32768, 60999];
}

const reservations = path.join(tmpdir(), 'switchyard-ports');
const handedOut = new Set<number>();

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Claim `port` for this process across processes: a file named after the port holding our pid.
 * A claim by a process that is gone is taken over. Claims are never released while we live,
 * so two test files running at once never get the same port.
 */
function reserve(port: number): boolean {
  if (handedOut.has(port)) return false;
  mkdirSync(reservations, { recursive: true });
  const file = path.join(reservations, String(port));
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
  } catch {
    const owner = Number(readFileSync(file, 'utf8'));
    if (owner && owner !== process.pid && alive(owner)) return false;
    writeFileSync(file, String(process.pid));
  }
  handedOut.add(port);
  return true;
}

const canBind = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });

/**
 * A free TCP port on 127.0.0.1 for a server to bind later (tests, benches, the test runner):
 * random, below the ephemeral range (see ephemeralRange), reserved across processes, and
 * bindable right now.
 */
export async function freePort(): Promise<number> {
  const [ephemeralLow] = ephemeralRange();
  const low = 15_000;
  const high = Math.max(low + 1_000, ephemeralLow - 1);
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (!reserve(port)) continue;
    if (await canBind(port)) return port;
  }
  throw new Error(`no free port found in ${low}-${high} after 200 tries`);
}

/** True when something accepts TCP connections on host:port. */
export function isListening(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, host, () => done(true));
  });
}

/** Wait until something listens on host:port; `gaveUp` ends the wait early (the server meant to listen is gone). */
export async function waitForPort(
  port: number,
  timeoutMs: number,
  host = '127.0.0.1',
  gaveUp: () => boolean = () => false,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline && !gaveUp()) {
    if (await isListening(port, host)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    gaveUp()
      ? `nothing listens on ${host}:${port}: gave up`
      : `nothing listens on ${host}:${port} after ${timeoutMs} ms`,
  );
}
