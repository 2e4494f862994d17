import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { apiError } from './client.js';
import { PassThrough } from 'node:stream';
import { cleartextOverNetwork, configPath, resolveConnection, writeSavedConfig } from './config.js';
import { askHidden } from './input.js';
import { CliError, describeError, EXIT } from './errors.js';
import type { EventJson } from './sse.js';
import { ExecutionView, renderView, stepLine } from './workflow-view.js';
import { cutToWidth, dim, green, printLine, red, table, terminalSafe, yellow } from './output.js';

describe('resolveConnection', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sy-cli-'));
  const file = path.join(dir, 'switchyard', 'config.json');
  writeSavedConfig({ url: 'http://127.0.0.4:1', key: 'file-key' }, file);

  it('takes the flag, then the environment, then the config file, then the default URL', () => {
    assert.deepEqual(
      resolveConnection(
        { url: 'http://127.0.0.2:1', key: 'flag-key' },
        { SWITCHYARD_URL: 'http://127.0.0.3:1', SWITCHYARD_KEY: 'env-key' },
        file,
      ),
      {
        url: 'http://127.0.0.2:1',
        key: 'flag-key',
        source: { url: 'flag', key: 'flag' },
      },
    );
    assert.equal(
      resolveConnection({}, { SWITCHYARD_URL: 'http://127.0.0.3:1', SWITCHYARD_KEY: 'env-key' }, file).key,
      'env-key',
    );
    assert.deepEqual(resolveConnection({}, {}, file).source, { url: 'config', key: 'config' });
    const none = resolveConnection({}, {}, path.join(dir, 'missing.json'));
    assert.equal(none.url, 'http://127.0.0.1:10000');
    assert.equal(none.key, undefined);
  });

  it('refuses a URL that is not http(s)', () => {
    assert.throws(
      () => resolveConnection({ url: 'ftp://x' }, {}, file),
      (e: unknown) => e instanceof CliError && e.exitCode === EXIT.usage,
    );
  });

  it('does not send a key unencrypted to another machine: https, loopback, --allow-http or SWITCHYARD_ALLOW_HTTP=1', () => {
    const refused = (e: unknown) =>
      e instanceof CliError &&
      e.exitCode === EXIT.usage &&
      /unencrypted to http:\/\/gw\.example:10000.*--allow-http/.test(e.message);
    const remote = 'http://gw.example:10000';
    assert.throws(() => resolveConnection({ url: remote, key: 'k' }, {}, file), refused);
    assert.throws(() => resolveConnection({}, { SWITCHYARD_URL: remote, SWITCHYARD_KEY: 'k' }, file), refused);
    assert.equal(resolveConnection({ url: remote }, {}, file).key, undefined, 'the saved key is not sent there either');
    assert.throws(() => resolveConnection({ url: 'http://10.0.0.5:10000', key: 'k' }, {}, file));
    assert.equal(resolveConnection({ url: remote, key: 'k', allowHttp: true }, {}, file).key, 'k');
    assert.equal(resolveConnection({ url: remote, key: 'k' }, { SWITCHYARD_ALLOW_HTTP: '1' }, file).key, 'k');
    assert.equal(resolveConnection({ url: 'https://gw.example', key: 'k' }, {}, file).key, 'k');
    for (const local of [
      'http://127.0.0.1:1',
      'http://127.8.9.10:1',
      'http://localhost:1',
      'http://LOCALHOST:1',
      'http://[::1]:1',
    ])
      assert.equal(cleartextOverNetwork(local), false, local);
    // A name under .localhost is resolved by DNS unless the resolver says otherwise: not trusted.
    for (const remoteUrl of [
      'http://gw.example',
      'http://10.0.0.5',
      'http://[::2]:1',
      'http://127.0.0.1.evil.example',
      'http://ui.localhost:1',
      'http://0.0.0.0:1',
    ])
      assert.equal(cleartextOverNetwork(remoteUrl), true, remoteUrl);
    // No key, nothing secret goes out: allowed.
    assert.equal(resolveConnection({ url: remote }, {}, path.join(dir, 'missing.json')).key, undefined);
  });

  it('sends the saved key only to the gateway it was saved for (a URL from a flag or the environment gets none)', () => {
    for (const c of [
      resolveConnection({ url: 'http://127.0.0.1:31759' }, {}, file),
      resolveConnection({}, { SWITCHYARD_URL: 'http://127.0.0.1:31759' }, file),
    ]) {
      assert.equal(c.key, undefined);
      assert.equal(c.source.key, 'none');
      assert.equal(c.savedKeyFor, 'http://127.0.0.4:1');
    }
    assert.equal(resolveConnection({ url: 'http://127.0.0.4:1/' }, {}, file).key, 'file-key', 'the same gateway');
    assert.equal(resolveConnection({ url: 'http://127.0.0.1:31759', key: 'k' }, {}, file).key, 'k');
  });

  it('--key - reads the key from the first line of stdin; nothing there is a usage error', () => {
    const from = (stdin: string) => resolveConnection({ key: '-' }, {}, file, () => stdin);
    assert.equal(from('sy_abc\n').key, 'sy_abc');
    assert.equal(from('  sy_abc  \r\nrest\n').key, 'sy_abc');
    assert.equal(from('sy_abc\n').source.key, 'flag');
    assert.throws(
      () => from('\n'),
      (e: unknown) => e instanceof CliError && e.exitCode === EXIT.usage && /stdin/.test(e.message),
    );
    // Only the flag reads stdin: a key "-" from the environment is a key like any other.
    assert.equal(resolveConnection({}, { SWITCHYARD_KEY: '-' }, file, () => 'not read').key, '-');
  });

  it('the file lives under XDG_CONFIG_HOME, else ~/.config', () => {
    assert.equal(configPath({ XDG_CONFIG_HOME: '/x/cfg' }), '/x/cfg/switchyard/config.json');
    assert.equal(configPath({ HOME: '/home/a' }), '/home/a/.config/switchyard/config.json');
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('writeSavedConfig', () => {
  it('replaces a symlink at the config path instead of writing the key through it (mode 0600)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sy-cli-link-'));
    try {
      const target = path.join(dir, 'elsewhere.txt');
      writeFileSync(target, 'not yours\n');
      const file = path.join(dir, 'switchyard', 'config.json');
      mkdirSync(path.dirname(file));
      symlinkSync(target, file);
      writeSavedConfig({ url: 'http://127.0.0.1:1', key: 'sy_k' }, file);
      assert.equal(readFileSync(target, 'utf8'), 'not yours\n');
      assert.ok(lstatSync(file).isFile(), 'a file of its own now');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { url: 'http://127.0.0.1:1', key: 'sy_k' });
      writeSavedConfig({ url: 'http://127.0.0.1:2', key: 'sy_k' }, file);
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).url, 'http://127.0.0.1:2', 'and again over its own file');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('askHidden', () => {
  /** A terminal's stdin: raw mode switched as asked, bytes as typed. */
  const terminal = () => {
    const input = new PassThrough() as PassThrough & { setRawMode(on: boolean): void; raw: boolean[] };
    input.raw = [];
    input.setRawMode = (on) => void input.raw.push(on);
    return input;
  };

  it('reads to Enter without echo, Backspace removes a character, raw mode is switched off after', async () => {
    const input = terminal();
    const asked = askHidden('key: ', input as unknown as NodeJS.ReadStream);
    input.write('sy_ab\u007fc');
    input.write('d\r');
    assert.equal(await asked, 'sy_acd');
    assert.deepEqual(input.raw, [true, false]);
  });

  it('Ctrl-C gives up with a usage error', async () => {
    const input = terminal();
    const asked = askHidden('key: ', input as unknown as NodeJS.ReadStream);
    input.write('sy_\u0003');
    await assert.rejects(asked, (e: unknown) => e instanceof CliError && e.exitCode === EXIT.usage);
    assert.deepEqual(input.raw, [true, false]);
  });
});

describe('apiError', () => {
  it('a 4xx problem exits 2 and prints title, detail and correlation id; a 5xx exits 3', () => {
    const e = apiError(401, {
      title: 'Unauthorized',
      status: 401,
      detail: 'the API key is invalid or revoked',
      correlationId: 'c-1',
    });
    assert.equal(e.exitCode, EXIT.api);
    assert.equal(
      describeError(e),
      'error: 401 Unauthorized\n  the API key is invalid or revoked\n  correlation id: c-1',
    );
    assert.equal(apiError(503, { title: 'Service unavailable' }).exitCode, EXIT.server);
    const h = new Headers({ 'x-correlation-id': 'from-header' });
    assert.match(describeError(apiError(502, 'Bad gateway', h)), /HTTP 502[\s\S]*correlation id: from-header/);
  });

  it('shows the HTTP status, not the one the body claims (a 500 whose body says 400 is a 500, exit 3)', () => {
    const e = apiError(500, { title: 'Boom', status: 400 });
    assert.equal(e.exitCode, EXIT.server);
    assert.equal(describeError(e), 'error: 500 Boom');
  });
});

describe('ExecutionView', () => {
  let position = 0;
  const ev = (type: string, data: Record<string, unknown>, at = '2026-01-01T00:00:00.000Z'): EventJson => ({
    id: String(position),
    streamId: 'workflow_execution-x',
    type,
    revision: position,
    position: position++,
    recordedAt: at,
    data,
    metadata: {},
  });

  it('folds steps: running, a retry, success with its duration, skipped, the end', () => {
    const v = new ExecutionView('x');
    v.apply(
      ev('WorkflowStarted', {
        startedAt: '2026-01-01T00:00:00.000Z',
        definition: { id: 'd', name: 'Demo', steps: [{ id: 'a' }, { id: 'b' }] },
      }),
    );
    assert.deepEqual([...v.steps.keys()], ['a', 'b']);
    assert.deepEqual(
      v.apply(ev('StepScheduled', { stepId: 'a', attempt: 1, scheduledAt: '2026-01-01T00:00:00.000Z' })),
      ['a'],
    );
    assert.deepEqual(v.apply(ev('StepRetryScheduled', { stepId: 'a', attempt: 1 })), ['a']);
    v.apply(ev('StepScheduled', { stepId: 'a', attempt: 2, scheduledAt: '2026-01-01T00:00:01.000Z' }));
    v.apply(ev('StepSucceeded', { stepId: 'a', attempt: 2, at: '2026-01-01T00:00:01.500Z' }));
    v.apply(ev('StepSkipped', { stepId: 'b', reason: 'condition_false', at: '2026-01-01T00:00:01.500Z' }));
    assert.equal(stepLine(v.steps.get('a')!, 0, undefined, 4), '✔ a     succeeded     1.5s  1 retry');
    assert.equal(stepLine(v.steps.get('b')!, 0, undefined, 4), '- b     skipped             (condition_false)');
    v.apply(ev('WorkflowCompleted', { completedAt: '2026-01-01T00:00:02.000Z', outputs: {} }));
    assert.equal(v.status, 'completed');
    assert.ok(v.ended);
    assert.equal(v.lastPosition, position - 1);
  });

  it('a failed execution marks the open steps canceled and keeps the error', () => {
    const v = new ExecutionView('y');
    v.apply(ev('WorkflowStarted', { definition: { id: 'd', steps: [{ id: 'a' }, { id: 'b' }] } }));
    v.apply(ev('StepScheduled', { stepId: 'a', attempt: 1 }));
    v.apply(ev('StepFailed', { stepId: 'a', attempt: 1, final: true, error: { code: 'x', message: 'boom' } }));
    v.apply(ev('WorkflowFailed', { reason: 'step a failed', error: { message: 'boom' } }));
    assert.equal(v.status, 'failed');
    assert.equal(v.steps.get('a')!.state, 'failed');
    assert.equal(v.steps.get('b')!.state, 'canceled');
    assert.equal(v.error, 'boom');
  });

  it('a for_each step expanded again by a retry counts the items it kept as done', () => {
    const v = new ExecutionView('k');
    v.apply(ev('WorkflowStarted', { definition: { id: 'd', steps: [{ id: 'each' }] } }));
    v.apply(ev('StepExpanded', { stepId: 'each', items: ['a', 'b', 'c'] }));
    assert.deepEqual(v.steps.get('each')!.items, { done: 0, total: 3 });
    v.apply(ev('ExecutionRetried', { steps: ['each'], reason: 'fixed' }));
    v.apply(ev('StepExpanded', { stepId: 'each', items: ['a', 'b', 'c'], keptItems: [0, 1] }));
    assert.deepEqual(v.steps.get('each')!.items, { done: 2, total: 3 }, 'the two items of the first run');
    v.apply(ev('StepSucceeded', { stepId: 'each', itemIndex: 2, attempt: 1 }));
    assert.deepEqual(v.steps.get('each')!.items, { done: 3, total: 3 });
  });

  it('a retry runs the named steps again (a line for each), a fork shows copied steps as done', () => {
    const v = new ExecutionView('z');
    v.apply(ev('WorkflowStarted', { definition: { id: 'd', steps: [{ id: 'a' }, { id: 'b' }] } }));
    assert.deepEqual(
      v.apply(
        ev('StepOutputCopied', { stepId: 'a', fromExecutionId: 'y', revision: 3, at: '2026-01-01T00:00:00.000Z' }),
      ),
      ['a'],
    );
    assert.equal(v.steps.get('a')!.state, 'succeeded');
    v.apply(ev('StepScheduled', { stepId: 'b', attempt: 1 }));
    v.apply(ev('StepFailed', { stepId: 'b', attempt: 1, final: true, error: { message: 'boom' } }));
    v.apply(ev('WorkflowFailed', { reason: 'step b failed', error: { message: 'boom' } }));
    v.apply(ev('ExecutionRetried', { steps: ['b'], reason: 'fixed' }));
    assert.equal(v.status, 'running');
    assert.equal(v.ended, false);
    assert.equal(v.error, undefined);
    assert.deepEqual(v.apply(ev('StepScheduled', { stepId: 'b', attempt: 2 })), ['b']);
    v.apply(ev('StepSucceeded', { stepId: 'b', attempt: 2 }));
    v.apply(ev('WorkflowCompleted', { outputs: {} }));
    assert.equal(v.status, 'completed');
    assert.equal(v.steps.get('a')!.state, 'succeeded');
  });

  it('a wait step shows running while it waits, then succeeded when its signal comes', () => {
    const v = new ExecutionView('w');
    v.apply(ev('WorkflowStarted', { definition: { id: 'd', steps: [{ id: 'approval' }] } }));
    assert.deepEqual(
      v.apply(
        ev('WaitStarted', {
          stepId: 'approval',
          signal: 'approve',
          startedAt: '2026-01-01T00:00:00.000Z',
          timeoutAt: '2026-01-01T01:00:00.000Z',
        }),
      ),
      ['approval'],
    );
    assert.equal(v.steps.get('approval')!.state, 'running');
    v.apply(
      ev('StepSucceeded', {
        stepId: 'approval',
        attempt: 0,
        output: { approved: true },
        at: '2026-01-01T00:00:02.000Z',
      }),
    );
    assert.equal(stepLine(v.steps.get('approval')!, 0, undefined, 8), '✔ approval  succeeded     2.0s');
  });
});

/* eslint-disable no-control-regex -- these specs are about control characters */
describe('terminalSafe', () => {
  it('shows control characters from the server as escapes instead of letting the terminal act on them', () => {
    const hostile =
      'boom \u001b]0;PWNED\u001b\\ \u001b[2J\u001b[H\u001b[31mFAKE: all good\u001b[0m\r\u009b2K \u202eevil\u2066 bell\u0007 del\u007f';
    const shown = terminalSafe(hostile);
    // Nothing from the server acts on the terminal, its colours included (they could pose as the CLI's own ✔ or error).
    assert.doesNotMatch(shown, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e\u2066]/);
    assert.equal(
      shown,
      'boom \\u001b]0;PWNED\\u001b\\ \\u001b[2J\\u001b[H\\u001b[31mFAKE: all good\\u001b[0m\\u000d\\u009b2K \\u202eevil\\u2066 bell\\u0007 del\\u007f',
    );
  });

  it("writes only the CLI's own colours as colours, around text whose controls are shown", () => {
    const tty = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY');
    const noColor = process.env.NO_COLOR;
    Object.defineProperty(process.stdout, 'isTTY', { value: true, configurable: true });
    delete process.env.NO_COLOR;
    try {
      const line = `a\tb\n${green('ok')} ${red('failed \u001b[32m✔ forged')} ${yellow('wait')} ${dim('-')}`;
      assert.equal(
        terminalSafe(line),
        'a\tb\n\u001b[32mok\u001b[0m \u001b[31mfailed \\u001b[32m✔ forged\u001b[0m \u001b[33mwait\u001b[0m \u001b[2m-\u001b[0m',
      );
    } finally {
      if (tty) Object.defineProperty(process.stdout, 'isTTY', tty);
      else delete (process.stdout as { isTTY?: boolean }).isTTY;
      if (noColor !== undefined) process.env.NO_COLOR = noColor;
    }
  });

  it('keeps a table cell on one line (a newline or tab in a value would forge a row or a column)', () => {
    assert.equal(table([['a\nFAKE ROW', 'x\ty']], ['name', 'v']), 'name         v\na\\nFAKE ROW  x\\ty');
  });

  it('keeps JSON text the same JSON value (C1 and bidirectional controls escaped as JSON escapes)', () => {
    const value = { name: 'x\u009b2Jy', note: 'a\u202eb', esc: '\u001b[2J' };
    const text = terminalSafe(JSON.stringify(value, null, 2));
    assert.doesNotMatch(text, /[\u001b\u009b\u202e]/);
    assert.deepEqual(JSON.parse(text), value);
  });

  it("no server text prints a line of its own (a name's or an error's newline would forge a step or a status)", () => {
    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = (chunk: string) => (written.push(chunk), true);
    try {
      const view = new ExecutionView('x1');
      view.apply({
        id: 'e',
        streamId: 'workflow_execution-x1',
        type: 'WorkflowStarted',
        revision: 0,
        position: 1,
        recordedAt: '2026-01-01T00:00:00.000Z',
        data: {
          definition: { name: 'evil\n✔ fake_step  succeeded 1.0s\ncompleted', steps: [{ id: 'a' }] },
          startedAt: '2026-01-01T00:00:00.000Z',
        },
        metadata: {},
      });
      for (const line of renderView(view, Date.now())) printLine(line);
      printLine(`failed: nope\n✔ forged  succeeded 0.1s\tcol`);
    } finally {
      process.stdout.write = write;
    }
    const out = written.join('');
    assert.equal(out.split('\n').length - 1, written.length, 'one line per printLine');
    assert.doesNotMatch(out, /^✔ (fake_step|forged)/m);
    assert.match(out, /evil\\n✔ fake_step/);
    assert.match(out, /0\.1s\\tcol/);
    const e = apiError(400, { title: 'Bad', detail: 'line one\n  - forged: field error', status: 400 });
    assert.equal(describeError(e).split('\n').length, 2, describeError(e));
  });

  it('cuts a redrawn line to the terminal width (a wrapped line would throw the redraw off)', () => {
    assert.equal(cutToWidth('abcdef', 10), 'abcdef');
    assert.equal(cutToWidth('abcdefghijkl', 6), 'abcde…');
    assert.equal(cutToWidth('表表表表', 6), '表表…', 'wide characters count two');
    assert.equal(cutToWidth('⌚✅❌⭐', 6), '⌚✅…', 'emoji count two');
    assert.equal(cutToWidth('a\u001bbcdef', 8), 'a\u001b…', 'a control counts as its escape (six)');
  });

  it('an error from the server is printed with its controls shown', () => {
    const e = apiError(400, { title: 'Bad \u001b[2Jrequest', detail: 'tool said \u001b]0;PWNED\u0007', status: 400 });
    assert.match(describeError(e), /\u001b/);
    assert.doesNotMatch(terminalSafe(describeError(e)), /[\u0007\u001b]/);
  });
});
/* eslint-enable no-control-regex */
