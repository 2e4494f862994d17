/**
 * The REST API against its own OpenAPI document, fuzzed (see fuzzer.ts). Operations are read
 * from /docs/openapi.json, so a route added later is fuzzed with no change here. Each run
 * picks an operation, a caller (no key, a bad key, viewer, operator, admin) and a kind of
 * request: generated from the schemas, mutated to violate them, hostile (invalid JSON, deep
 * nesting, prototype-pollution keys, odd content types, huge bodies, nasty strings), or a
 * method the path does not have. Properties, for every request:
 * - an answer arrives, and it is never a 5xx (a 503 only where the operation documents one);
 * - its status is documented for the operation, and its body is valid against the schema
 *   documented for that status and content type; errors are problem+json;
 * - a caller without the route's role gets 401 / 403 whatever else is wrong with the request;
 * - a request violating the document is refused (4xx); one conforming to it is never refused
 *   by validation;
 * - a method the path does not have: 405 with `Allow`.
 * FUZZ_RUNS (default 400) and FUZZ_BUDGET_MS (default 20 s) size the run; `npm run fuzz` runs
 * it long, with a new seed. FUZZ_SEED replays a run (see SEED).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { createLogger, freePort, startNatsServer, type NatsServerHandle } from '@switchyard/platform';
import { stopOwnInfra } from '@switchyard/testing';
import { startAgents, type AgentsHandle } from '@switchyard/agents';
import { startDispatcher, type DispatcherHandle } from '@switchyard/dispatcher';
import { startMonitoring, type RunningMonitoring } from '@switchyard/monitor';
import { AgentsFeatureModule } from '../features/agents/index.js';
import { McpFeatureModule } from '../features/mcp/index.js';
import { McpServerFeatureModule } from '../features/mcp-server/index.js';
import { StatusFeatureModule } from '../features/status/index.js';
import { SystemFeatureModule } from '../features/system/index.js';
import { WorkflowsFeatureModule } from '../features/workflows/index.js';
import { bearer, startSecuredGateway, type SecuredGateway } from '../security/test-support.js';
import {
  exercise,
  operationsOf,
  Oracle,
  requestArb,
  Tally,
  type Caller,
  type OpenApiDoc,
  type Operation,
} from './fuzzer.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 400);
// A budget, not an assertion: on a slow machine fewer runs happen, and the count is printed.
const BUDGET_MS = Number(process.env.FUZZ_BUDGET_MS ?? 20_000);
// The suite's run is reproducible: a fixed seed unless FUZZ_SEED says otherwise ("random" for a
// new one each run, as `npm run fuzz` does to explore). What a random run finds is pinned in
// conformance.int.spec.ts.
const SEED =
  process.env.FUZZ_SEED === 'random'
    ? Math.floor(Math.random() * 2 ** 31)
    : Number(process.env.FUZZ_SEED ?? 20_261_203);
const logger = createLogger('gw-fuzz', process.env.LOG_LEVEL ?? 'silent');

describe('the REST API conforms to its OpenAPI document (property-based fuzzing)', () => {
  let natsServer: NatsServerHandle;
  let natsDir: string;
  let nc: NatsConnection;
  let agents: AgentsHandle;
  let dispatcher: DispatcherHandle;
  let monitoring: RunningMonitoring;
  let g: SecuredGateway;
  let doc: OpenApiDoc;
  let ops: Operation[];
  const keys: Record<Caller, string | undefined> = {
    none: undefined,
    bad: 'sy_0123456789abcdef_not-the-secret',
    viewer: undefined,
    operator: undefined,
    admin: undefined,
  };

  before(async () => {
    // The gateway's own NATS for the agents and the dispatcher: no other suite's services on these subjects.
    natsDir = mkdtempSync(path.join(os.tmpdir(), 'gw-fuzz-nats-'));
    natsServer = await startNatsServer({ port: await freePort(), storeDir: natsDir, logger });
    g = await startSecuredGateway(
      'gw_fuzz',
      {
        // The workflow engine and the connectors are deliberately absent: their routes answer
        // their documented 503 (or accept work that waits). The agents, the dispatcher (noop
        // work, no demo data) and the monitor run, so their routes answer for real.
        modules: [
          WorkflowsFeatureModule,
          McpFeatureModule,
          SystemFeatureModule,
          AgentsFeatureModule,
          StatusFeatureModule,
          McpServerFeatureModule,
        ],
        requestTimeoutMs: 3_000,
        // On, with limits no fuzz run reaches: the middleware runs, nothing is throttled.
        rateLimit: {
          perIp: { points: 1e7, durationSec: 60 },
          perKey: { points: 1e7, durationSec: 60 },
          authFailuresPerIp: { points: 1e7, durationSec: 60 },
        },
      },
      undefined,
      natsServer.url,
    );
    nc = await connectNats({ url: natsServer.url, name: 'gw-fuzz', logger });
    agents = await startAgents({ nats: nc, pool: g.pool, logger, http: false, noop: true, instancePrefix: 'fuzz' });
    dispatcher = await startDispatcher({
      store: g.store,
      nats: nc,
      pool: g.pool,
      logger,
      pollIntervalMs: 100,
      healthIntervalMs: 200,
      discoveryIntervalMs: 300,
      discoveryWaitMs: 150,
      probeTimeoutMs: 500,
    });
    monitoring = await startMonitoring({
      pool: g.pool,
      nats: nc,
      eventStore: g.store,
      logger,
      env: {},
      settings: {
        sampleIntervalMs: 2_000,
        probeIntervalMs: 1_000,
        probeTimeoutMs: 1_000,
        maintenanceIntervalMs: 60_000,
      },
      wiring: { webhooks: [], discoveryIntervalMs: 2_000 },
      sampler: { diskIntervalMs: 3_600_000, networkIntervalMs: 3_600_000 },
    });
    keys.admin = g.adminKey;
    keys.operator = (await g.makeKey('operator', 'fuzz-operator')).key;
    keys.viewer = (await g.makeKey('viewer', 'fuzz-viewer')).key;
    doc = (await (await fetch(`${g.url}/docs/openapi.json`)).json()) as OpenApiDoc;
    ops = operationsOf(doc);
  });
  after(async () => {
    // What runs on the gateway's pool stops before the gateway ends that pool.
    await monitoring?.stop();
    await dispatcher?.stop();
    await agents?.stop();
    await g?.close();
    if (nc) await closeNats(nc);
    await natsServer?.stop();
    if (natsDir) rmSync(natsDir, { recursive: true, force: true });
    await stopOwnInfra();
  });

  it('the document declares the bearer scheme, and every non-public operation requires it', () => {
    assert.equal((doc.components?.securitySchemes?.bearer as { scheme?: string } | undefined)?.scheme, 'bearer');
    const paths = doc.paths as Record<
      string,
      Record<string, { security?: unknown[]; responses: Record<string, unknown>; 'x-required-role'?: string }>
    >;
    for (const [p, byMethod] of Object.entries(paths)) {
      for (const [m, op] of Object.entries(byMethod)) {
        if (op['x-required-role'] === 'public') assert.deepEqual(op.security, [], `${m} ${p} is public`);
        else {
          assert.ok(
            op.security?.some((s) => 'bearer' in (s as object)),
            `${m} ${p} declares the bearer scheme`,
          );
          for (const s of ['401', '429', '431', '504']) assert.ok(op.responses[s], `${m} ${p} documents ${s}`);
        }
      }
    }
  });

  it('every answer is documented and valid against its schema; violations refused; roles first', async () => {
    assert.ok(ops.length >= 30, `only ${ops.length} operations discovered`);
    const oracle = new Oracle(doc);
    const tally = new Tally();
    const started = Date.now();
    const arb = fc.constantFrom(...ops).chain((op) => requestArb(op, oracle, keys));
    await fc.assert(
      fc.asyncProperty(arb, async (req) => {
        tally.add(req, await exercise(g.url, req, oracle));
      }),
      {
        numRuns: RUNS,
        interruptAfterTimeLimit: BUDGET_MS > 0 ? BUDGET_MS : undefined,
        seed: SEED,
      },
    );
    const ms = Date.now() - started;
    console.log(`# fuzz: ${tally.requests} requests over ${ops.length} operations in ${ms} ms (seed ${SEED})`);
    if (process.env.FUZZ_SUMMARY === '1') console.log(tally.summary().replace(/^/gm, '# '));
    const found = [...tally.violations];
    assert.deepEqual(found, [], `violations:\n${found.map(([k, m]) => `${k}: ${m}`).join('\n')}`);
    // Nothing leaked into the prototypes of this process (the gateway runs in it).
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal((Object.prototype as Record<string, unknown>).role, undefined);
    // Operations are picked at random: with five requests per operation on average, nearly all are hit.
    if (tally.requests >= ops.length * 5)
      assert.ok(tally.counts.size >= ops.length * 0.8, `only ${tally.counts.size} of ${ops.length} operations fuzzed`);
    assert.equal((await fetch(`${g.url}/readyz`)).status, 200);
  });

  it('a request Node cannot parse (huge headers) still gets problem+json', async () => {
    const res = await fetch(`${g.url}/api/v1/events`, {
      headers: { ...bearer(g.adminKey), 'x-big': 'a'.repeat(40_000) },
    });
    assert.equal(res.status, 431);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    assert.equal(((await res.json()) as { status: number }).status, 431);
  });
});
