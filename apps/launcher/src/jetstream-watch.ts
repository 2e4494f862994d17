import { statfsSync } from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@switchyard/messaging';
import { logAtMostEvery, type Logger } from '@switchyard/platform';

/**
 * Bytes free for an unprivileged writer on the file system holding `dir` (what nats-server can
 * still write to its JetStream store).
 */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}

export interface JetStreamWatchOptions {
  /** A connection of this process to the embedded server (the all-subjects user's). */
  readonly nc: NatsConnection;
  readonly logger: Logger;
  /** The JetStream store dir: the disk whose free space decides whether a restart can help. */
  readonly storeDir: string;
  /**
   * Free bytes the store's disk needs before a restart is tried: the server reserves the
   * streams' caps against free space when it starts them, and with less the restart would leave
   * NATS down altogether instead of JetStream alone.
   */
  readonly freeBytesNeeded: number;
  /** Fail the nats-server unit: the supervisor stops it and starts it again (its streams too). */
  readonly restart: (why: string) => void;
  readonly intervalMs?: number;
  readonly probeTimeoutMs?: number;
  /** Probes in a row that got no answer before JetStream counts as gone (reported). */
  readonly failuresBeforeTrouble?: number;
  /**
   * Probes in a row without an answer before a restart is tried: longer than the report, so a
   * moment of overload (a probe's 3 s timeout on a starved machine) never restarts NATS.
   */
  readonly failuresBeforeRestart?: number;
  /** Injected in tests; default freeBytes. */
  readonly free?: (dir: string) => number;
}

/**
 * Watches the embedded nats-server's JetStream. nats-server turns JetStream off, or leaves it
 * answering nothing, when a write to its store fails (a full disk): core NATS goes on, but the
 * events stream and the shared call bucket stop, and nothing brings them back but a restart of
 * the server. The watch probes the JetStream API (account info); after a few probes without an
 * answer it reports the trouble (the unit shows `degraded` in /readyz and the health report) and,
 * after a minute without one, once the store's disk has the room a start needs, restarts the
 * server through the supervisor.
 * While the disk is still short it says how much is free and how much is needed, once a minute.
 */
export class JetStreamWatch {
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private lastError = '';
  private readonly shortLog = logAtMostEvery(60_000);
  private restarted = false;
  private stopped = false;
  private probing: Promise<void> | undefined;

  constructor(private readonly opts: JetStreamWatchOptions) {}

  start(): void {
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.probing;
  }

  /** Why JetStream is counted as gone, or undefined while it answers (SupervisedHandle.trouble). */
  trouble(): string | undefined {
    if (this.failures < (this.opts.failuresBeforeTrouble ?? 3)) return undefined;
    return `JetStream does not answer (${this.lastError}): events are not relayed to NATS until it is back`;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.probing = this.probe().finally(() => {
        this.probing = undefined;
        this.schedule();
      });
    }, this.opts.intervalMs ?? 10_000);
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    const timeout = this.opts.probeTimeoutMs ?? 3_000;
    try {
      const jsm = await jetstreamManager(this.opts.nc, { timeout });
      await jsm.getAccountInfo();
      if (this.trouble()) this.opts.logger.info({}, 'JetStream answers again');
      this.failures = 0;
      return;
    } catch (err) {
      if (this.stopped || this.opts.nc.isClosed()) return;
      this.failures++;
      this.lastError = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    }
    const trouble = this.trouble();
    if (!trouble || this.restarted || this.failures < (this.opts.failuresBeforeRestart ?? 6)) return;
    const free = (this.opts.free ?? freeBytes)(this.opts.storeDir);
    if (free >= this.opts.freeBytesNeeded) {
      this.restarted = true;
      this.opts.logger.error(
        { freeBytes: free, storeDir: this.opts.storeDir },
        `${trouble}; restarting the embedded nats-server to bring it back`,
      );
      this.opts.restart(trouble);
      return;
    }
    this.shortLog(() =>
      this.opts.logger.error(
        { freeBytes: free, freeBytesNeeded: this.opts.freeBytesNeeded, storeDir: this.opts.storeDir },
        `${trouble}; its disk has ${mib(free)} free, the launcher restarts nats-server once ${mib(this.opts.freeBytesNeeded)} are (free space, lower NATS_EVENTS_MAX_BYTES, or restart it yourself)`,
      ),
    );
  }
}

const mib = (n: number): string => `${Math.floor(n / (1024 * 1024))} MiB`;
