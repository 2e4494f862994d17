import { Inject, Module, type DynamicModule, type NestModule } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import express from 'express';
import type { FastifyInstance } from 'fastify';
import { mountNodeHandler } from '../../http/islands.js';
import { AgentsFeatureModule } from '../agents/agents.module.js';
import { McpGatewayClient } from '../mcp/mcp-client.js';
import { WorkflowsFeatureModule } from '../workflows/workflows.module.js';
import { A2A_FEATURE_OPTIONS, A2aPeer, type A2aFeatureOptions } from './peer.js';

/**
 * The A2A (Agent2Agent) peer: cards at `/.well-known/agent-card.json` and
 * `/a2a/<agent>/.well-known/agent-card.json`, JSON-RPC at `/a2a/<agent>` and `/a2a/workflows`
 * (see docs/a2a.md). Needs the agents and workflows features (imported here), and the
 * automation MCP server behind the connectors for push notifications.
 * Plug in with `createGateway(deps, { modules: [A2aFeatureModule] })`.
 */
@Module({
  imports: [AgentsFeatureModule, WorkflowsFeatureModule],
  // The MCP client (over NATS) alone, not the MCP feature's routes: push notifications go through the automation server.
  providers: [A2aPeer, McpGatewayClient, { provide: A2A_FEATURE_OPTIONS, useValue: {} }],
  exports: [A2aPeer],
})
export class A2aFeatureModule implements NestModule {
  constructor(
    private readonly peer: A2aPeer,
    @Inject(HttpAdapterHost) private readonly http: HttpAdapterHost,
  ) {}

  static withOptions(options: A2aFeatureOptions): DynamicModule {
    return { module: A2aFeatureModule, providers: [{ provide: A2A_FEATURE_OPTIONS, useValue: options }] };
  }

  configure(): void {
    // The SDK's handlers are Express's: the router runs in an Express app of its own, on the
    // edge's Node request (key, body and verdicts already there), at the full paths it matches.
    const island = express();
    island.disable('x-powered-by');
    island.use(this.peer.router());
    mountNodeHandler(
      this.http.httpAdapter.getInstance<FastifyInstance>(),
      ['/a2a/*', '/.well-known/agent-card.json'],
      island,
    );
  }
}
