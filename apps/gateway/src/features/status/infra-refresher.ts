import { Inject, Injectable, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Logger } from '@switchyard/platform';
import type { InfrastructureSnapshot } from '@switchyard/read-models';
import { ReadinessService } from '../../health/readiness.service.js';
import { LOGGER } from '../../tokens.js';
import {
  resolveStatusOptions,
  STATUS_FEATURE_OPTIONS,
  type ResolvedStatusOptions,
  type StatusFeatureOptions,
} from './options.js';

const CORRELATION_ID = 'status-refresher';

/**
 * Keeps the latest readiness results (Postgres, NATS, event store and the extra probes) so the
 * status endpoint answers from memory and never waits on a live probe. The next round starts
 * `refreshMs` after the previous one ended: a hanging dependency cannot pile rounds up (each
 * probe is bounded by the gateway's readiness timeout).
 */
@Injectable()
export class InfrastructureRefresher implements OnModuleInit, OnModuleDestroy {
  private snapshot: InfrastructureSnapshot = { checked_at: null, checks: {} };
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private round: Promise<void> | undefined;
  private readonly log: Logger;
  readonly options: ResolvedStatusOptions;

  constructor(
    @Inject(ReadinessService) private readonly readiness: ReadinessService,
    @Inject(LOGGER) logger: Logger,
    @Optional() @Inject(STATUS_FEATURE_OPTIONS) options?: StatusFeatureOptions,
  ) {
    this.options = resolveStatusOptions(options);
    this.log = logger.child({ component: 'status-refresher' });
  }

  /** The latest results (`checked_at: null` until the first round has finished). */
  current(): InfrastructureSnapshot {
    return this.snapshot;
  }

  onModuleInit(): void {
    // Not awaited: the gateway must not wait for a slow dependency to start serving.
    this.round = this.refresh();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
  }

  private async refresh(): Promise<void> {
    try {
      const report = await this.readiness.check();
      const previous = this.snapshot.checks;
      for (const [name, c] of Object.entries(report.checks)) {
        // Log transitions only: a steady state every 2 s would drown the log.
        if (previous[name]?.status !== c.status && (previous[name] || c.status === 'down')) {
          this.log[c.status === 'down' ? 'warn' : 'info'](
            { correlationId: CORRELATION_ID, check: name, status: c.status, error: c.error },
            'infrastructure check changed',
          );
        }
      }
      // A degraded check (a component being restarted) counts as a non-core check down: the status degrades.
      const checks = Object.fromEntries(
        Object.entries(report.checks).map(([n, c]) => [
          n,
          c.status === 'degraded' ? { ...c, status: 'down' as const } : { ...c, status: c.status },
        ]),
      );
      this.snapshot = { checked_at: new Date().toISOString(), checks };
    } catch (err) {
      // check() catches every probe's failure; this is a bug, kept from stopping the loop.
      this.log.error({ correlationId: CORRELATION_ID, err }, 'infrastructure refresh failed');
    } finally {
      if (!this.stopped) {
        this.timer = setTimeout(() => {
          this.round = this.refresh();
        }, this.options.refreshMs);
        this.timer.unref();
      }
    }
  }
}
