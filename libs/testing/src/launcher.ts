/** Launcher processes of a system of its own, for the end-to-end specs, the fault scripts and the benches that run real processes. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { embeddedSuperuserPasswordFile, freePort } from '@switchyard/platform';

export const root = path.resolve(import.meta.dirname, '..', '..', '..');
export const launcherMain = path.join(root, 'apps', 'launcher', 'dist', 'main.js');
/**
 * A fresh directory under the checkout's `.tmp` for a whole system's data (`prefix` names it),
 * mode 0755: run as root, PostgreSQL runs as the `postgres` user and must reach its data dir.
 */
export function scratchDataDir(prefix: string): string {
  mkdirSync(path.join(root, '.tmp'), { recursive: true });
  const dir = mkdtempSync(path.join(root, '.tmp', prefix));
  chmodSync(dir, 0o755);
  return dir;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A deadline for Promise.race that does not keep the process alive after the race is decided. */
export const deadline = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/**
 * The superuser URL of the embedded PostgreSQL a launcher with this DATA_DIR starts on `pgPort`
 * (database `switchyard`): the password is put in the cluster's password file before the launcher
 * makes the cluster, so it is known before the start (processes started beside it need the URL).
 */
export function embeddedDatabaseUrl(dataDir: string, pgPort: number): string {
  const file = embeddedSuperuserPasswordFile(path.join(dataDir, 'postgres'));
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, randomBytes(24).toString('hex'), { mode: 0o600 });
  }
  return `postgres://postgres:${readFileSync(file, 'utf8').trim()}@127.0.0.1:${pgPort}/switchyard`;
}

/** An admin key in the launcher's format, given by env as an operator would (`sy_<16 hex>_<secret>`). */
export const newAdminKey = (): string =>
  `sy_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;

export const mcpKinds = [
  'FILESYSTEM_BRIDGE',
  'DATABASE',
  'DATABASE_WRITER',
  'GITHUB',
  'FETCH',
  'AUTOMATION',
  'ANALYTICS',
] as const;
export const agentNames = [
  'DATA_ANALYST',
  'FINANCIAL_ADVISOR',
  'OPERATIONS_MANAGER',
  'AUTOMATION_SPECIALIST',
  'CONTENT_CREATOR',
  'CUSTOMER_SUCCESS',
] as const;

/**
 * The environment of a system of its own: DATA_DIR, every port free (MCP servers, agents' HTTP
 * contract), no DATABASE_URL / NATS_URL of the test runner. Add GATEWAY_PORT and EMBEDDED_* for
 * the process that owns the infrastructure, or DATABASE_URL / NATS_URL for one that joins it.
 */
export async function systemEnv(
  dataDir: string,
  adminKey: string,
  extra: Record<string, string> = {},
): Promise<Record<string, string>> {
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    DATA_DIR: dataDir,
    FILESYSTEM_ROOT: path.join(dataDir, 'files'),
    LOG_LEVEL: 'info',
    SWITCHYARD_ADMIN_KEY: adminKey,
    GATEWAY_HOST: '127.0.0.1',
  };
  for (const k of [
    'DATABASE_URL',
    'NATS_URL',
    'TEST_DATABASE_URL',
    'TEST_NATS_URL',
    'DATABASE_ALLOW_WRITES',
    'SMTP_URL',
  ])
    delete env[k];
  // A split deployment's logins and their passwords: a spec gives them where it means to.
  for (const k of Object.keys(env)) if (/^DATABASE_(URL|PASSWORD)_/.test(k)) delete env[k];
  for (const kind of mcpKinds) {
    const port = await freePort();
    env[`MCP_${kind}_PORT`] = String(port);
    // The connectors reach the filesystem and GitHub servers over stdio; their HTTP bridges only move ports.
    if (kind !== 'FILESYSTEM_BRIDGE' && kind !== 'GITHUB') env[`MCP_${kind}_URL`] = `http://127.0.0.1:${port}/mcp`;
  }
  return { ...env, ...(await agentPorts()), ...extra };
}

/** A fresh free port for each built-in agent's HTTP contract: a second `agents` process on the same machine needs its own. */
export async function agentPorts(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of agentNames) out[`AGENT_${name}_PORT`] = String(await freePort());
  return out;
}

/** One launcher process with the given roles; `up` resolves when it logs "switchyard is up". */
export class Proc {
  proc!: ChildProcess;
  output = '';
  /** Every line it logged at error level or above, and plain (non-JSON) stderr lines, since start(). */
  readonly loud: string[] = [];
  exited!: Promise<number | null>;
  up!: Promise<void>;
  constructor(
    readonly label: string,
    readonly roles: string[],
    readonly env: Record<string, string>,
  ) {}
  start(): void {
    this.output = '';
    this.proc = spawn(process.execPath, [launcherMain, ...this.roles], {
      cwd: root,
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let resolveUp!: () => void;
    this.up = new Promise((r) => (resolveUp = r));
    let partial = '';
    // E2E_LOG_DIR keeps every line the process wrote (for a failure that needs the whole log).
    const logFile = process.env.E2E_LOG_DIR
      ? path.join(process.env.E2E_LOG_DIR, `${this.label.replace(/[^A-Za-z0-9_.-]/g, '_')}.log`)
      : undefined;
    const onData = (d: Buffer) => {
      if (logFile) appendFileSync(logFile, d);
      this.output = (this.output + d.toString()).slice(-30_000);
      if (this.output.includes('switchyard is up')) resolveUp();
      partial += d.toString();
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const l of lines)
        if (/"level":(50|60)/.test(l) || (l.trim() && !l.startsWith('{'))) this.loud.push(l.slice(0, 2000));
    };
    this.proc.stdout!.on('data', onData);
    this.proc.stderr!.on('data', onData);
    // A spawn that fails (node missing, EMFILE) emits 'error' and maybe no 'exit': end it as exited.
    this.exited = new Promise((r) => {
      this.proc.once('exit', (code) => r(code));
      this.proc.once('error', (err) => {
        this.output += `\nspawn failed: ${err.message}`;
        r(null);
      });
    });
  }
  get alive(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }
  /** Wait (bounded) for the "up" line; fail with the process output when it died or hung. */
  async waitUp(ms = 60_000): Promise<void> {
    const r = await Promise.race([
      this.up.then(() => 'up'),
      this.exited.then(() => 'exited'),
      deadline(ms).then(() => 'timeout'),
    ]);
    if (r !== 'up') assert.fail(`${this.label} ${r}: ${this.output.slice(-3000)}`);
  }
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.alive) {
      this.proc.kill(signal);
      await this.exited;
    }
  }
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.proc.kill('SIGTERM');
    if ((await Promise.race([this.exited, deadline(15_000).then(() => 'timeout' as const)])) === 'timeout')
      await this.kill();
  }
  /** The pid of this launcher's child process whose command is `comm` (`postgres`, `nats-server`), if any. */
  childPid(comm: string): number | undefined {
    return childPids(this.proc.pid!).find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm;
      } catch {
        return false;
      }
    });
  }
}

/** The direct children of a process (Linux /proc). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/))
        if (c) out.push(Number(c));
    } catch {
      /* the thread ended meanwhile */
    }
  }
  return out;
}

/** Wait (bounded) until `GET /readyz` answers 200; the body. */
export async function waitReady(
  base: string,
  proc: Proc,
  timeoutMs = 90_000,
): Promise<{ status: string; checks: Record<string, { status: string; error?: string }> }> {
  const end = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < end) {
    if (!proc.alive) assert.fail(`${proc.label} exited before it was ready: ${proc.output.slice(-3000)}`);
    try {
      const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(5_000) });
      const body = (await res.json()) as { status: string; checks: Record<string, { status: string; error?: string }> };
      if (res.status === 200) return body;
      last = JSON.stringify(body);
    } catch (err) {
      last = String(err);
    }
    await sleep(200);
  }
  return assert.fail(`not ready after ${timeoutMs} ms: ${last}\n${proc.output.slice(-3000)}`);
}

/** Every execution of a definition from the read model, following the keyset pages (200 a page). */
export async function allExecutions(
  base: string,
  headers: Record<string, string>,
  template: string,
): Promise<{ execution_id: string; status: string }[]> {
  const out: { execution_id: string; status: string }[] = [];
  let url: string | null = `/api/v1/workflows/executions?template=${encodeURIComponent(template)}&limit=200`;
  while (url) {
    const res: Response = await fetch(`${base}${url}`, { headers, signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { items?: { execution_id: string; status: string }[]; next?: string | null };
    if (res.status !== 200) assert.fail(`GET ${url}: ${res.status} ${JSON.stringify(body).slice(0, 500)}`);
    out.push(...(body.items ?? []));
    url = body.next ?? null;
  }
  return out;
}

export interface Hit {
  readonly key: string;
  /** When the sink had the whole request (Date.now() of this process, like the kill times). */
  readonly at: number;
  readonly id: string;
  readonly payload: { n: string; step: string; prev?: string };
}

/** The webhook receiver: records every request; answers after a short random delay so kills land mid-request. */
export async function startSink(): Promise<{ server: Server; url: string; hits: Hit[] }> {
  const hits: Hit[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString('utf8')));
    req.on('end', () => {
      const parsed = JSON.parse(body) as { id: string; payload: Hit['payload'] };
      hits.push({
        key: String(req.headers['idempotency-key']),
        at: Date.now(),
        id: parsed.id,
        payload: parsed.payload,
      });
      setTimeout(
        () => res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":true}'),
        Math.floor(Math.random() * 150),
      );
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${port}`, hits };
}

/** Wait (bounded: 241 tries, 250 ms apart) until the gateway's MCP health lists `server` up; fail with the last answer. */
export async function waitMcpServerUp(base: string, headers: Record<string, string>, server: string): Promise<void> {
  let last: unknown;
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(`${base}/api/v1/integration/mcp/health`, {
        headers,
        signal: AbortSignal.timeout(10_000),
      });
      last = await res.json();
    } catch (err) {
      last = String(err);
    }
    const servers = ((last as { servers?: unknown })?.servers ?? []) as { server: string; state: string }[];
    if (servers.some((s) => s.server === server && s.state === 'up')) return;
    if (i > 240) assert.fail(`${server} never up: ${JSON.stringify(last)}`);
    await sleep(250);
  }
}
