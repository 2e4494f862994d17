/**
 * Helpers for this package's specs (not exported from the index): bounded waits,
 * an event recorder, and the official server-everything started over Streamable HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { AppError, createLogger, type Logger } from '@switchyard/platform';
import type { McpEvent, McpEventType } from '@switchyard/contracts';
import { mcpEventSchema } from '@switchyard/contracts';
import { resolvePackageBin } from './registry/resolve-bin.js';

export const testLogger = (): Logger => createLogger('connectors-test', process.env.LOG_LEVEL ?? 'silent');

/** Poll `cond` until true; throws naming `what` after `timeoutMs` (a bound, never a pass criterion). */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
  everyMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Await `p` and assert it failed with an AppError of `code`; returns that error. */
export async function expectAppError(p: Promise<unknown>, code: string): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AppError, `expected AppError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected AppError(${code}), it succeeded`);
}

/** Collects events, validating each against the published schema as it arrives. */
export class EventRecorder {
  readonly events: McpEvent[] = [];
  readonly invalid: unknown[] = [];
  readonly sink = (e: McpEvent): void => {
    if (!mcpEventSchema.safeParse(e).success) this.invalid.push(e);
    this.events.push(e);
  };
  of<K extends McpEventType>(type: K): Extract<McpEvent, { type: K }>[] {
    return this.events.filter((e) => e.type === type) as Extract<McpEvent, { type: K }>[];
  }
  count(type: McpEventType): number {
    return this.of(type).length;
  }
  types(): string[] {
    return this.events.map((e) => e.type);
  }
  /** Index of the first event of `type` at or after `from` (-1 when none). */
  indexOf(type: McpEventType, from = 0): number {
    return this.events.findIndex((e, i) => i >= from && e.type === type);
  }
  waitFor(type: McpEventType, n = 1, timeoutMs = 15_000): Promise<void> {
    return waitFor(() => this.count(type) >= n, `${n} x ${type} (got ${this.types().join(',')})`, timeoutMs);
  }
}

export const everythingBin = (): string => resolvePackageBin('@modelcontextprotocol/server-everything');

export interface HttpServerHandle {
  readonly url: string;
  readonly proc: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Start server-everything in Streamable HTTP mode (its CLI: `index.js streamableHttp`, port from PORT, path /mcp). */
export async function startEverythingHttp(port: number, timeoutMs = 20_000): Promise<HttpServerHandle> {
  const proc = spawn(process.execPath, [everythingBin(), 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server-everything HTTP did not start on ${port} in ${timeoutMs} ms`)),
      timeoutMs,
    );
    let err = '';
    proc.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('listening on port')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server-everything HTTP exited with ${code}: ${err.slice(-500)}`));
    });
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  proc.stderr.resume();
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    proc,
    async stop(signal: NodeJS.Signals = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}
