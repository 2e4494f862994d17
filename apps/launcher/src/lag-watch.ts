import type pg from 'pg';
import type { EventStore } from '@switchyard/event-store';
import type { Logger } from '@switchyard/platform';

/** How a unit's trouble about lag begins: the component probe tells it from a fault by it. */
export const READ_MODELS_CATCHING_UP = 'read models catching up with the log';

/** Events behind the log past which a read model counts as behind. */
export const LAG_EVENTS = 1_000;
/** How long it must stay behind before it is said: a burst of appends is caught up in moments. */
export const LAG_FOR_MS = 15_000;

/**
 * How far the read models this process runs are behind the log, for its units' `trouble`: while
 * one replays (a rebuild, a release that renamed it, a lost read-model database) its lists and
 * counts show older data, and /readyz and the health report said ready and healthy all along (a
 * rebuild of three million events took minutes). Polls the checkpoints every `everyMs`.
 */
export class ReadModelLagWatch {
  private readonly behind = new Map<string, { since: number; lag: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: {
      readonly pool: pg.Pool;
      readonly store: Pick<EventStore, 'headPosition'>;
      readonly logger: Logger;
      /** Schema of the checkpoints table (the runners' default). */
      readonly schema?: string;
      readonly everyMs?: number;
      readonly now?: () => number;
    },
  ) {}

  start(): void {
    const tick = () => {
      this.poll()
        .catch((err: unknown) => this.o.logger.debug({ err }, 'reading read-model lag failed'))
        .finally(() => {
          this.timer = setTimeout(tick, this.o.everyMs ?? 5_000);
          this.timer.unref();
        });
    };
    tick();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** One look at the checkpoints against the head. */
  async poll(): Promise<void> {
    const now = (this.o.now ?? Date.now)();
    const head = await this.o.store.headPosition();
    const r = await this.o.pool.query<{ name: string; position: string }>(
      `select name, position from ${this.o.schema ?? 'read_models'}.checkpoints`,
    );
    const seen = new Set<string>();
    for (const row of r.rows) {
      const lag = head - Number(row.position);
      seen.add(row.name);
      if (lag < LAG_EVENTS) this.behind.delete(row.name);
      else this.behind.set(row.name, { since: this.behind.get(row.name)?.since ?? now, lag });
    }
    for (const name of this.behind.keys()) if (!seen.has(name)) this.behind.delete(name);
  }

  /** What to say of the read models `names` covers (a name or a prefix), or undefined when none is behind. */
  trouble(covers: (name: string) => boolean): string | undefined {
    const now = (this.o.now ?? Date.now)();
    const late = [...this.behind]
      .filter(([name, b]) => covers(name) && now - b.since >= LAG_FOR_MS)
      .map(([name, b]) => `${name} ${b.lag} events behind`);
    return late.length
      ? `${READ_MODELS_CATCHING_UP} (${late.join(', ')}): their lists and counts show older data`
      : undefined;
  }
}
