import type pg from 'pg';
import { trySessionLock, type SessionLock } from '@switchyard/platform';
import { sleep } from './discovery.js';
import { startMonitoring, type RunningMonitoring, type StartMonitoringOptions } from './start.js';

export interface ExclusiveMonitoringOptions extends StartMonitoringOptions {
  /** How often a standby tries to take over (default 2 s). */
  readonly lockRetryMs?: number;
  /** Called each time this process becomes the active monitor, with what it started (add probes here). */
  readonly onActive?: (running: RunningMonitoring) => void;
}

export type MonitoringState = 'standby' | 'active' | 'stopped';

export interface MonitoringRunner {
  state(): MonitoringState;
  /** The monitoring this process runs while it is the active monitor; undefined on standby. */
  current(): RunningMonitoring | undefined;
  /** Stop the monitoring (when active) and give the lock back, or stop waiting. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Run the monitoring once per deployment, the way the relay runs: a PostgreSQL session advisory
 * lock (per service name) on a connection of its own. The process that holds it runs
 * startMonitoring; another waits as standby, retrying every `lockRetryMs`, and takes over when
 * the active one's session ends (its process died: the lock goes with the connection, no lease to
 * run out). Two monitors at once would each write the gap the other did not have
 * (ServiceUnmonitored / ServiceRecovered) and evaluate the alert rules twice.
 *
 * Resolves once the first attempt is decided: active (a failed start throws, as startMonitoring
 * does), or standby. A lost lock stops the monitoring here and goes back to standby.
 */
export async function runMonitoringExclusively(opts: ExclusiveMonitoringOptions): Promise<MonitoringRunner> {
  const name = opts.serviceName ?? 'monitor';
  const log = opts.logger.child({ component: 'monitor-lock', correlationId: 'monitor' });
  const retryMs = opts.lockRetryMs ?? 2_000;
  const abort = new AbortController();
  let state: MonitoringState = 'standby';
  let running: RunningMonitoring | undefined;

  // The pool's own settings (login, password, TLS), one connection that lives as long as the lock.
  const { max: _m, idleTimeoutMillis: _i, ...config } = (opts.pool as pg.Pool & { options: pg.PoolConfig }).options;
  const tryLock = (): Promise<SessionLock | undefined> =>
    trySessionLock(
      config,
      { namespace: 'switchyard.monitor', name },
      { connectionName: 'monitor-lock', logger: opts.logger },
    );

  /** 1. Take the lock; 2. start the monitoring; 3. run until stopped or the lock is lost. */
  const activate = async (lock: SessionLock, onStarted?: () => void): Promise<void> => {
    try {
      running = await startMonitoring(opts);
    } catch (err) {
      await lock.release();
      throw err;
    }
    state = 'active';
    log.info({ service: name }, 'this monitor is the active one');
    opts.onActive?.(running);
    onStarted?.();
    let onAbort!: () => void;
    const stopped = new Promise<void>((r) =>
      abort.signal.addEventListener('abort', (onAbort = () => r()), { once: true }),
    );
    const why = await Promise.race([lock.lost, stopped]);
    abort.signal.removeEventListener('abort', onAbort);
    const r = running;
    running = undefined;
    if (why instanceof Error && !abort.signal.aborted) {
      state = 'standby';
      log.warn({ err: why.message }, 'lost the monitor lock; stopping the monitoring and back to standby');
    }
    // The lock goes whatever the stop does: held by a monitor that no longer monitors, no standby could take over.
    try {
      await r.stop();
    } finally {
      await lock.release();
    }
  };

  const loop = async (first: boolean): Promise<void> => {
    let announced = first;
    while (!abort.signal.aborted) {
      try {
        const lock = await tryLock();
        if (lock && abort.signal.aborted) {
          await lock.release();
          break;
        }
        if (lock) {
          await activate(lock);
          announced = false;
          continue;
        }
        if (!announced) {
          log.info({ service: name }, 'another monitor is active; waiting as standby');
          announced = true;
        }
      } catch (err) {
        log.error({ err }, 'the monitor could not take its lock or start; retrying');
      }
      await sleep(retryMs, abort.signal);
    }
  };

  let background: Promise<void> = Promise.resolve();
  const firstLock = await tryLock();
  if (firstLock) {
    // A failed first start throws to the caller (a supervisor restarts it), as startMonitoring does.
    await new Promise<void>((resolve, reject) => {
      let started = false;
      background = activate(firstLock, () => {
        started = true;
        resolve();
      })
        .catch((err: unknown) => {
          if (!started) reject(err instanceof Error ? err : new Error(String(err)));
          else log.error({ err }, 'the monitor stopped with an error');
        })
        .then(() => (started ? loop(false) : undefined));
    });
  } else {
    log.info({ service: name }, 'another monitor is active; waiting as standby');
    background = loop(true);
  }

  let stopping: Promise<void> | undefined;
  return {
    state: () => state,
    current: () => running,
    stop() {
      stopping ??= (async () => {
        abort.abort();
        await background;
        state = 'stopped';
      })();
      return stopping;
    },
  };
}
