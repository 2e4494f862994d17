import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { isListening, waitForPort } from './ports.js';

export interface NatsServerHandle {
  readonly url: string;
  readonly kind: 'nats-server' | 'adopted';
  /** The server process (undefined when adopted). */
  readonly pid?: number;
  /** Resolves with the exit code when the server process ends, asked to or not (undefined when adopted). */
  readonly exited?: Promise<number>;
  stop(): Promise<void>;
  /** Kill at once (synchronous: usable in a process 'exit' handler). */
  kill(): void;
  /** Let this process exit while the server still runs (tests: the 'exit' hook kills it). */
  unref(): void;
}

/** Where the real nats-server binary is, or undefined (Debian installs /usr/bin/nats-server). */
export function findNatsServer(): string | undefined {
  for (const p of [
    process.env.NATS_SERVER_BIN,
    '/usr/bin/nats-server',
    '/usr/sbin/nats-server',
    '/usr/local/bin/nats-server',
  ]) {
    if (p && existsSync(p)) return p;
  }
  try {
    return execFileSync('sh', ['-c', 'command -v nats-server']).toString().trim() || undefined;
  } catch {
    return undefined;
  }
}

export const NATS_INSTALL_HINT =
  'nats-server is not installed: on Debian/Ubuntu run `apt-get install nats-server` (npm start does this itself as root), ' +
  'or download it from the NATS project, or point NATS_URL at a running server';

/**
 * Start the real nats-server with JetStream on 127.0.0.1. If a server already
 * answers on the port (left by a killed run), adopt it.
 */
export async function startNatsServer(opts: {
  port: number;
  storeDir: string;
  logger?: Logger;
}): Promise<NatsServerHandle> {
  const url = `nats://127.0.0.1:${opts.port}`;
  if (await isListening(opts.port)) {
    opts.logger?.info({ port: opts.port }, 'adopting the NATS server already running on the port');
    return { url, kind: 'adopted', stop: async () => undefined, kill: () => undefined, unref: () => undefined };
  }
  const bin = findNatsServer();
  if (!bin) throw new Error(NATS_INSTALL_HINT);
  const storeDir = path.resolve(opts.storeDir);
  mkdirSync(storeDir, { recursive: true });
  const log = opts.logger?.child({ component: 'nats-server' });
  const child: ChildProcess = spawn(bin, ['-a', '127.0.0.1', '-p', String(opts.port), '-js', '-sd', storeDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const relay = (b: Buffer) => log?.debug({ nats: b.toString().trim() }, 'nats-server');
  child.stdout?.on('data', relay);
  child.stderr?.on('data', relay);
  let exited: number | null = null;
  let resolveExited!: (code: number) => void;
  const exitedPromise = new Promise<number>((r) => (resolveExited = r));
  child.once('exit', (code) => {
    exited = code ?? -1;
    resolveExited(exited);
  });
  // A spawn that fails (binary missing, not executable) emits 'error': without a listener it would end this process.
  child.on('error', (err) => {
    log?.error({ err }, 'nats-server process error');
    exited ??= -1;
    resolveExited(exited);
  });
  try {
    await waitForPort(opts.port, 15_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`nats-server did not start (exit ${exited}): ${String(err)}`, { cause: err });
  }
  return {
    url,
    kind: 'nats-server',
    ...(child.pid !== undefined ? { pid: child.pid } : {}),
    exited: exitedPromise,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    unref: () => {
      child.unref();
      (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
      (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.ref(); // after unref(), waiting for the exit must keep the process alive
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
