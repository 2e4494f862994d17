import { AppError } from '@switchyard/platform';

/**
 * Resources of a filesystem server's host that run out and come back by themselves (files
 * deleted, descriptors closed, memory freed): the same class of failure as PostgreSQL's own
 * SQLSTATE 53 (disk full, out of memory, too many connections) and a socket's `EMFILE` /
 * `ENFILE`, which the system already treats as passing. `EIO` is not one: it reports a failing
 * device or a lost mount, not a shortage, and repeating the write only delays and hides that.
 */
const SHORTAGES = {
  ENOSPC: { what: 'disk space', retryAfterMs: 5_000 },
  EDQUOT: { what: 'disk quota', retryAfterMs: 5_000 },
  ENOMEM: { what: 'memory', retryAfterMs: 5_000 },
  EMFILE: { what: 'file descriptors (its process is at its limit)', retryAfterMs: 1_000 },
  ENFILE: { what: 'file descriptors (the system is at its limit)', retryAfterMs: 1_000 },
} as const;

type ShortageCode = keyof typeof SHORTAGES;

/**
 * Node's message for a failed fs call, as the official filesystem server returns it as its tool
 * error's text (`ENOSPC: no space left on device, write`, then the path quoted when there is one;
 * older versions put `Error: ` before it). Anchored at the start, so a text that only mentions a
 * code is not taken for one.
 */
const NODE_FS_ERROR = /^(?:Error: )?(ENOSPC|EDQUOT|ENOMEM|EMFILE|ENFILE): [^,\n]+, [a-z_]+(?=$|\s)/;

/**
 * The `unavailable` (retryable) error a filesystem server's tool error stands for when its text is
 * Node's error for a resource its host is short of, with that text kept; undefined for any other
 * text (a refusal, a missing file: the same call would get the same answer).
 */
export function hostShortageError(server: string, tool: string, text: string): AppError | undefined {
  const code = NODE_FS_ERROR.exec(text)?.[1] as ShortageCode | undefined;
  if (!code) return undefined;
  const { what, retryAfterMs } = SHORTAGES[code];
  return new AppError(
    'unavailable',
    `MCP server ${server}: its host is short of ${what}; try again later: ${text}`,
    { server, tool, host_shortage: code, retry_after_ms: retryAfterMs },
    true,
  );
}
