import { oneLine } from './output.js';
/** Exit codes of every command (documented in docs/cli.md). */
export const EXIT = {
  ok: 0,
  /** Bad usage: unknown command or option, unreadable input, bad JSON. */
  usage: 1,
  /** The API refused the request (4xx): validation, auth, not found, conflict. */
  api: 2,
  /** The server failed (5xx) or could not be reached. */
  server: 3,
  /** The request was served but the work ended badly (workflow or task failed, canceled, timed out). */
  failed: 4,
} as const;

/** An RFC 9457 problem document as the gateway sends it. */
export interface Problem {
  readonly title?: string;
  readonly status?: number;
  readonly detail?: string;
  readonly code?: string;
  readonly correlationId?: string;
  readonly errors?: readonly { path?: string; message?: string; in?: string }[];
  readonly [k: string]: unknown;
}

/** A failure the CLI reports on stderr and turns into its exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly problem?: Problem,
  ) {
    super(message);
  }
}

/** The lines printed for an error: the problem's title, detail, field errors and correlation id. */
export function describeError(err: CliError): string {
  const p = err.problem;
  if (!p) return `error: ${err.message}`;
  // A line each, whatever newlines the server's texts hold (they cannot forge a line of their own).
  const lines = [`error: ${p.status ?? ''} ${p.title ?? 'request failed'}`.replace(/\s+/g, ' ').trim()];
  if (p.detail) lines.push(`  ${p.detail}`);
  for (const e of p.errors ?? []) lines.push(`  - ${e.in ? `${e.in} ` : ''}${e.path ?? ''}: ${e.message ?? ''}`);
  if (p.correlationId) lines.push(`  correlation id: ${p.correlationId}`);
  return lines.map(oneLine).join('\n');
}
