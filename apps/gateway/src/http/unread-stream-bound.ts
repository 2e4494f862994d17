import type { ServerResponse } from 'node:http';

/** How much a long-lived response may hold for a client that does not read it, and for how long. */
export interface UnreadStreamLimits {
  /** Bytes waiting in the process for the client past which the stream is watched. */
  readonly maxPendingBytes: number;
  /** While over the bound, how long the client may take no bytes at all before the stream is cut. */
  readonly stallMs: number;
}

/** What the bound reports when it cuts: bytes that waited, and why. */
export interface UnreadStreamCut {
  readonly pendingBytes: number;
  readonly reason: 'stalled' | 'piling';
}

const byteLength = (chunk: unknown): number =>
  typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk instanceof Uint8Array ? chunk.byteLength : 0;

/**
 * Bounds what a streamed response (SSE) holds for its client. Every write goes through it:
 * - over `maxPendingBytes` waiting, the client must take bytes: a watch checks every `stallMs`
 *   that some of what was written has left the process, and cuts the stream when none has;
 *   a slow reader that keeps reading, or one large answer being read, is not cut;
 * - a stream that was already over the bound and grows past twice it is cut at once: answers
 *   keep coming (messages admitted before it backed up) while its client reads nothing.
 * Cut means `onCut`, then the response destroyed (an end would wait behind the unread bytes).
 * Without this, a client that keeps a stream open and never reads grows the process's memory
 * with everything sent to it until the process dies.
 */
export function boundUnreadStream(
  res: ServerResponse,
  limits: UnreadStreamLimits,
  onCut: (cut: UnreadStreamCut) => void,
): void {
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  let written = 0;
  let watch: NodeJS.Timeout | undefined;
  let cut = false;
  /** Bytes that have left the process (to the kernel) so far. */
  const taken = () => written - res.writableLength;
  const cutNow = (reason: UnreadStreamCut['reason']) => {
    if (cut) return;
    cut = true;
    clearInterval(watch);
    onCut({ pendingBytes: res.writableLength, reason });
    res.destroy();
  };
  const startWatch = () => {
    let lastTaken = taken();
    watch = setInterval(() => {
      if (res.writableLength <= limits.maxPendingBytes) {
        clearInterval(watch);
        watch = undefined;
        // `<=`: each new write's chunk framing counts as waiting, not as written.
      } else if (taken() <= lastTaken) cutNow('stalled');
      else lastTaken = taken();
    }, limits.stallMs);
    watch.unref();
  };
  res.write = ((...args: unknown[]) => {
    if (cut) return false;
    const before = res.writableLength;
    written += byteLength(args[0]);
    const ok = write(...args);
    if (before > limits.maxPendingBytes && res.writableLength > 2 * limits.maxPendingBytes) cutNow('piling');
    else if (!watch && res.writableLength > limits.maxPendingBytes) startWatch();
    return ok;
  }) as typeof res.write;
  res.once('close', () => clearInterval(watch));
}
