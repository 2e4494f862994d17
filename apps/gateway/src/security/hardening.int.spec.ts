/**
 * The gateway hardening findings, each written as the attack, over real components: a
 * secured gateway on the test PostgreSQL and nats-server, the connectors with the project's
 * own fetch MCP server behind them (their events appended the way the launcher does), the
 * task dispatcher, and local HTTP receivers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as dns } from 'node:dns';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseServerConfig, startConnectors, type RunningConnectors } from '@switchyard/connectors';
import { mcpEventMetadata, mcpServerStreamId, type McpEvent } from '@switchyard/contracts';
import {
  runMcpServer,
  scheduleDecider,
  scheduleStream,
  webhookDecider,
  webhookStream,
  type RunningMcpServer,
} from '@switchyard/mcp-servers';
import { startDispatcher, type DispatcherHandle } from '@switchyard/dispatcher';
import { createLogger, newId } from '@switchyard/platform';
import { stopOwnInfra, until } from '@switchyard/testing';
import { REDACTED_PAYLOAD } from '../events/redaction.js';
import { AgentsFeatureModule } from '../features/agents/agents.module.js';
import { McpFeatureModule } from '../features/mcp/mcp.module.js';
import { SystemFeatureModule } from '../features/system/system.module.js';
import { generateKey, parseKey } from './keys.js';
import { bearer, startSecuredGateway, type SecuredGateway } from './test-support.js';

const logger = createLogger('gateway-hardening-test', process.env.LOG_LEVEL ?? 'silent');

// Secrets the tests hand to the system; none may end up in the event store.
const HEADER_TOKEN = `hdr${newId().replace(/-/g, '')}`;
const X_API_KEY = `xak${newId().replace(/-/g, '')}`;
const AGENT_TOKEN = `agt${newId().replace(/-/g, '')}`;
const BIG_BYTES = 1_500_000;

type Json = Record<string, any>;

describe('gateway hardening (audit, redaction, rate limits, input size, SSRF)', () => {
  let g: SecuredGateway;
  let site: Server;
  let siteBase: string;
  let fetchServer: RunningMcpServer;
  let connectors: RunningConnectors;
  let dispatcher: DispatcherHandle;
  let viewer: { key: string; id: string };
  let operator: { key: string; id: string };
  const appends: Promise<unknown>[] = [];

  const call = async (
    method: string,
    path: string,
    key: string | undefined,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await fetch(g.url + path, {
      method,
      headers: {
        ...(key ? bearer(key) : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let json: Json = {};
    try {
      json = JSON.parse(text) as Json;
    } catch {
      // not JSON
    }
    return { status: res.status, body: json, correlationId: res.headers.get('x-correlation-id') ?? '' };
  };

  before(async () => {
    // A site that echoes the request headers back (as many do), and one answer over 1 MB.
    site = createServer((req, res) => {
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('b'.repeat(BIG_BYTES));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ headers: req.headers }));
    });
    await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
    siteBase = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;

    g = await startSecuredGateway('gw_hardening', {
      modules: [McpFeatureModule, AgentsFeatureModule, SystemFeatureModule],
      // The production defaults (30 bad keys per window per address and key id).
      rateLimit: {},
    });
    // The fetch server may reach the local site only because it is allow-listed.
    fetchServer = await runMcpServer('fetch', {
      port: 0,
      logger,
      env: { MCP_AUTH_DISABLED: 'true', LOG_LEVEL: 'silent', FETCH_ALLOW_HOSTS: '127.0.0.1' },
    });
    const store = g.store;
    connectors = await startConnectors({
      nats: g.nats,
      registry: [
        parseServerConfig({
          name: 'fetch',
          role: 'fetch',
          transport: { kind: 'http', url: fetchServer.url },
          timeouts: { connect_ms: 5_000, call_ms: 10_000 },
        }),
      ],
      logger,
      // As the launcher does: the call's correlation id and actor go into the metadata.
      onEvent: (e: McpEvent) => {
        const m = mcpEventMetadata(e);
        appends.push(
          store
            .append(mcpServerStreamId(e.data.server), [
              {
                type: e.type,
                data: e.data,
                metadata: {
                  correlationId: m.correlationId ?? newId(),
                  actor: m.actor,
                  timestamp: new Date().toISOString(),
                },
              },
            ])
            .catch(() => undefined),
        );
      },
    });
    // External agents: only `ext-agent.test` (a local receiver) is allow-listed.
    dispatcher = await startDispatcher({
      store: g.store,
      nats: g.nats,
      pool: g.pool,
      logger,
      egress: {
        allowHosts: ['ext-agent.test'],
        resolve: async (host) =>
          host === 'ext-agent.test'
            ? [{ address: '127.0.0.1', family: 4 }]
            : dns.lookup(host, { all: true, verbatim: true }),
      },
      pollIntervalMs: 100,
      healthIntervalMs: 300,
      discoveryIntervalMs: 300,
      discoveryWaitMs: 150,
      probeTimeoutMs: 500,
    });
    viewer = await g.makeKey('viewer');
    operator = await g.makeKey('operator');
    await until('the fetch server is up behind the connectors', async () => {
      const h = await call('GET', '/api/v1/integration/mcp/health', viewer.key);
      return h.body.servers?.[0]?.state === 'up';
    });
  });

  after(async () => {
    await dispatcher?.stop();
    await connectors?.stop();
    await fetchServer?.close();
    await Promise.all(appends);
    await g?.close();
    await new Promise<void>((r) => site?.close(() => r()));
    await stopOwnInfra();
  });

  const fetchThroughGateway = (key: string, path = '/echo') =>
    call('POST', '/api/v1/integration/mcp/fetch', key, {
      url: `${siteBase}${path}`,
      headers: { authorization: `Bearer ${HEADER_TOKEN}`, 'x-api-key': X_API_KEY },
    });

  const callEvents = async (correlationId: string) =>
    until('the call events are stored', async () => {
      const events = (await g.store.readStream(mcpServerStreamId('fetch'))).filter(
        (e) => e.metadata.correlationId === correlationId,
      );
      return events.some((e) => e.type === 'McpToolSucceeded' || e.type === 'McpToolFailed') ? events : undefined;
    });

  describe('audit: the caller, not the system, is the actor of an MCP call', () => {
    it('McpToolCalled and McpToolSucceeded name apikey:<operator id>', async () => {
      const r = await fetchThroughGateway(operator.key);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const events = await callEvents(r.correlationId);
      assert.deepEqual(
        events.map((e) => e.type),
        ['McpToolCalled', 'McpToolSucceeded'],
      );
      for (const e of events) assert.equal(e.metadata.actor, `apikey:${operator.id}`, e.type);
    });
  });

  describe('audit: delegations and their cancels name the key', () => {
    it('TaskSubmitted and TaskCanceled carry apikey:<operator id>', async () => {
      // No agent runs here: the task stays queued until it is canceled.
      const sub = await call('POST', '/api/v1/integration/agents/delegate', operator.key, {
        task_type: 'customer_segmentation',
        context: {},
        priority: 'normal',
      });
      assert.equal(sub.status, 202, JSON.stringify(sub.body));
      const taskId = String(sub.body.task_id);
      const cancel = await call('POST', `/api/v1/integration/agents/tasks/${taskId}/cancel`, operator.key, {
        reason: 'audit test',
      });
      assert.ok(cancel.status < 300, JSON.stringify(cancel.body));
      const events = await until('the task events', async () => {
        const es = await g.store.readStream(`task-${taskId}`);
        return es.some((e) => e.type === 'TaskCanceled') ? es : undefined;
      });
      for (const type of ['TaskSubmitted', 'TaskCanceled']) {
        assert.equal(events.find((e) => e.type === type)?.metadata.actor, `apikey:${operator.id}`, type);
      }
    });
  });

  describe('redaction: viewers do not read tool arguments and results', () => {
    it('/api/v1/events: a viewer gets them redacted, an operator and an admin see them', async () => {
      const r = await fetchThroughGateway(operator.key);
      assert.equal(r.status, 200);
      await callEvents(r.correlationId);
      const page = async (key: string) => {
        const res = await call('GET', `/api/v1/events?stream=${mcpServerStreamId('fetch')}&limit=500`, key);
        assert.equal(res.status, 200);
        return (res.body.events as Json[]).filter((e) => e.metadata.correlationId === r.correlationId);
      };
      const seen = await page(viewer.key);
      const called = seen.find((e) => e.type === 'McpToolCalled')!;
      const succeeded = seen.find((e) => e.type === 'McpToolSucceeded')!;
      assert.equal(called.data.arguments, REDACTED_PAYLOAD);
      assert.equal(succeeded.data.result, REDACTED_PAYLOAD);
      assert.equal(succeeded.data.tool, 'http_request', 'the rest of the event stays');
      for (const key of [operator.key, g.adminKey]) {
        const full = (await page(key)).find((e) => e.type === 'McpToolSucceeded')!;
        assert.equal(typeof full.data.result, 'object');
        assert.equal(full.data.result.value.structuredContent.status, 200);
      }
    });

    it("/api/v1/events: a viewer sees where webhooks and agents point, not their URLs' secrets, nor a schedule's target; an operator the target, an admin the URLs", async () => {
      // The events as the automation server's and the registry's deciders make them.
      const meta = { timestamp: new Date().toISOString(), correlationId: `redact-${newId()}`, actor: 'mcp:automation' };
      const hookName = `slack-${newId()}`;
      const hookUrl = 'https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX';
      const [registered] = webhookDecider.decide(
        {
          type: 'RegisterWebhook',
          data: { id: newId(), name: hookName, url: hookUrl, events: ['order.created'], secret_id: newId() },
          metadata: meta,
        },
        webhookDecider.initialState,
      );
      const scheduleName = `nightly-${newId()}`;
      const [created] = scheduleDecider.decide(
        {
          type: 'CreateSchedule',
          data: {
            id: newId(),
            name: scheduleName,
            cron: '0 3 * * *',
            timezone: 'UTC',
            target: { kind: 'workflow', template_id: 'revenue_analysis', input: { customer_ssn: '078-05-1120' } },
          },
          metadata: meta,
        },
        scheduleDecider.initialState,
      );
      const agentName = `peer-${newId()}`;
      await g.store.append(webhookStream(hookName), [registered!]);
      await g.store.append(scheduleStream(scheduleName), [created!]);
      await g.store.append(`external_agent-${agentName}`, [
        {
          type: 'ExternalAgentRegistered',
          data: {
            name: agentName,
            url: 'https://agents.example.com/rpc?api_key=AGENTSECRET',
            task_types: ['x'],
            has_token: false,
            max_concurrency: 1,
            description: '',
            registered_at: meta.timestamp,
          },
          metadata: meta,
        },
      ]);
      const mine = async (key: string) => {
        const res = await call('GET', '/api/v1/events?limit=1000', key);
        assert.equal(res.status, 200);
        const events = (res.body.events as Json[]).filter((e) => e.metadata.correlationId === meta.correlationId);
        assert.equal(events.length, 3, JSON.stringify(events));
        return {
          hook: events.find((e) => e.type === 'WebhookRegistered')!.data,
          schedule: events.find((e) => e.type === 'ScheduleCreated')!.data,
          agent: events.find((e) => e.type === 'ExternalAgentRegistered')!.data,
        };
      };
      const seen = await mine(viewer.key);
      assert.equal(seen.hook.url, `https://hooks.slack.com/${REDACTED_PAYLOAD}`);
      assert.equal(seen.hook.name, hookName, 'the rest of the event stays');
      assert.equal(seen.schedule.target, REDACTED_PAYLOAD);
      assert.equal(seen.schedule.cron, '0 3 * * *');
      assert.equal(seen.agent.url, `https://agents.example.com/${REDACTED_PAYLOAD}`);
      assert.ok(!JSON.stringify(seen).includes('SECRET') && !JSON.stringify(seen).includes('078-05-1120'));
      // An operator reads a schedule's target, but a URL kept whole for delivery only where it
      // points: list_webhooks masks its credentials for other operators, and so does the log.
      const operatorSees = await mine(operator.key);
      assert.equal(operatorSees.schedule.target.input.customer_ssn, '078-05-1120');
      assert.equal(operatorSees.hook.url, `https://hooks.slack.com/${REDACTED_PAYLOAD}`);
      assert.equal(operatorSees.agent.url, `https://agents.example.com/${REDACTED_PAYLOAD}`);
      const full = await mine(g.adminKey);
      assert.equal(full.hook.url, hookUrl);
      assert.equal(full.agent.url, 'https://agents.example.com/rpc?api_key=AGENTSECRET');
    });

    it("/api/v1/events/stream: a viewer's live feed is redacted too", async () => {
      const ctl = new AbortController();
      const res = await fetch(`${g.url}/api/v1/events/stream?after=-1&stream_prefix=mcpserver-`, {
        headers: bearer(viewer.key),
        signal: ctl.signal,
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      let text = '';
      try {
        while (!text.includes('"McpToolSucceeded"')) {
          const { value, done } = await reader.read();
          if (done) break;
          text += Buffer.from(value).toString('utf8');
        }
      } finally {
        ctl.abort();
      }
      const frame = text.split('\n\n').find((f) => f.includes('"McpToolSucceeded"'))!;
      const event = JSON.parse(
        frame
          .split('\n')
          .find((l) => l.startsWith('data: '))!
          .slice(6),
      ) as Json;
      assert.equal(event.data.result, REDACTED_PAYLOAD);
    });
  });

  describe('rate limits: bad keys do not lock out probes or valid keys', () => {
    it('after 30 bad-key requests /readyz still answers 200, and a valid key from the same address 200', async () => {
      const target = parseKey(viewer.key)!;
      const wrong = `sy_${target.id}_${generateKey().key.slice(-43)}`;
      const statuses: number[] = [];
      for (let i = 0; i < 31; i++) statuses.push((await call('GET', '/api/v1/events?limit=1', wrong)).status);
      assert.deepEqual(statuses.slice(0, 30), new Array(30).fill(401));
      assert.equal(statuses[30], 429, 'the guesser of that key is slowed');
      assert.equal((await call('GET', '/readyz', undefined)).status, 200);
      assert.equal((await call('GET', '/livez', wrong)).status, 200);
      assert.equal((await call('GET', '/api/v1/events?limit=1', viewer.key)).status, 200);
      assert.equal((await call('GET', '/api/v1/events?limit=1', operator.key)).status, 200);
    });
  });

  describe('input size', () => {
    it('a tool result over the 1 MB NATS limit answers 413 result_too_large naming size and limit; the connector stays healthy', async () => {
      const r = await call('POST', '/api/v1/integration/mcp/fetch', operator.key, {
        url: `${siteBase}/big`,
        max_bytes: 3_000_000,
      });
      assert.equal(r.status, 413, JSON.stringify(r.body).slice(0, 300));
      assert.equal(r.body.code, 'result_too_large');
      assert.ok(r.body.limit_bytes > 0 && r.body.size_bytes > r.body.limit_bytes, JSON.stringify(r.body));
      assert.match(r.body.detail, /bytes/);
      const next = await fetchThroughGateway(operator.key);
      assert.equal(next.status, 200);
      const h = await call('GET', '/api/v1/integration/mcp/health/fetch', viewer.key);
      assert.equal(h.body.state, 'up');
    });

    it('oversize and malformed ids in paths, queries and bodies answer 400 naming the field', async () => {
      const huge = (n: number) => 'a'.repeat(n);
      const cases: [string, string, string, unknown, string][] = [
        [
          'POST',
          '/api/v1/integration/mcp/automation/trigger',
          operator.key,
          { template_id: huge(600_000), input: {} },
          'template_id',
        ],
        [
          'PUT',
          '/api/v1/system/alert-rules',
          g.adminKey,
          { id: huge(900_000), name: 'x', metric: 'm', comparator: '>', threshold: 1, for_ms: 0, severity: 'warning' },
          'id',
        ],
        ['DELETE', `/api/v1/system/alert-rules?id=${huge(300)}`, g.adminKey, undefined, 'id'],
        ['GET', `/api/v1/integration/agents/tasks/${huge(300)}`, viewer.key, undefined, 'task_id'],
        ['GET', `/api/v1/integration/mcp/health/${huge(300)}`, viewer.key, undefined, 'server_name'],
        ['POST', '/api/v1/integration/mcp/call', operator.key, { server: 'fetch', tool: huge(5_000) }, 'tool'],
      ];
      for (const [method, path, key, body, field] of cases) {
        const r = await call(method, path, key, body);
        assert.equal(r.status, 400, `${method} ${path.slice(0, 60)}: ${JSON.stringify(r.body).slice(0, 200)}`);
        assert.ok(
          (r.body.errors as { path: string }[]).some(
            (e) => e.path.split('.').includes(field) || e.path.endsWith(field),
          ),
          JSON.stringify(r.body.errors).slice(0, 300),
        );
      }
    });

    it('a body over the limit answers 413 problem naming the limit', async () => {
      const r = await call(
        'POST',
        '/api/v1/integration/mcp/call',
        operator.key,
        JSON.stringify({ server: 'fetch', tool: 'http_request', arguments: { pad: 'x'.repeat(1_100_000) } }),
      );
      assert.equal(r.status, 413);
      assert.equal(r.body.code, 'payload_too_large');
      assert.match(r.body.detail, /limit/);
    });
  });

  describe('SSRF: external agents', () => {
    it('registration refuses every spelling of an internal address (403), and stores nothing', async () => {
      const attacks = [
        'http://[::127.0.0.1]:9/',
        'http://[::ffff:127.0.0.1]:9/',
        'http://0177.0.0.1:9/',
        'http://2130706433:9/',
        'http://0x7f.1:9/',
        'http://127.1:9/',
        'http://0:9/',
        'http://localhost.:9/',
        'http://169.254.169.254/',
        'http://[::1]:9/',
        'http://10.0.0.1/',
      ];
      for (const [i, url] of attacks.entries()) {
        const r = await call('POST', '/api/v1/integration/agents/external', g.adminKey, {
          name: `ssrf-${i}`,
          url,
          task_types: ['ssrf_probe'],
        });
        assert.equal(r.status, 403, `${url}: ${JSON.stringify(r.body).slice(0, 200)}`);
        assert.equal(r.body.code, 'forbidden');
      }
      const { rows } = await g.pool.query(
        `select count(*)::int as n from delegation.external_agents where name like 'ssrf-%'`,
      );
      assert.equal(rows[0].n, 0);
    });

    it('an allow-listed agent registers; its token is never echoed nor stored in events', async () => {
      const r = await call('POST', '/api/v1/integration/agents/external', g.adminKey, {
        name: 'allowed-agent',
        url: 'http://ext-agent.test:9',
        task_types: ['allowed_probe'],
        token: AGENT_TOKEN,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.ok(!JSON.stringify(r.body).includes(AGENT_TOKEN));
    });
  });

  describe('the event store holds no secret', () => {
    it("no event's data or metadata carries any secret the tests set", async () => {
      await Promise.all(appends);
      const secrets = {
        'Authorization header token': HEADER_TOKEN,
        'x-api-key header': X_API_KEY,
        'external agent token': AGENT_TOKEN,
        'admin key secret': parseKey(g.adminKey)!.secret,
        'viewer key secret': parseKey(viewer.key)!.secret,
        'operator key secret': parseKey(operator.key)!.secret,
      };
      const { rows } = await g.pool.query<{ n: number }>('select count(*)::int as n from eventstore.events');
      assert.ok(rows[0]!.n > 10, 'the store has the events of the tests above');
      for (const [what, secret] of Object.entries(secrets)) {
        const hit = await g.pool.query(
          `select type, stream_id from eventstore.events where data::text like $1 or metadata::text like $1`,
          [`%${secret}%`],
        );
        assert.deepEqual(hit.rows, [], `${what} found in the event store`);
      }
    });
  });

  // Last: it leaves this address's bad-key budget spent for the window.
  describe('rate limits: a guesser naming a new key id each time', () => {
    it('is stopped by its address (10 times the per key id limit), while valid keys from it still answer', async () => {
      let refusedAfter = -1;
      for (let i = 0; i < 400 && refusedAfter < 0; i++) {
        const guess = generateKey().key; // well formed, of an id no key has: a new bucket per id
        const r = await call('GET', '/api/v1/events?limit=1', guess);
        if (r.status === 429) refusedAfter = i;
        else assert.equal(r.status, 401);
      }
      assert.ok(refusedAfter > 0 && refusedAfter <= 300, `refused after ${refusedAfter} guesses`);
      assert.equal((await call('GET', '/api/v1/events?limit=1', viewer.key)).status, 200);
      assert.equal((await call('GET', '/readyz', undefined)).status, 200);
    });
  });
});
