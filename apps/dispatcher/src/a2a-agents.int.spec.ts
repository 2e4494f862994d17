/**
 * The dispatcher's A2A client against an agent built with the A2A SDK's own server side (real
 * HTTP on 127.0.0.1): a task the agent keeps `working` is polled with `tasks/get` until our
 * signal aborts, without piling listeners on that signal, and the abort sends `tasks/cancel`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import http from 'node:http';
import express from 'express';
import type { AgentCard } from '@a2a-js/sdk';
import { AgentEvent, DefaultRequestHandler, InMemoryTaskStore, type AgentExecutor } from '@a2a-js/sdk/server';
import { jsonRpcHandler, UserBuilder } from '@a2a-js/sdk/server/express';
import { EgressGuard, freePort } from '@switchyard/platform';
import { fetchA2aCard, runOnA2aAgent } from './a2a-agents.js';

describe('A2A agent client: a long task polled until aborted', () => {
  let server: http.Server;
  let card: AgentCard;
  const methods: string[] = [];

  before(async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    card = {
      name: 'slowpoke',
      description: 'never finishes by itself',
      supportedInterfaces: [{ url: `${url}/rpc`, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: '1.0' }],
      provider: undefined,
      version: '1.0.0',
      capabilities: { streaming: false, pushNotifications: false, extensions: [] },
      securitySchemes: {},
      securityRequirements: [],
      defaultInputModes: ['application/json'],
      defaultOutputModes: ['application/json'],
      skills: [
        {
          id: 'wait_forever',
          name: 'wait forever',
          description: '',
          tags: [],
          examples: [],
          inputModes: [],
          outputModes: [],
          securityRequirements: [],
        },
      ],
      signatures: [],
    };
    const executor: AgentExecutor = {
      // Answers `working` and stays there: the client has to poll.
      execute: async (ctx, bus) => {
        bus.publish(
          AgentEvent.task({
            id: ctx.taskId,
            contextId: ctx.contextId,
            status: { state: 2, message: undefined, timestamp: new Date().toISOString() },
            artifacts: [],
            history: [ctx.userMessage],
            metadata: undefined,
          }),
        );
      },
      cancelTask: async (taskId, bus) => {
        bus.publish(
          AgentEvent.statusUpdate({
            taskId,
            contextId: '',
            status: { state: 5, message: undefined, timestamp: new Date().toISOString() },
            metadata: undefined,
          }),
        );
      },
    };
    const handler = new DefaultRequestHandler(card, new InMemoryTaskStore(), executor);
    const app = express();
    app.use(express.json());
    app.use(
      '/rpc',
      (req, _res, next) => {
        methods.push(String((req.body as { method?: unknown } | undefined)?.method));
        next();
      },
      jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }),
    );
    server = await new Promise<http.Server>((resolve) => {
      const s = app.listen(port, '127.0.0.1', () => resolve(s));
    });
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('hundreds of polls leave no listeners behind on the signal; the abort ends the call and cancels the task', async () => {
    const guard = new EgressGuard({ allowHosts: ['127.0.0.1'] });
    const stop = new AbortController();
    const run = runOnA2aAgent(
      guard,
      { card },
      { task_id: 't-1', task_type: 'wait_forever', context: { n: 1 } },
      stop.signal,
      1,
      1,
    );
    const outcome = run.then(
      () => 'resolved',
      (e: unknown) => e,
    );
    const deadline = Date.now() + 15_000;
    while (methods.filter((m) => m.endsWith('GetTask') || m === 'tasks/get').length < 150 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const polls = methods.filter((m) => m.endsWith('GetTask') || m === 'tasks/get').length;
    assert.ok(polls >= 150, `polled ${polls} times (methods seen: ${[...new Set(methods)].join(', ')})`);
    // Before the fix one listener per poll stayed on the signal.
    const listeners = getEventListeners(stop.signal, 'abort').length;
    assert.ok(listeners <= 3, `${listeners} abort listeners after ${polls} polls`);
    stop.abort(new Error('deadline'));
    const e = await outcome;
    assert.notEqual(e, 'resolved');
    const cancelDeadline = Date.now() + 10_000;
    while (!methods.some((m) => m.endsWith('CancelTask') || m === 'tasks/cancel') && Date.now() < cancelDeadline)
      await new Promise((r) => setTimeout(r, 20));
    assert.ok(
      methods.some((m) => m.endsWith('CancelTask') || m === 'tasks/cancel'),
      `no cancel sent: ${[...new Set(methods)].join(', ')}`,
    );
  });

  it('a task that stays working is asked less and less often (the poll doubles up to its bound)', async () => {
    const guard = new EgressGuard({ allowHosts: ['127.0.0.1'] });
    const stop = new AbortController();
    const from = methods.length;
    const run = runOnA2aAgent(
      guard,
      { card },
      { task_id: 't-2', task_type: 'wait_forever', context: {} },
      stop.signal,
      10,
      160,
    );
    const outcome = run.catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 1_500));
    stop.abort(new Error('enough'));
    await outcome;
    const polls = methods.slice(from).filter((m) => m.endsWith('GetTask') || m === 'tasks/get').length;
    // At 10 ms each, 1.5 s would be about 150 polls; doubling to 160 ms makes it about 12.
    assert.ok(polls >= 4 && polls <= 20, `${polls} polls in 1.5 s`);
  });
});

describe("A2A agent card: what a card's text may become", () => {
  it('keeps plain skill ids as task types (at most 100) and a description without control characters', async () => {
    const good = Array.from({ length: 150 }, (_, i) => `skill_${i}`);
    const ids = ['s\u0000\u001b[31m\u202e0', 'with space', 'x'.repeat(101), ...good];
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          name: 'hostile\u001b[2J',
          description: `clear\u001b[2J${'d'.repeat(5_000)}`,
          url: 'http://127.0.0.1:1/rpc',
          protocolVersion: '0.3.0',
          version: '1.0.0',
          capabilities: {},
          defaultInputModes: ['application/json'],
          defaultOutputModes: ['application/json'],
          skills: ids.map((id) => ({ id, name: id, description: '', tags: [] })),
        }),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as { port: number };
      const info = await fetchA2aCard(
        new EgressGuard({ allowHosts: ['127.0.0.1'] }),
        `http://127.0.0.1:${port}/.well-known/agent-card.json`,
      );
      assert.deepEqual(info.skills, good.slice(0, 100));
      assert.equal(info.description.length, 1_000);
      assert.ok(!info.description.includes('\u001b'), 'an escape sequence is left in the description');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
