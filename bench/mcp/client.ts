/**
 * The load side of the MCP bench, run as a worker thread by main.ts. It has its own event
 * loop (and so its own core, when one is free), so the process under test (gateway,
 * connectors, database MCP server in the main thread) is not also paying for the load
 * generator's work, and the direct SDK baseline gets the same treatment.
 *
 * Protocol: main posts one `Task` at a time and awaits one `Reply`. The worker also posts
 * `{ kind: 'child', pid }` for every stdio server it spawns, so main can kill it by pid
 * if the worker dies without closing it.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

/** gateway-*: HTTP to our gateway; sdk-*: the SDK Client straight to a server of the same kind. */
export type Target = 'gateway-everything' | 'gateway-database' | 'sdk-everything' | 'sdk-database';

export interface ClientConfig {
  /** http://127.0.0.1:port of the gateway. */
  readonly gatewayUrl: string;
  /** Streamable HTTP endpoint of the database MCP server (the one the connector uses too). */
  readonly databaseMcpUrl: string;
  /** Absolute path of server-everything's bin; the SDK baseline spawns its own child with it. */
  readonly everythingBin: string;
  /** Sockets of the keep-alive agent (= the largest number of requests in flight). */
  readonly maxSockets: number;
}

export type Task =
  | { readonly op: 'latency'; readonly target: Target; readonly warmup: number; readonly count: number }
  | {
      readonly op: 'throughput';
      readonly target: Target;
      readonly inflight: number;
      readonly count: number;
      readonly maxMs: number;
      readonly warmup: number;
    }
  | { readonly op: 'close' };

/** Sorted per-call latencies (ms) and, for gateway targets, the gateway's own `duration_ms` (its NATS round trip). */
export interface LatencyResult {
  readonly latencies: number[];
  readonly natsRoundTrips: number[];
  readonly errors: number;
  readonly firstError?: string;
  /** MaxListenersExceededWarnings in this thread so far (cumulative). */
  readonly listenerWarnings: number;
}

export interface ThroughputResult {
  readonly calls: number;
  readonly errors: number;
  readonly seconds: number;
  readonly latencies: number[];
  readonly firstError?: string;
  /** MaxListenersExceededWarnings in this thread so far (cumulative). */
  readonly listenerWarnings: number;
}

export type Reply =
  | { readonly kind: 'ok'; readonly result: unknown }
  | { readonly kind: 'error'; readonly message: string }
  | { readonly kind: 'child'; readonly pid: number };

/**
 * Node prints a MaxListenersExceededWarning for every abort listener past the limit. The SDK's
 * StreamableHTTPClientTransport hands one long-lived AbortSignal to every fetch, and undici
 * removes its listener from it only when the request is garbage collected, so under load the
 * warnings come by the thousand and printing them would itself load the bench. They are
 * counted instead and reported with each result; other warnings still print.
 */
let listenerWarnings = 0;
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (w.name === 'MaxListenersExceededWarning') listenerWarnings++;
  else console.error(w);
});

/** One call: resolves with the gateway's duration_ms (or -1 when there is none), rejects when it did not succeed. */
type Call = () => Promise<number>;

const config = workerData as ClientConfig;
const gateway = new URL(config.gatewayUrl);
const agent = new http.Agent({ keepAlive: true, maxSockets: config.maxSockets });
const MESSAGE = 'ping';

function post(path: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: gateway.hostname,
        port: gateway.port,
        path,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function gatewayCall(path: string, body: string, expect: string): Promise<number> {
  const res = await post(path, body);
  // A wrong answer counts as an error, so a fast failure never passes for a fast call.
  if (res.status !== 200 || !res.text.includes(expect))
    throw new Error(`HTTP ${res.status}: ${res.text.slice(0, 300)}`);
  return (JSON.parse(res.text) as { duration_ms: number }).duration_ms;
}

const clients = new Map<'everything' | 'database', Client>();

/** One SDK client per server kind, connected once and reused, tools listed once (as the connector does). */
async function sdkClient(kind: 'everything' | 'database'): Promise<Client> {
  const existing = clients.get(kind);
  if (existing) return existing;
  const client = new Client({ name: 'switchyard-bench', version: '0.1.0' });
  if (kind === 'everything') {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [config.everythingBin],
      stderr: 'ignore',
    });
    await client.connect(transport);
    if (transport.pid) parentPort!.postMessage({ kind: 'child', pid: transport.pid } satisfies Reply);
  } else {
    await client.connect(new StreamableHTTPClientTransport(new URL(config.databaseMcpUrl)));
  }
  await client.listTools();
  clients.set(kind, client);
  return client;
}

async function sdkCall(
  kind: 'everything' | 'database',
  name: string,
  args: Record<string, unknown>,
  expect: string,
): Promise<number> {
  const client = await sdkClient(kind);
  const result = await client.callTool({ name, arguments: args });
  const text = JSON.stringify(result);
  if (result.isError || !text.includes(expect)) throw new Error(`tool error: ${text.slice(0, 300)}`);
  return -1;
}

const echoBody = JSON.stringify({ server: 'everything', tool: 'echo', arguments: { message: MESSAGE } });
const queryBody = JSON.stringify({ query: 'select 1 as one', params: [] });

const calls: Record<Target, Call> = {
  'gateway-everything': () => gatewayCall('/api/v1/integration/mcp/call', echoBody, MESSAGE),
  'gateway-database': () => gatewayCall('/api/v1/integration/mcp/database/query', queryBody, '"one":1'),
  'sdk-everything': () => sdkCall('everything', 'echo', { message: MESSAGE }, MESSAGE),
  'sdk-database': () => sdkCall('database', 'query', { sql: 'select 1 as one', params: [] }, '"one":1'),
};

async function latency(call: Call, warmup: number, count: number): Promise<LatencyResult> {
  for (let i = 0; i < warmup; i++) await call();
  const latencies: number[] = [];
  const natsRoundTrips: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    try {
      const d = await call();
      latencies.push(performance.now() - t0);
      if (d >= 0) natsRoundTrips.push(d);
    } catch (err) {
      errors++;
      firstError ??= String(err);
    }
  }
  return {
    latencies: latencies.sort((a, b) => a - b),
    natsRoundTrips: natsRoundTrips.sort((a, b) => a - b),
    errors,
    listenerWarnings,
    ...(firstError ? { firstError } : {}),
  };
}

/** `inflight` loops share one counter: a bounded concurrent loop, stopped by count or by time. */
async function throughput(
  call: Call,
  inflight: number,
  count: number,
  maxMs: number,
  warmup: number,
): Promise<ThroughputResult> {
  // Warm-up with the same concurrency, so sockets, sessions and JIT are ready before the clock starts.
  let w = 0;
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (w++ < warmup) await call().catch(() => undefined);
    }),
  );
  let issued = 0;
  let errors = 0;
  let firstError: string | undefined;
  const latencies: number[] = [];
  const t0 = performance.now();
  const deadline = t0 + maxMs;
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (issued < count && performance.now() < deadline) {
        issued++;
        const s = performance.now();
        try {
          await call();
          latencies.push(performance.now() - s);
        } catch (err) {
          errors++;
          firstError ??= String(err);
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return {
    calls: latencies.length,
    errors,
    seconds,
    latencies: latencies.sort((a, b) => a - b),
    listenerWarnings,
    ...(firstError ? { firstError } : {}),
  };
}

async function close(): Promise<void> {
  await Promise.all([...clients.values()].map((c) => c.close().catch(() => undefined)));
  clients.clear();
  agent.destroy();
}

async function handle(task: Task): Promise<unknown> {
  switch (task.op) {
    case 'latency':
      return latency(calls[task.target], task.warmup, task.count);
    case 'throughput':
      return throughput(calls[task.target], task.inflight, task.count, task.maxMs, task.warmup);
    case 'close':
      return close();
    default: {
      const never: never = task;
      throw new Error(`unknown task ${JSON.stringify(never)}`);
    }
  }
}

parentPort!.on('message', (task: Task) => {
  handle(task).then(
    (result) => parentPort!.postMessage({ kind: 'ok', result } satisfies Reply),
    (err: unknown) =>
      parentPort!.postMessage({
        kind: 'error',
        message: err instanceof Error ? (err.stack ?? err.message) : String(err),
      } satisfies Reply),
  );
});
