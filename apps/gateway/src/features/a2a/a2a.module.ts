import { Module, RequestMethod, type DynamicModule, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
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
  constructor(private readonly peer: A2aPeer) {}

  static withOptions(options: A2aFeatureOptions): DynamicModule {
    return { module: A2aFeatureModule, providers: [{ provide: A2A_FEATURE_OPTIONS, useValue: options }] };
  }

  configure(consumer: MiddlewareConsumer): void {
    const router = this.peer.router();
    // The router matches full paths: run it on the original URL whatever Nest's mount stripped.
    const mw = (req: Request, res: Response, next: NextFunction) => {
      const url = req.url;
      req.url = req.originalUrl;
      router(req, res, (err?: unknown) => {
        req.url = url;
        next(err);
      });
    };
    consumer.apply(mw).forRoutes({ path: 'a2a/*path', method: RequestMethod.ALL }, { path: '.well-known/agent-card.json', method: RequestMethod.GET });
  }
}
