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
import { runOnA2aAgent } from './a2a-agents.js';

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
});
