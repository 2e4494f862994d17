import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { sandboxed, type Logger, type StdioSandbox } from '@switchyard/platform';
import { SafeMcpSchemaValidator } from '@switchyard/contracts';

export interface StdioChildOptions {
  /** Used in logs and as the client name (`switchyard-<name>-bridge`). */
  readonly name: string;
  /** Script run with this Node binary (an installed official server: no npx, nothing fetched). */
  readonly script: string;
  readonly args?: readonly string[];
  /** Environment of the child, on top of the SDK's safe default variables (PATH, HOME, ...). */
  readonly env?: Record<string, string>;
  readonly logger: Logger;
  /** Where the child runs (see StdioSandbox); none: as a plain child. */
  readonly sandbox?: StdioSandbox;
  /** Paths it may write in the sandbox (everything else it sees read-only). */
  readonly writable?: readonly string[];
  /** How often the child is pinged and how long a ping may take (default 10 s, 5 s). */
  readonly ping?: { readonly everyMs: number; readonly timeoutMs: number };
}

export interface StdioChild {
  /** The client connected to the current child process (shared by all HTTP requests). */
  readonly client: Client;
  /** Process id of the current child, null while it is down. */
  readonly pid: number | null;
  /** True while the child process is connected. */
  alive(): boolean;
  /** Whether the child answers an MCP ping within `timeoutMs` (a process that exists may still be hung). */
  answers(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

/** How often the child is pinged, how long a ping may take, and how many missed pings replace it. */
const PING_EVERY_MS = 10_000;
const PING_TIMEOUT_MS = 5_000;
const MISSED_PINGS_TO_REPLACE = 2;

/**
 * Start an MCP server as a child process over stdio and keep a client connected to it. When the
 * child dies it is restarted with backoff (1 s doubling to 30 s); calls made meanwhile fail and
 * `alive()` is false. A child that lives but stops answering (hung, or stopped) is pinged: after
 * MISSED_PINGS_TO_REPLACE missed pings it is ended and so restarted, as a dead one is; a process
 * that only exists would otherwise be reported healthy while no call is answered. The first start
 * must succeed (its error is thrown).
 */
export async function startStdioChild(opts: StdioChildOptions): Promise<StdioChild> {
  const log = opts.logger.child({ component: `${opts.name}-bridge` });
  const outputSchemas = new SafeMcpSchemaValidator((why) =>
    log.warn({ why }, "a tool's output schema cannot be used: its results are not checked against it"),
  );
  let client: Client | undefined;
  let connected = false;
  let closing = false;
  let restartDelay = 1000;
  let restartTimer: NodeJS.Timeout | undefined;

  const connect = async (): Promise<void> => {
    const plain = [opts.script, ...(opts.args ?? [])];
    const run = opts.sandbox
      ? sandboxed(opts.sandbox, process.execPath, plain, opts.writable)
      : { command: process.execPath, args: plain };
    const transport = new StdioClientTransport({
      command: run.command,
      args: run.args,
      // The SDK adds its short list of safe variables: the child never sees the whole parent environment.
      ...(opts.env ? { env: opts.env } : {}),
      stderr: 'pipe',
    });
    // The child logs to stderr; keep it in our logs rather than on our stdout.
    transport.stderr?.on('data', (d: Buffer) =>
      log.debug({ child: d.toString('utf8').trim() }, `${opts.name} server stderr`),
    );
    // The stdio server is third-party code: its output schemas' patterns run on RE2, not on our event loop's RegExp.
    const next = new Client(
      { name: `switchyard-${opts.name}-bridge`, version: '0.1.0' },
      { jsonSchemaValidator: outputSchemas },
    );
    next.onclose = () => {
      if (client !== next) return;
      connected = false;
      if (closing) return;
      log.error({ retryInMs: restartDelay }, `${opts.name} server exited; restarting`);
      if (restartTimer) clearTimeout(restartTimer); // a failed connect may report its close twice
      restartTimer = setTimeout(() => {
        connect().then(
          () => (restartDelay = 1000),
          (e: unknown) => {
            log.error({ err: e }, `${opts.name} server restart failed`);
            restartDelay = Math.min(restartDelay * 2, 30_000);
            next.onclose?.();
          },
        );
      }, restartDelay);
    };
    client = next;
    await next.connect(transport);
    connected = true;
    log.info({ pid: transport.pid }, `${opts.name} server started`);
  };
  await connect();

  let missed = 0;
  let pinging = false;
  const answers = async (timeoutMs = opts.ping?.timeoutMs ?? PING_TIMEOUT_MS): Promise<boolean> => {
    if (!connected || !client) return false;
    try {
      await client.ping({ timeout: timeoutMs });
      return true;
    } catch {
      return false;
    }
  };
  const watchdog = setInterval(() => {
    if (pinging || !connected || closing) return;
    pinging = true;
    const watched = client;
    void answers()
      .then(async (ok) => {
        if (ok || client !== watched || !connected) return void (missed = 0);
        missed += 1;
        if (missed < MISSED_PINGS_TO_REPLACE) return;
        missed = 0;
        log.error(
          { missedPings: MISSED_PINGS_TO_REPLACE },
          `${opts.name} server stopped answering pings; replacing it`,
        );
        // Closing the transport ends the process (SIGKILL if it must) and onclose restarts it.
        await watched?.transport?.close();
      })
      .catch((e: unknown) => log.warn({ err: e }, `${opts.name} server ping check failed`))
      .finally(() => (pinging = false));
  }, opts.ping?.everyMs ?? PING_EVERY_MS);
  watchdog.unref();

  return {
    get client(): Client {
      return client!;
    },
    get pid(): number | null {
      return connected ? ((client?.transport as StdioClientTransport | undefined)?.pid ?? null) : null;
    },
    alive: () => connected,
    answers,
    close: async () => {
      closing = true;
      clearInterval(watchdog);
      connected = false;
      if (restartTimer) clearTimeout(restartTimer);
      await client?.close();
    },
  };
}
