/**
 * The load side of the MCP gateway bench, one worker thread per measured path (main.ts), so
 * the gateway in the main thread does not also pay for the load generator. One SDK Client over
 * Streamable HTTP: sequential calls for latency, then `inflight` concurrent loops for calls/s.
 */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

// The SDK's client transports add an abort listener per request to a long-lived signal; Node
// warns past 1500 of them. Counted, not printed (figures only).
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (w.name === 'MaxListenersExceededWarning') void 0;
  else console.error(w);
});
export interface LoadTask {
  /** `mcp`: the SDK Client; `rest`: POST the JSON body `{ server, tool, arguments }` (the gateway's REST call route). */
  readonly mode: 'mcp' | 'rest';
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly tool: string;
  /** `tools/call` the tool, or `ping`: an MCP request that no tool answers (the framing and the session alone). */
  readonly method: 'tools/call' | 'ping';
  readonly args: Record<string, unknown>;
  readonly warmup: number;
  readonly latencyCalls: number;
  readonly inflight: number;
  readonly throughputCalls: number;
  readonly maxMs: number;
  /** Sessions (clients) the in-flight calls are spread over; 1: all on one session. */
  readonly sessions: number;
}

export interface LoadResult {
  readonly latencies: number[];
  readonly throughput: { calls: number; seconds: number; latencies: number[] };
  readonly errors: number;
  readonly firstError?: string;
}

async function run(t: LoadTask): Promise<LoadResult> {
  const clients: Client[] = [];
  for (let i = 0; i < Math.max(1, t.sessions); i++) {
    const c = new Client({ name: 'bench-mcp-gateway', version: '1.0.0' });
    if (t.mode === 'mcp')
      await c.connect(new StreamableHTTPClientTransport(new URL(t.url), { requestInit: { headers: t.headers } }));
    clients.push(c);
  }
  const [server, tool] = t.tool.split('__') as [string, string];
  const rest = async () => {
    const res = await fetch(t.url, {
      method: 'POST',
      headers: { ...t.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ server, tool, arguments: t.args }),
    });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`${res.status} ${body.slice(0, 200)}`);
  };
  let errors = 0;
  let firstError: string | undefined;
  const once = async (lane = 0): Promise<number | undefined> => {
    const client = clients[lane % clients.length]!;
    const t0 = performance.now();
    try {
      if (t.mode === 'rest') await rest();
      else if (t.method === 'ping') await client.ping({ timeout: 30_000 });
      else {
        const r = await client.callTool({ name: t.tool, arguments: t.args }, undefined, { timeout: 30_000 });
        if (r.isError) throw new Error(JSON.stringify(r.content).slice(0, 300));
      }
      return performance.now() - t0;
    } catch (err) {
      errors++;
      firstError ??= String(err);
      return undefined;
    }
  };
  try {
    for (let i = 0; i < t.warmup; i++) await once();
    errors = 0;
    const latencies: number[] = [];
    for (let i = 0; i < t.latencyCalls; i++) {
      const v = await once();
      if (v !== undefined) latencies.push(v);
    }
    const tl: number[] = [];
    let issued = 0;
    const start = performance.now();
    const deadline = start + t.maxMs;
    await Promise.all(
      Array.from({ length: t.inflight }, async (_, lane) => {
        while (issued < t.throughputCalls && performance.now() < deadline) {
          issued++;
          const v = await once(lane);
          if (v !== undefined) tl.push(v);
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    return {
      latencies: latencies.sort((a, b) => a - b),
      throughput: { calls: tl.length, seconds, latencies: tl.sort((a, b) => a - b) },
      errors,
      ...(firstError ? { firstError } : {}),
    };
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
  }
}

if (parentPort) {
  run(workerData as LoadTask).then(
    (r) => parentPort!.postMessage({ ok: true, result: r }),
    (err: unknown) => parentPort!.postMessage({ ok: false, message: String(err) }),
  );
}
