import { MessageChannel, MessagePort, Worker } from 'node:worker_threads';
import { z } from 'zod';
import { forwardLiveFeed } from '@switchyard/event-store';
import { AppError, type Logger } from '@switchyard/platform';

/** What the thread is given (checked on both sides: it crosses a thread boundary). */
export const readModelThreadConfigSchema = z.object({
  /** PostgreSQL URL of a login allowed to write the workflow read model (the engine's). */
  databaseUrl: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  /** `esdb://` URL when the events are in EventStoreDB. */
  eventstoreUrl: z.string().min(1).optional(),
  /** The login may not run DDL: the owner created the tables (see migrations). */
  schemaManaged: z.boolean().default(false),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Connections of the thread's pool (event reads share it). */
  poolMax: z.number().int().min(2).max(20).default(3),
});
export type ReadModelThreadConfig = z.input<typeof readModelThreadConfigSchema>;

/** The thread's end of its process's live feed (see forwardLiveFeed), when the process has one for the log. */
export const readModelThreadFeedSchema = z
  .object({ port: z.instanceof(MessagePort), consumed: z.instanceof(SharedArrayBuffer) })
  .optional();

/** Messages from the thread. */
export const readModelThreadMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('stopped') }),
  z.object({ type: z.literal('failed'), message: z.string() }),
]);

export interface ReadModelThread {
  /** Stop the projection (its batch in flight commits or rolls back), then the thread. */
  stop(): Promise<void>;
  /** Settles when the thread ended on its own (an error): the supervisor restarts it. */
  readonly failed: Promise<unknown>;
}

/**
 * The workflow read model (`workflow_executions` and its steps and attempts) on a thread of its
 * own: its projection runner, event store client and pool do not share the engine's event loop,
 * whose saga work otherwise delays every batch (measured: read-model lag p99 3.6-5.1 s in the
 * engine's loop against 0.4-0.9 s on its own, at 300 starts/s on a loaded 2-core machine). It
 * dies with the process, so a SIGKILL leaves no orphan; its checkpoint makes a restart resume.
 */
export async function startReadModelThread(
  config: ReadModelThreadConfig,
  logger: Logger,
  startTimeoutMs = 60_000,
): Promise<ReadModelThread> {
  const threadConfig = readModelThreadConfigSchema.parse(config);
  const log = logger.child({ component: 'read-model-thread' });
  // The engine beside it (same process, same log) just committed most of what the read model
  // applies: its feed hands the commits over, so the thread reads no page for them.
  const channel = new MessageChannel();
  const consumed = new SharedArrayBuffer(8);
  const fed =
    !threadConfig.eventstoreUrl &&
    forwardLiveFeed({ connectionString: threadConfig.databaseUrl }, channel.port1, consumed);
  if (!fed) channel.port1.close();
  const worker = new Worker(new URL('./read-model-thread.worker.js', import.meta.url), {
    workerData: { config: threadConfig, fedBy: fed ? { port: channel.port2, consumed } : undefined },
    transferList: fed ? [channel.port2] : [],
    name: 'read-models',
  });
  let stopping = false;
  let stopped: (() => void) | undefined;
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  const failed = new Promise<Error>((resolve) => {
    worker.on('error', (err) => {
      log.error({ err }, 'read-model thread failed');
      resolve(err);
    });
    void exited.then((code) => {
      if (!stopping) resolve(new AppError('unavailable', `read-model thread exited with ${code}`));
    });
  });
  const ready = new Promise<void>((resolve, reject) => {
    worker.on('message', (raw: unknown) => {
      const m = readModelThreadMessageSchema.safeParse(raw);
      if (!m.success) return log.warn({ issues: m.error.issues }, 'unexpected message from the read-model thread');
      if (m.data.type === 'ready') resolve();
      else if (m.data.type === 'stopped') stopped?.();
      else reject(new AppError('unavailable', `read-model thread failed: ${m.data.message}`));
    });
    void failed.then(reject);
  });
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const done = new Promise<void>((r) => (stopped = r));
    worker.postMessage({ type: 'stop' });
    // A thread that cannot stop cleanly is ended: its uncommitted batch rolls back with the connection.
    const timer = setTimeout(() => void worker.terminate(), 10_000);
    await Promise.race([done.then(() => exited), exited]);
    clearTimeout(timer);
  };
  const timer = setTimeout(() => void worker.terminate(), startTimeoutMs);
  try {
    await ready;
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  log.info('workflow read model running on its own thread');
  return { stop, failed };
}
