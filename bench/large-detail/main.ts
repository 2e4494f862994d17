/**
 * What an operator's read of a large execution costs the gateway: the whole system as `npm start`
 * runs it (one launcher process, embedded PostgreSQL and nats-server, free ports, a data dir of
 * its own) runs one workflow whose for_each step queries the database BENCH_ITEMS times, each
 * item given and answering BENCH_CHARS characters (67 x 495,000: about 100 MB of detail, near the
 * execution's stored bounds). Once the read model has it, it reads the detail BENCH_READS times
 * one after another, then as many times at its last revision (`?at=`, a fold of the stream),
 * while a worker thread asks `/livez` every 5 ms: how long each read took, and how long the
 * gateway kept its liveness probe waiting meanwhile (the longest wait is how long its event loop
 * was held). Then BENCH_BURST cancels, signals and retries of it at once (each a fold of the
 * stream; the execution has ended, so each is refused with 409). Bodies are counted, not decoded.
 * Figures only: nothing here asserts.
 *
 *   node bench/large-detail/dist/main.js
 *   BENCH_ITEMS=20 BENCH_CHARS=100000 BENCH_READS=8 BENCH_BURST=32 node bench/large-detail/dist/main.js
 */
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import { freePort } from '@switchyard/platform';
import { newAdminKey, Proc, systemEnv, waitMcpServerUp, waitReady, scratchDataDir } from '@switchyard/testing';

const items = Number(process.env.BENCH_ITEMS ?? 67);
const chars = Number(process.env.BENCH_CHARS ?? 495_000);
const reads = Number(process.env.BENCH_READS ?? 4);
const burst = Number(process.env.BENCH_BURST ?? 16);

const q = (xs: number[], p: number) =>
  xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]! : NaN;

// /livez every 5 ms on a thread of its own (the reads' bodies do not delay it), until told to stop.
const SAMPLER = `
const { parentPort, workerData } = require('node:worker_threads');
let stop = false; const waits = [];
parentPort.on('message', () => (stop = true));
(async () => {
  while (!stop) {
    const t = performance.now();
    await fetch(workerData + '/livez').then((r) => r.arrayBuffer());
    waits.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 5));
  }
  parentPort.postMessage(waits);
})();`;

async function sampled<T>(base: string, work: () => Promise<T>): Promise<{ result: T; waits: number[] }> {
  const sampler = new Worker(SAMPLER, { eval: true, workerData: base });
  await new Promise((r) => setTimeout(r, 300));
  const result = await work();
  const waits = new Promise<number[]>((r) => sampler.once('message', r));
  sampler.postMessage('stop');
  const w = await waits;
  await sampler.terminate();
  return { result, waits: w };
}

async function main(): Promise<void> {
  const dataDir = scratchDataDir('bench-large-detail-');
  const adminKey = newAdminKey();
  const headers = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
  const gatewayPort = await freePort();
  const base = `http://127.0.0.1:${gatewayPort}`;
  const env = await systemEnv(dataDir, adminKey, {
    RATE_LIMIT_ENABLED: 'false',
    EMBEDDED_PG_PORT: String(await freePort()),
    EMBEDDED_NATS_PORT: String(await freePort()),
    GATEWAY_PORT: String(gatewayPort),
  });
  const system = new Proc('all', [], env);
  const call = async (method: string, url: string, body?: unknown) => {
    const r = await fetch(base + url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  try {
    system.start();
    await system.waitUp(180_000);
    await waitReady(base, system);
    await waitMcpServerUp(base, headers, 'database');
    const def = await call('POST', '/api/v1/workflows/definitions', {
      id: 'bench_large_detail',
      version: 1,
      name: 'large detail',
      input: {
        type: 'object',
        properties: { blob: { type: 'string' }, n: { type: 'integer' }, items: { type: 'array' } },
        required: ['blob', 'n', 'items'],
      },
      steps: [
        {
          id: 'q',
          uses: 'mcp:database/query',
          for_each: { items: '${{ input.items }}', concurrency: 4 },
          with: {
            sql: "select repeat('x', $1::int) as b, length($2::text) as l, $3::int as i",
            params: ['${{ input.n }}', '${{ input.blob }}', '${{ item }}'],
          },
          timeout_ms: 60_000,
        },
      ],
      outputs: { count: '${{ size(steps.q.output) }}' },
    });
    if (def.status !== 201) throw new Error(`register: ${def.status} ${JSON.stringify(def.body)}`);
    const t0 = Date.now();
    const started = await call('POST', '/api/v1/workflows/start/bench_large_detail', {
      blob: 'b'.repeat(chars),
      n: chars,
      items: Array.from({ length: items }, (_, i) => i),
    });
    const id = started.body['execution_id'] as string;
    // Until it ended and the read model has all of it (the detail then says source: read_model).
    const tail = async (url: string) => {
      const r = await fetch(base + url, { headers });
      let bytes = 0;
      let last = '';
      for await (const c of r.body as AsyncIterable<Uint8Array>) {
        bytes += c.length;
        last = (last + Buffer.from(c).toString('latin1')).slice(-300);
      }
      return { status: r.status, bytes, source: /"source":"(\w+)"/.exec(last)?.[1] };
    };
    for (;;) {
      const summary = await call('GET', `/api/v1/workflows/executions?template=bench_large_detail&limit=1`);
      if (summary.status !== 200) throw new Error(`list: ${summary.status} ${JSON.stringify(summary.body)}`);
      const status = (summary.body['items'] as { status: string }[] | undefined)?.[0]?.status;
      if (status && status !== 'running') {
        if (status !== 'completed') throw new Error(`the execution ${status}`);
        if ((await tail(`/api/v1/workflows/executions/${id}`)).source === 'read_model') break;
      }
      if (Date.now() - t0 > 600_000) throw new Error('the execution did not end within 10 minutes');
      await new Promise((r) => setTimeout(r, 1_000));
    }
    const history = await call('GET', `/api/v1/workflows/executions/${id}/history?limit=1`);
    const lastRevision = history.body['last_revision'] as number;
    console.log(
      `# ${items} items of ${chars} characters in and out; ran and projected in ${Date.now() - t0} ms; ` +
        `load ${loadavg()[0]!.toFixed(1)}; node ${process.version}`,
    );
    console.log('| read | answers | bytes | ms each (p50 / max) | /livez wait ms (p50 / max) |');
    console.log('|---|---|---:|---:|---:|');
    for (const [label, url] of [
      ['detail (read model)', `/api/v1/workflows/executions/${id}`],
      [`?at=${lastRevision} (fold of the stream)`, `/api/v1/workflows/executions/${id}?at=${lastRevision}`],
    ] as const) {
      const { result, waits } = await sampled(base, async () => {
        const out: { status: number; bytes: number; ms: number }[] = [];
        for (let i = 0; i < reads; i++) {
          const t = performance.now();
          const r = await tail(url);
          out.push({ status: r.status, bytes: r.bytes, ms: performance.now() - t });
        }
        return out;
      });
      const ms = result.map((r) => r.ms);
      console.log(
        `| ${label} | ${result.map((r) => r.status).join(' ')} | ${result[0]!.bytes} | ` +
          `${q(ms, 0.5).toFixed(0)} / ${Math.max(...ms).toFixed(0)} | ` +
          `${q(waits, 0.5).toFixed(1)} / ${Math.max(...waits).toFixed(0)} |`,
      );
    }
    console.log('');
    console.log(`| ${burst} at once | answers | ms each (p50 / max) | /livez wait ms (p50 / max) |`);
    console.log('|---|---|---:|---:|');
    for (const what of ['cancel', 'signals/go', 'retry']) {
      const { result, waits } = await sampled(base, () =>
        Promise.all(
          Array.from({ length: burst }, async () => {
            const t = performance.now();
            const r = await call('POST', `/api/v1/workflows/executions/${id}/${what}`, {});
            return { status: r.status, ms: performance.now() - t };
          }),
        ),
      );
      const counts = new Map<number, number>();
      for (const r of result) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
      const ms = result.map((r) => r.ms);
      console.log(
        `| ${what} | ${[...counts].map(([s, n]) => `${n} x ${s}`).join(', ')} | ` +
          `${q(ms, 0.5).toFixed(0)} / ${Math.max(...ms).toFixed(0)} | ` +
          `${q(waits, 0.5).toFixed(1)} / ${Math.max(...waits).toFixed(0)} |`,
      );
    }
  } finally {
    await system.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
