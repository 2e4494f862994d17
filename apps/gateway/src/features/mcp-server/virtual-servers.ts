import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { handleCommand, type AllSubscription, type EventStore } from '@switchyard/event-store';
import { AppError, type Logger } from '@switchyard/platform';
import { currentActor } from '../../http/context.js';
import { EVENT_STORE, LOGGER } from '../../tokens.js';
import {
  projectVirtualServer,
  VIRTUAL_SERVER_EVENT_TYPES,
  VIRTUAL_SERVER_STREAM_PREFIX,
  virtualServerDecider,
  virtualServerStream,
  type VirtualServerCommand,
  type VirtualServerView,
} from './virtual-server.decider.js';

/** How long a command waits for the read model to show its own events. */
const READ_YOUR_WRITES_MS = 3_000;

/**
 * Virtual servers: commands through the pure decider (one stream per name), and a read model
 * kept in this process's memory by a catch-up subscription to the virtual-server events (a
 * few rows, read on every `/mcp/v/<name>` request: no database round trip). Each gateway
 * instance builds the same view from the log.
 */
@Injectable()
export class VirtualServers implements OnModuleInit, OnModuleDestroy {
  private readonly views = new Map<string, VirtualServerView>();
  private position = -1;
  private subscription: AllSubscription | undefined;
  private readonly log: Logger;
  private readonly waiters = new Set<() => void>();

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.log = logger.child({ component: 'mcp-virtual-servers' });
  }

  onModuleInit(): void {
    this.subscription = this.store.subscribeToAll({
      from: -1,
      types: VIRTUAL_SERVER_EVENT_TYPES,
      streamPrefixes: [VIRTUAL_SERVER_STREAM_PREFIX],
    });
    const sub = this.subscription;
    void (async () => {
      try {
        for await (const e of sub) {
          projectVirtualServer(this.views, e);
          this.position = e.position;
          for (const w of this.waiters) w();
        }
      } catch (err) {
        this.log.error({ err: String(err) }, 'virtual server projection stopped');
      }
    })();
  }

  async onModuleDestroy(): Promise<void> {
    await this.subscription?.close();
  }

  list(): VirtualServerView[] {
    return [...this.views.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): VirtualServerView | undefined {
    return this.views.get(name);
  }

  /** Create or replace; answers the view once the read model shows it, and whether it was new. */
  async define(
    name: string,
    spec: { description: string; tools: string[] },
    correlationId: string,
  ): Promise<{ view: VirtualServerView; created: boolean }> {
    const r = await this.run(name, {
      type: 'DefineVirtualServer',
      data: { name, description: spec.description, tools: spec.tools },
      metadata: this.meta(correlationId),
    });
    await this.caughtUp(r.position);
    const view = this.views.get(name);
    if (!view)
      throw new AppError('unavailable', `virtual server "${name}" is recorded but not yet readable; retry`, { name });
    // As the log has it: what the decision found (a removal that came first makes this a creation).
    return { view, created: r.decidedFrom.status !== 'defined' };
  }

  async remove(name: string, correlationId: string): Promise<void> {
    const r = await this.run(name, { type: 'RemoveVirtualServer', data: { name }, metadata: this.meta(correlationId) });
    await this.caughtUp(r.position);
  }

  private meta(correlationId: string) {
    return { timestamp: new Date().toISOString(), correlationId, actor: currentActor() ?? 'anonymous' };
  }

  private run(name: string, command: VirtualServerCommand) {
    return handleCommand(this.store, virtualServerStream(name), virtualServerDecider, command);
  }

  private async caughtUp(position: number | undefined): Promise<void> {
    if (position === undefined) return;
    const until = Date.now() + READ_YOUR_WRITES_MS;
    while (this.position < position && Date.now() < until) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.waiters.delete(done);
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(done, 100);
        this.waiters.add(done);
      });
    }
  }
}
