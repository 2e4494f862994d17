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
}

export interface StdioChild {
  /** The client connected to the current child process (shared by all HTTP requests). */
  readonly client: Client;
  /** Process id of the current child, null while it is down. */
  readonly pid: number | null;
  /** True while the child process is connected. */
  alive(): boolean;
  close(): Promise<void>;
}

/**
 * Start an MCP server as a child process over stdio and keep a client connected to it. When the
 * child dies it is restarted with backoff (1 s doubling to 30 s); calls made meanwhile fail and
 * `alive()` is false. The first start must succeed (its error is thrown).
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

  return {
    get client(): Client {
      return client!;
    },
    get pid(): number | null {
      return connected ? ((client?.transport as StdioClientTransport | undefined)?.pid ?? null) : null;
    },
    alive: () => connected,
    close: async () => {
      closing = true;
      connected = false;
      if (restartTimer) clearTimeout(restartTimer);
      await client?.close();
    },
  };
}
