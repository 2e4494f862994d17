import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { Logger } from '@switchyard/platform';
import type { Exchange } from './exchange.js';
import { requestLog } from './logging.js';

/** A finished request as the edge hands it to its end steps: path, status, who asked. */
const exchange = (url: string, statusCode: number): Exchange =>
  ({
    req: { method: 'GET', url, correlationId: 'c-1', ip: '127.0.0.1' },
    res: { raw: { statusCode, writableFinished: true } },
    start: performance.now(),
    steps: [],
  }) as unknown as Exchange;

function logged(answered?: 'info' | 'debug') {
  const lines: { level: number; msg: string; status: number }[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) }) as unknown as Logger;
  const step = requestLog(logger, answered)!;
  for (const [url, status] of [
    ['/api/v1/integration/status', 200],
    ['/api/v1/workflows/start/x', 202],
    ['/api/v1/events', 429],
    ['/api/v1/admin/api-keys', 403],
    ['/api/v1/workflows/start/x', 500],
    ['/livez', 200],
  ] as const)
    step(exchange(url, status));
  return lines.map((l) => [l.status, l.level]);
}

describe('request log lines (GATEWAY_ACCESS_LOG)', () => {
  it('info: every answered request at info, refusals at warn, failures at error, probes below info', () => {
    assert.deepEqual(logged('info'), [
      [200, 30],
      [202, 30],
      [429, 30],
      [403, 40],
      [500, 50],
    ]);
    assert.deepEqual(logged(), logged('info'), 'info is the default');
  });

  it('debug: answered requests leave an info log; refusals and failures stay', () => {
    assert.deepEqual(logged('debug'), [
      [403, 40],
      [500, 50],
    ]);
  });
});
