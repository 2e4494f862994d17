import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { parseConfig, ConfigError } from './config.js';
import { createLogger, logAtMostEvery, prettyStream, resolveLogFormat } from './logger.js';

describe('resolveLogFormat', () => {
  it('is pretty on a terminal and JSON on a pipe when unset or auto', () => {
    assert.equal(resolveLogFormat(undefined, true), 'pretty');
    assert.equal(resolveLogFormat(undefined, false), 'json');
    assert.equal(resolveLogFormat('auto', true), 'pretty');
    assert.equal(resolveLogFormat('', false), 'json');
  });

  it('LOG_FORMAT=json and pretty force the format either way', () => {
    assert.equal(resolveLogFormat('json', true), 'json');
    assert.equal(resolveLogFormat('JSON', true), 'json');
    assert.equal(resolveLogFormat('pretty', false), 'pretty');
  });

  it('a bad LOG_FORMAT stops the start naming the variable', () => {
    assert.throws(
      () => parseConfig({ LOG_FORMAT: 'xml' }),
      (e: unknown) => e instanceof ConfigError && e.issues.some((i) => i.variable === 'LOG_FORMAT'),
    );
    assert.equal(parseConfig({ LOG_FORMAT: 'pretty' }).LOG_FORMAT, 'pretty');
  });
});

describe('prettyStream', () => {
  it('writes one readable line with level, app, correlation id and fields', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    const logger = pino(
      { name: 'unit', base: { pid: 1, app: 'unit' } },
      prettyStream({ destination: out, colorize: false }),
    );
    logger.child({ correlationId: 'c-42' }).info({ executionId: 'wf_1' }, 'step done');
    await new Promise((r) => setImmediate(r));
    const line = text.trim();
    assert.equal(line.split('\n').length, 1, text);
    assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: \[unit\] \[c-42\] step done \{"executionId":"wf_1"\}$/);
    assert.doesNotMatch(line, /^\{/);
  });
});

describe('logAtMostEvery', () => {
  it('writes the first line, holds the rest of the interval, then writes with how many it held', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const gate = logAtMostEvery(10_000);
    const lines: number[] = [];
    for (let i = 0; i < 5; i++) gate((held) => lines.push(held));
    assert.deepEqual(lines, [0]);
    t.mock.timers.tick(9_999);
    gate((held) => lines.push(held));
    assert.deepEqual(lines, [0]);
    t.mock.timers.tick(1);
    gate((held) => lines.push(held));
    assert.deepEqual(lines, [0, 5]);
    t.mock.timers.tick(10_000);
    gate((held) => lines.push(held));
    assert.deepEqual(lines, [0, 5, 0]);
  });
});

describe('createLogger', () => {
  it('a level pino does not know (LOG_LEVEL=loud) logs at info instead of throwing before the config names it', () => {
    const logger = createLogger('level-check', 'loud', 'json');
    assert.equal(logger.level, 'info');
    assert.equal(createLogger('level-check', 'warn', 'json').level, 'warn');
  });
});

describe('parseConfig: EGRESS_ALLOW_CIDRS', () => {
  it('is checked at start, naming the variable, not when the dispatcher begins', () => {
    assert.throws(
      () => parseConfig({ EGRESS_ALLOW_CIDRS: '127.0.0.0/8, 10.0.0.0/33' }),
      (e: unknown) => e instanceof ConfigError && e.issues.some((i) => i.variable === 'EGRESS_ALLOW_CIDRS'),
    );
    assert.equal(
      parseConfig({ EGRESS_ALLOW_CIDRS: '127.0.0.0/8, ::1/128' }).EGRESS_ALLOW_CIDRS,
      '127.0.0.0/8, ::1/128',
    );
  });
});
