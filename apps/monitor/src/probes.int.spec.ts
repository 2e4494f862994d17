import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freshDatabase, testNatsUrl } from '@switchyard/testing';
import { freePort } from '@switchyard/platform';
import { functionProbe, httpProbe, natsProbe, postgresProbe, runProbe } from './probes.js';

describe('health probes against real servers', () => {
  let nc: NatsConnection;
  let server: http.Server;
  let port: number;
  before(async () => {
    nc = await connect({ servers: await testNatsUrl() });
    port = await freePort();
    server = http.createServer((req, res) => res.writeHead(req.url === '/health' ? 200 : 503).end());
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  });
  after(async () => {
    await nc.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('postgres: select 1 answers, a dead port fails with the cause', async () => {
    const ok = postgresProbe('db', await freshDatabase('monitor_probe'));
    const r = await runProbe(ok, 5_000);
    await ok.close();
    assert.equal(r.ok, true, r.error);
    assert.ok(r.responseMs >= 0);
    const dead = postgresProbe('db2', `postgres://postgres:postgres@127.0.0.1:${await freePort()}/postgres`);
    const f = await runProbe(dead, 5_000);
    await dead.close();
    assert.equal(f.ok, false);
    assert.match(f.error!, /ECONNREFUSED/);
  });

  it('nats: rtt to the real server', async () => {
    const r = await runProbe(natsProbe('nats', nc), 5_000);
    assert.equal(r.ok, true, r.error);
    assert.equal(typeof r.details?.rttMs, 'number');
  });

  it('http: 2xx is healthy, 503 is not', async () => {
    assert.equal((await runProbe(httpProbe('api', `http://127.0.0.1:${port}/health`), 5_000)).ok, true);
    const bad = await runProbe(httpProbe('api', `http://127.0.0.1:${port}/other`), 5_000);
    assert.deepEqual([bad.ok, bad.error], [false, 'HTTP 503']);
  });

  it('a probe that hangs times out and is told to stop', async () => {
    let aborted = false;
    const hang = functionProbe(
      'mcp-x',
      'mcp',
      (signal) =>
        new Promise<void>(() =>
          signal.addEventListener('abort', () => {
            aborted = true;
          }),
        ),
    );
    const r = await runProbe(hang, 150);
    assert.equal(r.ok, false);
    assert.match(r.error!, /timed out after 150 ms/);
    assert.equal(aborted, true);
  });
});
