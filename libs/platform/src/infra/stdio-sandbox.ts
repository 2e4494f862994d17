import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import type { Logger } from 'pino';

/**
 * How stdio MCP servers are started. A stdio server is a program of someone else's running as
 * this process's OS user: on its own it could read this process's environment and memory
 * (`/proc/<pid>/environ`, `/proc/<pid>/mem`: the NATS token, the API keys, the database
 * passwords) and the secret files of the data dir. In the sandbox (bubblewrap, `bwrap`) it sees
 * the machine's files read-only and its network as it is, only its own processes (a PID
 * namespace with its own /proc), and the data dir's secrets (the NATS and PostgreSQL
 * directories, the password files) are hidden: an empty directory in their place, or a file that
 * cannot be opened (a device node mounted without device access). It writes only where it was
 * given (`writable`: the filesystem server's root): with the machine writable, a server could
 * rewrite code the launcher loads later (a worker thread's script) and run outside the sandbox.
 */
export interface StdioSandbox {
  /** The bwrap program. */
  readonly bwrap: string;
  /** Paths the server must not read: a directory is replaced by an empty one, a file by one that cannot be opened. */
  readonly hide: readonly string[];
}

export type StdioSandboxMode = 'auto' | 'bwrap' | 'off';

/**
 * `--cap-drop ALL`: bwrap run by root keeps every capability in the sandbox unless told, and with
 * CAP_SYS_ADMIN the server could unmount what hides the secrets (without it, as an unprivileged
 * user, bwrap drops them anyway). `--new-session`: the server cannot push input into the
 * launcher's terminal (TIOCSTI).
 */
const BASE_ARGS = [
  '--ro-bind',
  '/',
  '/',
  '--dev',
  '/dev',
  '--proc',
  '/proc',
  '--unshare-pid',
  '--die-with-parent',
  '--new-session',
  '--cap-drop',
  'ALL',
];

/**
 * The command and arguments that run `command args` in the sandbox, writing only under
 * `writable` (only the paths that exist now; a hidden path inside one stays hidden).
 */
export function sandboxed(
  sandbox: StdioSandbox,
  command: string,
  args: readonly string[],
  writable: readonly string[] = [],
): { command: string; args: string[] } {
  const hide = sandbox.hide.filter((p) => existsSync(p));
  return {
    command: sandbox.bwrap,
    args: [
      ...BASE_ARGS,
      ...writable.filter((p) => existsSync(p)).flatMap((p) => ['--bind', p, p]),
      ...hide.flatMap((p) => (statSync(p).isDirectory() ? ['--tmpfs', p] : ['--ro-bind', '/dev/null', p])),
      '--',
      command,
      ...args,
    ],
  };
}

/** Probed once per binary and process: the launcher and the filesystem bridge both ask at start. */
const bwrapProbes = new Map<string, string | undefined>();
const warnedWithout = new Set<string>();

/** Why `bwrap` cannot run a sandbox here (a trial run), or undefined when it can. */
function whyBwrapCannotRun(bwrap: string): string | undefined {
  if (!bwrapProbes.has(bwrap)) {
    const probe = spawnSync(bwrap, [...BASE_ARGS, '--', 'true'], { stdio: 'pipe', timeout: 10_000 });
    bwrapProbes.set(
      bwrap,
      probe.status === 0
        ? undefined
        : probe.error
          ? probe.error.message
          : probe.stderr.toString().trim() || `exit ${probe.status}`,
    );
  }
  return bwrapProbes.get(bwrap);
}

/**
 * The sandbox for this process's stdio servers: `bwrap` when it runs here (it needs user
 * namespaces, or root), none with `off`. `auto` (the default) says, once per process, when it cannot be had
 * and runs the servers without it; `bwrap` makes that an error.
 */
export function detectStdioSandbox(
  mode: StdioSandboxMode,
  hide: readonly string[],
  logger: Logger,
  bwrap = 'bwrap',
): StdioSandbox | undefined {
  if (mode === 'off') return undefined;
  const why = whyBwrapCannotRun(bwrap);
  if (why === undefined) return { bwrap, hide };
  if (mode === 'bwrap')
    throw new Error(`MCP_STDIO_SANDBOX=bwrap, but bwrap cannot run here (${why}): install bubblewrap, or set auto/off`);
  if (warnedWithout.has(bwrap)) return undefined;
  warnedWithout.add(bwrap);
  logger.warn(
    { why },
    'stdio MCP servers run without a sandbox (bwrap not found or not allowed here): each can read this process memory and the data dir secrets; install bubblewrap',
  );
  return undefined;
}
