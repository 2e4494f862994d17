/**
 * The CLI against a hostile or broken gateway: a real local HTTP server (port 0) that sends huge
 * or endless answers, endless event streams, redirects, and odd error bodies. The CLI runs in a
 * child process where what is checked is what the user sees (stderr, exit code).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Api, requestHeaders } from './client.js';
import { resolveConnection } from './config.js';
import { CliError, EXIT } from './errors.js';
import { liveEvents } from './sse.js';

const main = fileURLToPath(new URL('./main.js', import.meta.url));
const MiB = 1024 * 1024;
const KEY = 'sy_0123456789abcdef_SECRETPART';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A server on a free loopback port; `requests` records every request it got (method, path, body). */
async function serve(handler: Handler): Promise<{ url: string; server: Server; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => requests.push(`${req.method} ${req.url} ${body}`));
    res.on('error', () => undefined);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, requests };
}

/** Writes 1 MiB chunks for as long as the client reads (an endless answer). */
function endless(res: ServerResponse, chunk: string): void {
  const pump = () => {
    while (!res.destroyed) if (!res.write(chunk)) return void res.once('drain', pump);
  };
  pump();
}

/** Runs the CLI; resolves with its exit code and output (an empty config home: no saved login). */
function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'sy-cli-home-'));
    const child = spawn(process.execPath, [main, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: home, XDG_CONFIG_HOME: home, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => {
      rmSync(home, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
  });
}

const api = (url: string, maxAnswerBytes?: number) =>
  new Api({ url, source: { url: 'flag', key: 'none' }, ...(maxAnswerBytes ? { maxAnswerBytes } : {}) });

describe('a huge or endless answer', () => {
  let gw: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    gw = await serve((req, res) => {
      if (req.url?.startsWith('/declared')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(40 * MiB) });
        return void res.write('{"templates":[');
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"templates":["');
      endless(res, 'x'.repeat(MiB));
    });
  });
  after(() => void gw.server.close());

  it('stops reading past the limit and says so on one line, without a stack trace (exit 3)', async () => {
    const started = Date.now();
    const r = await cli(['--url', gw.url, 'workflow', 'templates'], { SWITCHYARD_MAX_ANSWER_MB: '2' });
    assert.equal(r.code, EXIT.server, r.stderr);
    assert.equal(
      r.stderr,
      'error: the answer to GET /api/v1/workflows/templates is larger than 2 MiB; stopped reading it ' +
        '(a broken gateway or proxy? SWITCHYARD_MAX_ANSWER_MB raises the limit)\n',
    );
    assert.ok(Date.now() - started < 20_000, 'not read to a timeout');
  });

  it('the default limit is 32 MiB; a Content-Length above the limit is refused before reading', async () => {
    await assert.rejects(
      api(gw.url).raw('/endless'),
      (e: unknown) => e instanceof CliError && /32 MiB/.test(e.message),
    );
    await assert.rejects(
      api(gw.url, MiB).raw('/declared'),
      (e: unknown) => e instanceof CliError && e.exitCode === EXIT.server && /larger than 1 MiB/.test(e.message),
    );
  });

  it('SWITCHYARD_MAX_ANSWER_MB is checked when read', () => {
    assert.equal(resolveConnection({}, { SWITCHYARD_MAX_ANSWER_MB: '5' }, '/nonexistent').maxAnswerBytes, 5 * MiB);
    for (const bad of ['0', '-1', '1.5', 'lots'])
      assert.throws(
        () => resolveConnection({}, { SWITCHYARD_MAX_ANSWER_MB: bad }, '/nonexistent'),
        (e: unknown) =>
          e instanceof CliError && e.exitCode === EXIT.usage && /SWITCHYARD_MAX_ANSWER_MB/.test(e.message),
      );
  });

  it('an answer that never completes ends at the timeout with a one-line error', async () => {
    const slow = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"templates":[');
      const t = setInterval(() => res.write(' '), 100);
      res.on('close', () => clearInterval(t));
    });
    try {
      await assert.rejects(
        api(slow.url).raw('/api/v1/workflows/templates', { timeoutMs: 500 }),
        (e: unknown) =>
          e instanceof CliError &&
          /no complete answer to GET \/api\/v1\/workflows\/templates within 0.5 s/.test(e.message),
      );
    } finally {
      slow.server.closeAllConnections();
      slow.server.close();
    }
  });
});

describe('the live event feed from a hostile gateway', () => {
  const event = (position: number) =>
    JSON.stringify({
      id: `e${position}`,
      streamId: 's',
      type: 'T',
      revision: position,
      position,
      recordedAt: '2026-01-01T00:00:00.000Z',
      data: {},
      metadata: {},
    });
  let gw: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    gw = await serve((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (req.url?.includes('type=noblank')) return endless(res, `data: ${'y'.repeat(MiB)}\n`);
      if (req.url?.includes('type=noline')) return endless(res, 'z'.repeat(MiB));
      if (req.url?.includes('type=silent')) return void res.write(': hello\n\n');
      // Two events split across writes at awkward places, CRLF line ends, a comment and a non-JSON message.
      const text = `: heartbeat\r\n\r\ndata: ${event(1)}\r\n\r\ndata: not json\n\nid: 2\ndata: ${event(2)}\n\n`;
      const cut = [7, 20, 21, 60, text.length - 1];
      let from = 0;
      for (const at of cut) res.write(text.slice(from, (from = at)));
      res.end(text.slice(from));
    });
  });
  after(() => {
    gw.server.closeAllConnections();
    gw.server.close();
  });

  it('reads events split across chunks (CRLF, comments, non-JSON skipped)', async () => {
    const got: number[] = [];
    for await (const e of liveEvents(api(gw.url), {})) got.push(e.position);
    assert.deepEqual(got, [1, 2]);
  });

  it('a message or a line longer than the limit ends the feed with an error (memory stays bounded)', async () => {
    for (const type of ['noblank', 'noline'])
      await assert.rejects(
        (async () => {
          for await (const _ of liveEvents(api(gw.url, 2 * MiB), { types: [type] })) void _;
        })(),
        (e: unknown) => e instanceof CliError && /one message\) is larger than 2 MiB/.test(e.message),
        type,
      );
  });

  it('a feed that sends nothing, not even a heartbeat, for the idle time is a lost connection', async () => {
    await assert.rejects(
      (async () => {
        for await (const _ of liveEvents(api(gw.url), { types: ['silent'], idleMs: 300 })) void _;
      })(),
      (e: unknown) => e instanceof CliError && e.exitCode === EXIT.server && /sent nothing for 0.3 s/.test(e.message),
    );
  });
});

describe('workflow watch --timeout', () => {
  it('stops watching when the time is up (exit 4, the execution goes on)', async () => {
    const gw = await serve((req, res) => {
      if (req.url?.startsWith('/api/v1/events/stream')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const t = setInterval(() => res.write(': heartbeat\n\n'), 100);
        return void res.on('close', () => clearInterval(t));
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          execution_id: 'x1',
          next: null,
          events: [
            {
              id: 'e1',
              streamId: 'workflow_execution-x1',
              type: 'WorkflowStarted',
              revision: 0,
              position: 1,
              recordedAt: '2026-01-01T00:00:00.000Z',
              data: { definition: { id: 'd', name: 'demo', steps: [{ id: 'a' }] } },
              metadata: {},
            },
          ],
        }),
      );
    });
    try {
      const r = await cli(['--url', gw.url, 'workflow', 'watch', 'x1', '--timeout', '1']);
      assert.equal(r.code, EXIT.failed, r.stderr);
      assert.match(r.stderr, /^error: --timeout 1 s passed before the execution ended \(it goes on/);
    } finally {
      gw.server.closeAllConnections();
      gw.server.close();
    }
  });
});

describe('workflow retry --wait', () => {
  it('follows the new run: the steps of the run before the retry are not drawn again as if they ran', async () => {
    let revision = 0;
    const event = (type: string, data: Record<string, unknown>, at: string) => ({
      id: `e${revision}`,
      streamId: 'workflow_execution-x2',
      type,
      revision: revision,
      position: 100 + revision++,
      recordedAt: at,
      data,
      metadata: {},
    });
    const t = (s: number) => `2026-01-01T00:00:${String(s).padStart(2, '0')}.000Z`;
    // Run 1: `read` succeeded, `parse` failed; the retry runs `parse` again and the execution completes.
    const events = [
      event(
        'WorkflowStarted',
        { definition: { id: 'd', name: 'demo', steps: [{ id: 'read' }, { id: 'parse' }] } },
        t(0),
      ),
      event('StepScheduled', { stepId: 'read', attempt: 1, scheduledAt: t(0) }, t(0)),
      event('StepSucceeded', { stepId: 'read', attempt: 1, at: t(1) }, t(1)),
      event('StepScheduled', { stepId: 'parse', attempt: 1, scheduledAt: t(1) }, t(1)),
      event(
        'StepFailed',
        { stepId: 'parse', attempt: 1, final: true, error: { code: 'tool_error', message: 'bad' }, at: t(2) },
        t(2),
      ),
      event('WorkflowFailed', { reason: 'parse failed', failedAt: t(2) }, t(2)),
      event('ExecutionRetried', { steps: ['parse'] }, t(10)),
      event('StepScheduled', { stepId: 'parse', attempt: 2, scheduledAt: t(10) }, t(10)),
      event('StepSucceeded', { stepId: 'parse', attempt: 2, at: t(11) }, t(11)),
      event('WorkflowCompleted', { completedAt: t(11) }, t(11)),
    ];
    const gw = await serve((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.method === 'POST')
        return void res.end(JSON.stringify({ execution_id: 'x2', status: 'running', retried_steps: ['parse'] }));
      res.end(JSON.stringify({ execution_id: 'x2', next: null, events }));
    });
    try {
      const r = await cli(['--url', gw.url, 'workflow', 'retry', 'x2', '--wait']);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines[0], 'demo x2 retried', r.stdout);
      assert.ok(!/read/.test(r.stdout.split('\n').slice(0, -3).join('\n')), `no line for the kept step:\n${r.stdout}`);
      assert.ok(!/✘ parse/.test(r.stdout), `the first run's failure is not drawn:\n${r.stdout}`);
      assert.match(r.stdout, /^▸ parse +running/m);
      assert.match(r.stdout, /^✔ parse +succeeded/m);
      assert.match(r.stdout, /^completed$/m);
    } finally {
      gw.server.closeAllConnections();
      gw.server.close();
    }
  });
});

describe('whole-number options', () => {
  it('take decimal digits only: blank, hexadecimal, binary and exponent values are a usage error, not revision 0 or 16', async () => {
    for (const [args, name] of [
      [['workflow', 'history', 'x1', '--at', ' '], '--at'],
      [['workflow', 'history', 'x1', '--at', '0x10'], '--at'],
      [['workflow', 'history', 'x1', '--at', '1e1'], '--at'],
      [['workflow', 'list', '--limit', '0b11'], '--limit'],
      [['workflow', 'list', '--limit', '0'], '--limit'],
    ] as const) {
      const r = await cli(['--url', 'http://127.0.0.1:1', ...args]);
      assert.equal(r.code, EXIT.usage, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${name} must be a whole number`));
    }
  });
});

describe('redirects', () => {
  it('are not followed: the body goes nowhere else and the error names where it pointed', async () => {
    const other = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"execution_id":"forged","status":"completed","definition_id":"d"}');
    });
    const gw = await serve((_req, res) => res.writeHead(307, { location: `${other.url}/somewhere` }).end());
    try {
      for (const code of [301, 302, 307, 308]) {
        const redirecting = await serve((_req, res) => res.writeHead(code, { location: `${other.url}/x` }).end());
        try {
          const r = await cli(['--url', redirecting.url, 'workflow', 'start', 'demo', '--input', '{"sql":"secret"}']);
          assert.equal(r.code, EXIT.server, r.stderr);
          assert.equal(r.stdout, '', 'nothing forged printed');
          assert.match(
            r.stderr,
            new RegExp(
              `^error: the gateway at ${redirecting.url} answered ${code}, a redirect to ${other.url}; not followed`,
            ),
          );
        } finally {
          redirecting.server.close();
        }
      }
      await assert.rejects(
        (async () => {
          for await (const _ of liveEvents(api(gw.url), {})) void _;
        })(),
        (e: unknown) => e instanceof CliError && new RegExp(`redirect to ${other.url};`).test(e.message),
      );
      assert.deepEqual(other.requests, [], 'the other host got nothing');
    } finally {
      gw.server.close();
      other.server.close();
    }
  });
});

describe('the API key and request headers', () => {
  it('a key with a line break is refused where it is read, showing only its id (exit 1)', async () => {
    assert.throws(
      () => resolveConnection({}, { SWITCHYARD_KEY: `${KEY}\ntail` }, '/nonexistent'),
      (e: unknown) =>
        e instanceof CliError &&
        e.exitCode === EXIT.usage &&
        !/SECRET|tail/.test(e.message) &&
        e.message.startsWith('the API key from SWITCHYARD_KEY (sy_0123456789abcdef_…) has a line break'),
    );
    for (const bad of [`${KEY} x`, `${KEY}\u0000`, `${KEY}é`, 'x\ry'])
      assert.throws(() => resolveConnection({ key: bad }, {}, '/nonexistent'), /the API key from --key /);
    // Surrounding whitespace (a file's final newline, CRLF) is trimmed, not refused.
    assert.equal(resolveConnection({}, { SWITCHYARD_KEY: ` ${KEY}\r\n` }, '/nonexistent').key, KEY);
    const r = await cli(['--url', 'http://127.0.0.1:9', 'workflow', 'templates'], { SWITCHYARD_KEY: `${KEY}\ntail` });
    assert.equal(r.code, EXIT.usage);
    assert.doesNotMatch(r.stderr, /SECRET|tail|reach/);
  });

  it('a header value HTTP does not allow is named by its header, never shown', () => {
    assert.throws(
      () => requestHeaders({ accept: 'application/json', 'idempotency-key': 'SECRET\nx' }),
      (e: unknown) => e instanceof CliError && /idempotency-key header/.test(e.message) && !/SECRET/.test(e.message),
    );
  });
});

describe('odd error bodies', () => {
  it('the HTTP status is shown, not the one a body claims; doctor prints a body that is not a readiness document as JSON', async () => {
    const gw = await serve((req, res) => {
      if (req.url === '/livez') return void res.writeHead(200).end('ok');
      res.writeHead(500, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify(req.url === '/readyz' ? { unexpected: { nested: 1 } } : { title: 'Boom', status: 400 }));
    });
    try {
      const r = await cli(['--url', gw.url, 'workflow', 'templates']);
      assert.equal(r.code, EXIT.server);
      assert.match(r.stderr, /^error: 500 Boom\n/);
      const d = await cli(['--url', gw.url, 'doctor']);
      assert.match(d.stdout, /ready +500: \{"unexpected":\{"nested":1\}\}/);
      assert.doesNotMatch(d.stdout, /object Object/);
    } finally {
      gw.server.close();
    }
  });
});
