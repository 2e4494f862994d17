/**
 * The load test: the whole system started as `npm start` does (one launcher process with its own
 * embedded PostgreSQL and nats-server, on free ports, in a scratch data dir), then workflow starts
 * (`revenue_analysis`, `customer_support`) and delegations (`support_response`, `revenue_analysis`)
 * from many concurrent clients, optionally with a SIGKILL of the launcher mid-run and a restart.
 *
 * Every request carries an `Idempotency-Key` and an `x-correlation-id` naming the unit of work; a
 * request that got no answer (connection refused or reset while the process was down) is sent
 * again with the same key and correlation id until it is answered. 429s and 409s of a key still in
 * flight (the first request running, or cut by the kill until its lease runs out) are retried after their
 * `Retry-After`. The outcome is read from the event store itself (never from a read model):
 * - accepted = 202 answers; completed / failed by cause = the terminal event of each stream;
 * - lost = accepted units with no terminal event when the run ends;
 * - duplicated = more than one execution (or task) carrying one unit's correlation id, more than
 *   one terminal event in a stream, or a step that succeeded twice;
 * - latency = from the first send to the terminal event's commit (p50 / p99), and of the 202;
 * - read-model lag: every 100 ms the event store's head is noted; the lag of a sample is how long
 *   the `workflow_executions` projection took to pass it (p50 / p99 / max);
 * - read-your-writes: a GET of the execution right after its 202 (and of a finished one) must
 *   find it, in its current status.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '@switchyard/platform';
import { embeddedDatabaseUrl } from '@switchyard/testing';

export interface LoadOptions {
  readonly workflows: number;
  readonly delegations: number;
  readonly clients: number;
  /** SIGKILL the launcher once this share of the work was sent (0..1), then start it again. */
  readonly killAt?: number;
  /** Give up waiting for the work to finish after this long (default 10 min). */
  readonly completionTimeoutMs?: number;
  readonly log?: (line: string) => void;
  readonly root: string;
}

export interface LoadReport {
  readonly name: string;
  readonly clients: number;
  readonly sent: { workflows: number; delegations: number };
  readonly accepted: { workflows: number; delegations: number };
  /** Final answers that were not 202, by status (after retries of 429 and of no answer). */
  readonly refused: Record<string, number>;
  readonly answers: { '429': number; '504': number; in_flight: number; no_answer: number };
  /** 504s by kind of request. */
  readonly timeouts_by_kind: Record<string, number>;
  readonly completed: { workflows: number; delegations: number };
  readonly failed: Record<string, number>;
  readonly lost: number;
  /** The first lost units with the events their streams hold (what a post-mortem starts from). */
  readonly lost_units: readonly { kind: string; id: string; events: string[] }[];
  /** Where the launchers' output was kept because work was lost (the scratch dir itself is removed). */
  readonly kept_logs?: string;
  /** Units started twice (two executions or tasks for one request), streams ended twice, steps that succeeded twice. */
  readonly duplicated: { units: number; terminal: number; steps: number };
  readonly latency_ms: { accept_p50: number; accept_p99: number; complete_p50: number; complete_p99: number };
  /** Outside the outage of a kill (samples waiting across it are left out). */
  readonly read_model_lag_ms: { samples: number; p50: number; p99: number; max: number };
  readonly read_your_writes: { checked: number; missing: number; stale: number };
  readonly killed_at_ms?: number;
  readonly restarted_in_ms?: number;
  readonly duration_ms: number;
}

const mcpKinds = [
  'FILESYSTEM_BRIDGE',
  'DATABASE',
  'DATABASE_WRITER',
  'GITHUB',
  'FETCH',
  'AUTOMATION',
  'ANALYTICS',
] as const;
const agentNames = [
  'DATA_ANALYST',
  'FINANCIAL_ADVISOR',
  'OPERATIONS_MANAGER',
  'AUTOMATION_SPECIALIST',
  'CONTENT_CREATOR',
  'CUSTOMER_SUCCESS',
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Ports {
  gateway: number;
  pg: number;
  nats: number;
  mcp: Record<(typeof mcpKinds)[number], number>;
  agents: Record<string, number>;
}

interface Launched {
  proc: ChildProcess;
  exited: Promise<void>;
  output: () => string;
}

function launch(root: string, dataDir: string, ports: Ports, adminKey: string): Launched {
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    DATA_DIR: dataDir,
    GATEWAY_PORT: String(ports.gateway),
    GATEWAY_HOST: '127.0.0.1',
    EMBEDDED_PG_PORT: String(ports.pg),
    EMBEDDED_NATS_PORT: String(ports.nats),
    FILESYSTEM_ROOT: path.join(dataDir, 'files'),
    LOG_LEVEL: process.env.LOAD_LOG_LEVEL ?? 'warn',
    SWITCHYARD_ADMIN_KEY: adminKey,
  };
  for (const [name, port] of Object.entries(ports.agents)) env[`AGENT_${name}_PORT`] = String(port);
  for (const k of ['DATABASE_URL', 'NATS_URL', 'TEST_DATABASE_URL', 'TEST_NATS_URL', 'NODE_ENV']) delete env[k];
  for (const [kind, port] of Object.entries(ports.mcp)) {
    env[`MCP_${kind}_PORT`] = String(port);
    // The connectors reach the filesystem and GitHub servers over stdio; their HTTP bridges only move ports.
    if (kind !== 'FILESYSTEM_BRIDGE' && kind !== 'GITHUB') env[`MCP_${kind}_URL`] = `http://127.0.0.1:${port}/mcp`;
  }
  const proc = spawn(process.execPath, [path.join(root, 'apps', 'launcher', 'dist', 'main.js')], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  // Keep the tail only: a long run at info level would otherwise hold every line.
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 400_000) out = out.slice(-200_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return { proc, exited, output: () => out };
}

async function waitReady(base: string, sys: Launched, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (sys.proc.exitCode !== null || sys.proc.signalCode !== null)
      throw new Error(`launcher exited before ready:\n${sys.output().slice(-3000)}`);
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(`launcher not ready after ${timeoutMs} ms:\n${sys.output().slice(-3000)}`);
}

const pct = (xs: number[], q: number): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]!);
};

interface Unit {
  readonly kind: 'workflow' | 'delegation';
  readonly correlationId: string;
  readonly idempotencyKey: string;
  readonly url: string;
  readonly body: unknown;
  firstSentAt?: number;
  acceptedAt?: number;
  id?: string;
  status?: number;
}

function workload(workflows: number, delegations: number): Unit[] {
  const units: Unit[] = [];
  const mk = (kind: Unit['kind'], url: string, body: unknown): Unit => ({
    kind,
    url,
    body,
    correlationId: `load-${randomUUID()}`,
    idempotencyKey: randomUUID(),
  });
  for (let i = 0; i < Math.max(workflows, delegations); i++) {
    if (i < workflows) {
      units.push(
        i % 2 === 0
          ? mk('workflow', '/api/v1/workflows/start/revenue_analysis', {
              timeframe: '30d',
              include_forecasts: false,
              report_path: `reports/load-${i}.md`,
            })
          : mk('workflow', '/api/v1/workflows/start/customer_support', {
              customer_email: 'nobody@nowhere.example',
              query: `Where can I download invoice number ${i} as a PDF?`,
            }),
      );
    }
    if (i < delegations) {
      units.push(
        i % 4 === 3
          ? mk('delegation', '/api/v1/integration/agents/delegate', {
              task_type: 'revenue_analysis',
              context: { timeframe: '12m' },
              priority: 'normal',
            })
          : mk('delegation', '/api/v1/integration/agents/delegate', {
              task_type: 'support_response',
              context: { query: `How do I add ${(i % 7) + 2} seats to our plan?` },
              priority: 'normal',
            }),
      );
    }
  }
  return units;
}

/** Processes whose command line names `dir` (the embedded PostgreSQL and nats-server this run started): their pids. */
function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (cmd.includes(dir)) pids.push(Number(e));
    } catch {
      // gone
    }
  }
  return pids;
}

export async function runLoad(name: string, o: LoadOptions): Promise<LoadReport> {
  const log = o.log ?? ((l: string) => console.log(l));
  mkdirSync(path.join(o.root, '.tmp'), { recursive: true });
  const scratch = mkdtempSync(path.join(o.root, '.tmp', 'load-'));
  chmodSync(scratch, 0o755);
  const dataDir = path.join(scratch, 'data');
  const agents: Record<string, number> = {};
  for (const n of agentNames) agents[n] = await freePort();
  const mcp = {} as Ports['mcp'];
  for (const k of mcpKinds) mcp[k] = await freePort();
  const ports: Ports = { gateway: await freePort(), pg: await freePort(), nats: await freePort(), mcp, agents };
  const base = `http://127.0.0.1:${ports.gateway}`;
  const adminKey = `sy_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;
  let sys = launch(o.root, dataDir, ports, adminKey);
  // The output of every launcher this run started (a restart replaces `sys`).
  const launched: Launched[] = [sys];
  const t0 = Date.now();
  let db: pg.Client | undefined;
  let sampler: NodeJS.Timeout | undefined;
  try {
    await waitReady(base, sys);
    log(`# ${name}: system ready in ${Date.now() - t0} ms`);
    const dbUrl = embeddedDatabaseUrl(dataDir, ports.pg);
    db = new pg.Client({ connectionString: dbUrl });
    await db.connect();

    // Operator keys: the per-key rate limit (default 1200 a minute) is per client identity, so
    // the clients share out several keys as many callers would.
    const keys: string[] = [];
    const wanted = Math.max(1, Math.ceil((o.workflows + o.delegations) / 600));
    for (let i = 0; i < wanted; i++) {
      const r = await fetch(`${base}/api/v1/admin/api-keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `load-${i}`, role: 'operator' }),
      });
      if (r.status !== 201 && r.status !== 200)
        throw new Error(`creating an API key answered ${r.status}: ${await r.text()}`);
      keys.push(((await r.json()) as { key: string }).key);
    }

    // Read-model lag: head position now vs. when the projection passed it.
    const samples: { at: number; head: number; passedAt?: number }[] = [];
    let sampling = false;
    const sample = async () => {
      if (sampling || !db) return;
      sampling = true;
      try {
        // The newest workflow event vs. the newest the read model applied (rows keep their last position).
        const r = await db.query<{ head: string | null; cp: string | null }>(
          `select (select max(position) from eventstore.events where stream_id like 'workflow_execution-%') as head,
                  greatest((select position from read_models.checkpoints where name = 'workflow_executions'),
                           (select max(last_position) from read_models.workflow_executions)) as cp`,
        );
        const now = Date.now();
        const head = Number(r.rows[0]?.head ?? -1);
        const cp = Number(r.rows[0]?.cp ?? -1);
        for (const s of samples) if (s.passedAt === undefined && cp >= s.head) s.passedAt = now;
        samples.push({ at: now, head });
      } catch {
        // the database is away (kill): the samples wait
      } finally {
        sampling = false;
      }
    };
    sampler = setInterval(() => void sample(), 100);

    const units = workload(o.workflows, o.delegations);
    const answers = { '429': 0, '504': 0, in_flight: 0, no_answer: 0 };
    const slow: Record<string, number> = {};
    const refused: Record<string, number> = {};
    const rywChecks: Promise<void>[] = [];
    const ryw = { checked: 0, missing: 0, stale: 0 };
    let next = 0;
    let sent = 0;
    let down: Promise<void> | undefined;
    let killedAt: number | undefined;
    let killedWall: number | undefined;
    let restartedIn: number | undefined;
    const killAfter = o.killAt === undefined ? Infinity : Math.floor(units.length * o.killAt);

    const killAndRestart = async () => {
      killedWall = Date.now();
      killedAt = killedWall - t0;
      log(`# ${name}: SIGKILL of the launcher after ${sent} sends`);
      sys.proc.kill('SIGKILL');
      await sys.exited;
      const t = Date.now();
      sys = launch(o.root, dataDir, ports, adminKey);
      launched.push(sys);
      await waitReady(base, sys);
      restartedIn = Date.now() - t;
      log(`# ${name}: restarted, ready in ${restartedIn} ms`);
    };

    const send = async (u: Unit, key: string): Promise<void> => {
      for (;;) {
        if (down) await down;
        u.firstSentAt ??= Date.now();
        let res: Response;
        try {
          res = await fetch(`${base}${u.url}`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${key}`,
              'content-type': 'application/json',
              'idempotency-key': u.idempotencyKey,
              'x-correlation-id': u.correlationId,
            },
            body: JSON.stringify(u.body),
          });
        } catch {
          // No answer (the process is down or was killed mid-request): same key, again.
          answers.no_answer++;
          await sleep(250);
          continue;
        }
        const text = await res.text();
        if (res.status === 429) {
          answers['429']++;
          await sleep(Math.min(5_000, Number(res.headers.get('retry-after') ?? '1') * 1000));
          continue;
        }
        if (res.status === 409 && /"in_flight":\s*true/.test(text)) {
          // The first request under this key is still running, or was cut by the kill and its
          // lease has not run out yet: the same key again after Retry-After, as the API says.
          answers.in_flight++;
          await sleep(Math.min(5_000, Number(res.headers.get('retry-after') ?? '1') * 1000));
          continue;
        }
        if (res.status === 504) {
          // The command may have been appended: the same key again (honoured once Idempotency-Key is everywhere).
          answers['504']++;
          slow[u.kind] = (slow[u.kind] ?? 0) + 1;
          await sleep(250);
          continue;
        }
        u.status = res.status;
        if (res.status !== 202 && res.status !== 200) {
          refused[String(res.status)] = (refused[String(res.status)] ?? 0) + 1;
          if (Object.values(refused).reduce((a, b) => a + b, 0) <= 3)
            log(`# ${name}: ${u.url} answered ${res.status}: ${text.slice(0, 300)}`);
          return;
        }
        u.acceptedAt = Date.now();
        const body = JSON.parse(text) as { execution_id?: string; task_id?: string };
        u.id = body.execution_id ?? body.task_id;
        // Read your writes: the execution right after its 202.
        if (u.kind === 'workflow' && u.id && ryw.checked < 50) {
          ryw.checked++;
          const id = u.id;
          rywChecks.push(
            fetch(`${base}/api/v1/workflows/executions/${encodeURIComponent(id)}`, {
              headers: { authorization: `Bearer ${key}` },
            })
              .then(async (r) => {
                if (r.status === 404) ryw.missing++;
                await r.arrayBuffer();
              })
              .catch(() => undefined),
          );
        }
        return;
      }
    };

    const clients = Array.from({ length: o.clients }, async (_, c) => {
      const key = keys[c % keys.length]!;
      for (;;) {
        const i = next++;
        if (i >= units.length) return;
        if (i === killAfter && !down) down = killAndRestart().finally(() => (down = undefined));
        sent++;
        await send(units[i]!, key);
      }
    });
    await Promise.all(clients);
    await Promise.all(rywChecks);
    const sendDone = Date.now();
    log(`# ${name}: all ${units.length} sent in ${sendDone - t0} ms; waiting for the work to end`);

    // Wait for every accepted unit's terminal event (from the event store).
    const accepted = units.filter((u) => u.id);
    const streamOf = (u: Unit) => (u.kind === 'workflow' ? `workflow_execution-${u.id}` : `task-${u.id}`);
    const terminal = [
      'WorkflowCompleted',
      'WorkflowFailed',
      'WorkflowCanceled',
      'TaskCompleted',
      'TaskFailed',
      'TaskCanceled',
      'TaskTimedOut',
    ];
    const until = Date.now() + (o.completionTimeoutMs ?? 600_000);
    type Row = {
      stream_id: string;
      type: string;
      data: { error?: { code?: string }; reason?: string };
      recorded_at: Date;
      n: string;
    };
    let ends = new Map<string, Row>();
    for (;;) {
      const r = await db.query<Row>(
        `select stream_id, type, data, recorded_at, count(*) over (partition by stream_id) as n from eventstore.events
         where stream_id = any($1::text[]) and type = any($2::text[])`,
        [accepted.map(streamOf), terminal],
      );
      ends = new Map(r.rows.map((row) => [row.stream_id, row]));
      if (ends.size >= accepted.length || Date.now() > until) break;
      await sleep(500);
    }
    const endedAt = Date.now();
    // Let the read model catch up with the last sample before it is read.
    await sleep(1_500);
    await sample();

    // Duplicates: a terminal event twice in a stream, a step that succeeded twice, or two executions
    // (or tasks) for one unit's correlation id.
    const dupTerminal = await db.query<{ n: string }>(
      `select count(*) as n from (select stream_id from eventstore.events where stream_id = any($1::text[]) and type = any($2::text[]) group by stream_id having count(*) > 1) d`,
      [accepted.map(streamOf), terminal],
    );
    const dupSteps = await db.query<{ n: string }>(
      `select count(*) as n from (select stream_id, data->>'stepId', data->>'itemIndex' from eventstore.events
         where stream_id like 'workflow_execution-%' and type = 'StepSucceeded' and stream_id = any($1::text[])
         group by 1, 2, 3 having count(*) > 1) d`,
      [accepted.filter((u) => u.kind === 'workflow').map(streamOf)],
    );
    // A workflow's own agent steps submit tasks under its correlation id, and sub-workflows start
    // under it too: count top-level executions for workflow units, tasks for delegation units.
    const dupUnits = await db.query<{ n: string }>(
      `select count(*) as n from (select metadata->>'correlationId' from eventstore.events
         where ((type = 'WorkflowStarted' and stream_id not like 'workflow_execution-sub-%' and metadata->>'correlationId' = any($1::text[]))
             or (type = 'TaskSubmitted' and metadata->>'correlationId' = any($2::text[])))
         group by 1 having count(distinct stream_id) > 1) d`,
      [
        units.filter((u) => u.kind === 'workflow').map((u) => u.correlationId),
        units.filter((u) => u.kind === 'delegation').map((u) => u.correlationId),
      ],
    );
    const duplicated = {
      units: Number(dupUnits.rows[0]!.n),
      terminal: Number(dupTerminal.rows[0]!.n),
      steps: Number(dupSteps.rows[0]!.n),
    };

    // Lost work: what its streams hold, and the launchers' output kept where the run's removal of
    // the scratch dir does not reach, so the cause can be looked for after the run.
    const lostUnits = accepted.filter((u) => !ends.has(streamOf(u)));
    const lost_units: { kind: string; id: string; events: string[] }[] = [];
    let kept_logs: string | undefined;
    if (lostUnits.length > 0) {
      for (const u of lostUnits.slice(0, 10)) {
        const ev = await db.query<{ type: string; position: string; recorded_at: Date }>(
          `select type, position, recorded_at from eventstore.events where stream_id = $1 order by revision`,
          [streamOf(u)],
        );
        lost_units.push({
          kind: u.kind,
          id: u.id!,
          events: ev.rows.map((e) => `${e.type}@${e.position} ${e.recorded_at.toISOString()}`),
        });
      }
      kept_logs = mkdtempSync(path.join(os.tmpdir(), 'switchyard-load-lost-'));
      launched.forEach((l, i) => writeFileSync(path.join(kept_logs!, `launcher-${i + 1}.log`), l.output()));
      writeFileSync(path.join(kept_logs, 'lost.json'), JSON.stringify(lost_units, null, 2));
    }

    // Read your writes for ended executions: the detail must say they ended.
    for (const u of accepted.filter((x) => x.kind === 'workflow').slice(0, 20)) {
      const end = ends.get(streamOf(u));
      if (!end) continue;
      const r = await fetch(`${base}/api/v1/workflows/executions/${encodeURIComponent(u.id!)}`, {
        headers: { authorization: `Bearer ${keys[0]}` },
      });
      ryw.checked++;
      if (r.status === 404) ryw.missing++;
      else if (((await r.json()) as { status?: string }).status === 'running') ryw.stale++;
    }

    const completed = { workflows: 0, delegations: 0 };
    const failed: Record<string, number> = {};
    const completeLatency: number[] = [];
    for (const u of accepted) {
      const end = ends.get(streamOf(u));
      if (!end) continue;
      completeLatency.push(end.recorded_at.getTime() - u.firstSentAt!);
      if (end.type === 'WorkflowCompleted' || end.type === 'TaskCompleted') {
        if (u.kind === 'workflow') completed.workflows++;
        else completed.delegations++;
      } else {
        const cause = `${u.kind}:${end.type}:${end.data.error?.code ?? 'none'}`;
        failed[cause] = (failed[cause] ?? 0) + 1;
      }
    }
    // While the process is down nothing can project: a sample waiting across the outage measures
    // the outage, not the read model, and is left out (counted apart).
    const outage =
      killedWall === undefined ? undefined : { from: killedWall, to: killedWall + (restartedIn ?? 0) + 5_000 };
    const across = (x: { at: number; passedAt?: number }) =>
      outage !== undefined && x.at <= outage.to && (x.passedAt ?? Infinity) >= outage.from;
    const lags = samples.filter((x) => x.passedAt !== undefined && !across(x)).map((x) => x.passedAt! - x.at);
    const report: LoadReport = {
      name,
      clients: o.clients,
      sent: { workflows: o.workflows, delegations: o.delegations },
      accepted: {
        workflows: accepted.filter((u) => u.kind === 'workflow').length,
        delegations: accepted.filter((u) => u.kind === 'delegation').length,
      },
      refused,
      answers,
      timeouts_by_kind: slow,
      completed,
      failed,
      lost: accepted.length - ends.size,
      lost_units,
      ...(kept_logs !== undefined && { kept_logs }),
      duplicated,
      latency_ms: {
        accept_p50: pct(
          accepted.map((u) => u.acceptedAt! - u.firstSentAt!),
          0.5,
        ),
        accept_p99: pct(
          accepted.map((u) => u.acceptedAt! - u.firstSentAt!),
          0.99,
        ),
        complete_p50: pct(completeLatency, 0.5),
        complete_p99: pct(completeLatency, 0.99),
      },
      read_model_lag_ms: {
        samples: lags.length,
        p50: pct(lags, 0.5),
        p99: pct(lags, 0.99),
        max: lags.length ? Math.max(...lags) : 0,
      },
      read_your_writes: ryw,
      ...(killedAt !== undefined && { killed_at_ms: killedAt }),
      ...(restartedIn !== undefined && { restarted_in_ms: restartedIn }),
      duration_ms: endedAt - t0,
    };
    return report;
  } finally {
    clearInterval(sampler);
    await db?.end().catch(() => undefined);
    if (sys.proc.exitCode === null && sys.proc.signalCode === null) {
      sys.proc.kill('SIGTERM');
      await Promise.race([sys.exited, sleep(15_000)]);
      if (sys.proc.exitCode === null && sys.proc.signalCode === null) {
        sys.proc.kill('SIGKILL');
        await sys.exited;
      }
    }
    // After a SIGKILL the launcher's PostgreSQL and nats-server outlive it (the restart adopts them): stop them by pid.
    const dirs = [
      scratch,
      ...[...sys.output().matchAll(/"dataDir":"(\/var\/lib\/switchyard\/[0-9a-f]{16})\/[^"]+"/g)].map((m) => m[1]!),
    ];
    for (const dir of dirs) {
      for (const pid of processesUnder(dir)) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
    }
    await sleep(1_000);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}

/** The report as the lines the script prints. */
export function formatReport(r: LoadReport): string {
  const f =
    Object.entries(r.failed)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ') || 'none';
  const refused =
    Object.entries(r.refused)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ') || 'none';
  return [
    `## ${r.name}: ${r.sent.workflows} workflow starts + ${r.sent.delegations} delegations from ${r.clients} clients`,
    `accepted: ${r.accepted.workflows} workflows, ${r.accepted.delegations} delegations; refused: ${refused}`,
    `answers retried: 429=${r.answers['429']}, 409 in flight=${r.answers.in_flight}, 504=${r.answers['504']} (${
      Object.entries(r.timeouts_by_kind)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || '-'
    }), no answer=${r.answers.no_answer}`,
    `completed: ${r.completed.workflows} workflows, ${r.completed.delegations} delegations; failed: ${f}`,
    `lost: ${r.lost}; duplicated: ${r.duplicated.units} units started twice, ${r.duplicated.terminal} streams ended twice, ${r.duplicated.steps} steps succeeded twice`,
    ...r.lost_units.map((u) => `lost ${u.kind} ${u.id}: ${u.events.join(', ') || 'no events'}`),
    ...(r.kept_logs !== undefined ? [`the launchers' output is kept in ${r.kept_logs}`] : []),
    `latency ms: 202 p50 ${r.latency_ms.accept_p50} / p99 ${r.latency_ms.accept_p99}; completion p50 ${r.latency_ms.complete_p50} / p99 ${r.latency_ms.complete_p99}`,
    `read-model lag ms (${r.read_model_lag_ms.samples} samples${r.killed_at_ms !== undefined ? ', outside the restart' : ''}): p50 ${r.read_model_lag_ms.p50} / p99 ${r.read_model_lag_ms.p99} / max ${r.read_model_lag_ms.max}`,
    `read your writes: ${r.read_your_writes.checked} GETs, ${r.read_your_writes.missing} missing, ${r.read_your_writes.stale} stale`,
    ...(r.killed_at_ms !== undefined
      ? [`SIGKILL at ${r.killed_at_ms} ms, restarted and ready in ${r.restarted_in_ms} ms`]
      : []),
    `duration: ${r.duration_ms} ms`,
  ].join('\n');
}
