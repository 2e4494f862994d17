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

/**
 * Whether bytes of the response's connection reached the kernel since `before` (a probe taken
 * earlier), and the probe now. A write is one request to libuv, counted in `writableLength`
 * until the last of its bytes is written: a large answer shows no change there while its client
 * reads it. So the probe is the bytes whose writes completed (`bytesWritten` counts every byte
 * handed to the socket, `writableLength` those not written yet) and, while that stays the same
 * (the same write is in flight), the bytes of that write libuv still holds (`writeQueueSize`).
 */
type Probe = { readonly completed: number; readonly queued: number };
function probe(res: ServerResponse): Probe {
  const socket = res.socket;
  if (!socket) return { completed: 0, queued: 0 };
  // libuv's handle (not in Node's types): the bytes of the write in flight not yet written.
  const handle = (socket as unknown as { _handle?: { writeQueueSize?: number } | null })._handle;
  return { completed: socket.bytesWritten - socket.writableLength, queued: handle?.writeQueueSize ?? 0 };
}
const moved = (before: Probe, now: Probe): boolean =>
  now.completed > before.completed || (now.completed === before.completed && now.queued < before.queued);

/**
 * Bounds what a streamed response (SSE) holds for its client. Every write goes through it:
 * - over `maxPendingBytes` waiting, the client must take bytes: a watch checks every `stallMs`
 *   that some of what was written has reached the kernel, and cuts the stream when none has;
 *   a slow reader that keeps reading, or one large answer being read, is not cut;
 * - a stream over the bound that grows by another bound's worth while its client takes nothing
 *   (for at least a second, or half the stall time) is cut at once: answers keep coming (messages admitted before it backed up). A client that
 *   reads a large answer is not cut for what is written after it.
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
  let watch: NodeJS.Timeout | undefined;
  let pilingCheck: NodeJS.Timeout | undefined;
  /** While over the bound: what waited when it went over, and the last time bytes were taken. */
  let over: { pending: number; progress: Probe; progressAt: number } | undefined;
  // A client that reads takes bytes within this long; writes made in the same moment as a large
  // one (before any byte could leave) are not piling.
  const pilingAfterMs = Math.min(1_000, limits.stallMs / 2);
  let cut = false;
  const stopWatching = () => {
    clearInterval(watch);
    clearTimeout(pilingCheck);
    watch = pilingCheck = over = undefined;
  };
  const cutNow = (reason: UnreadStreamCut['reason']) => {
    if (cut) return;
    cut = true;
    stopWatching();
    onCut({ pendingBytes: res.writableLength, reason });
    res.destroy();
  };
  // Piling: another bound's worth added since it went over, and no byte taken for pilingAfterMs
  // (checked on each write, and again once that time has passed since the last byte was taken).
  // One timer at a time: a write while it waits leaves it (it checks again when it fires).
  const checkPiling = () => {
    if (!over || cut) return;
    const now = probe(res);
    if (moved(over.progress, now)) over = { ...over, progress: now, progressAt: Date.now() };
    if (res.writableLength - over.pending <= limits.maxPendingBytes) return;
    const idle = Date.now() - over.progressAt;
    if (idle >= pilingAfterMs) return cutNow('piling');
    if (pilingCheck) return;
    pilingCheck = setTimeout(() => {
      pilingCheck = undefined;
      checkPiling();
    }, pilingAfterMs - idle);
    pilingCheck.unref();
  };
  const startWatch = () => {
    let last = probe(res);
    over = { pending: res.writableLength, progress: last, progressAt: Date.now() };
    watch = setInterval(() => {
      const now = probe(res);
      if (res.writableLength <= limits.maxPendingBytes) stopWatching();
      else if (!moved(last, now)) cutNow('stalled');
      last = now;
    }, limits.stallMs);
    watch.unref();
  };
  res.write = ((...args: unknown[]) => {
    if (cut) return false;
    const ok = write(...args);
    if (over) checkPiling();
    else if (res.writableLength > limits.maxPendingBytes) startWatch();
    return ok;
  }) as typeof res.write;
  res.once('close', stopWatching);
}

/** The stall watch of each answer `cutStalledAnswer` bounds, for `watchStreamedAnswer` to start early. */
const stallWatches = new WeakMap<ServerResponse, () => void>();

/**
 * Mark `res` as an answer streamed in chunks that ends when its last chunk went out (a large
 * execution detail): `cutStalledAnswer` watches it from each write the socket could not take, not
 * only from its end, which a client that stopped reading never lets it reach. Only marked answers
 * pay for the hook on their writes; an event stream has bounds of its own (boundUnreadStream).
 */
export function watchStreamedAnswer(res: ServerResponse): void {
  const startWatch = stallWatches.get(res);
  if (!startWatch) return;
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  res.write = ((...args: unknown[]) => {
    const ok = write(...args);
    if (!ok) startWatch();
    return ok;
  }) as typeof res.write;
}

/**
 * Cuts an answer of which no byte reaches the kernel for `stallMs`: watched (every `stallMs`)
 * from the moment it is ended while bytes still wait, and, for an answer marked by
 * `watchStreamedAnswer`, from each write the socket could not take until its bytes went out; a
 * client that takes some keeps it. An answer the kernel took whole is never watched. Without it,
 * a client that sends requests and never reads their answers holds each answer in memory (and a
 * streamed one whatever it holds, a turn of the payload reads included) for as long as its
 * connection stays open.
 */
export function cutStalledAnswer(res: ServerResponse, stallMs: number, onCut: (pendingBytes: number) => void): void {
  let watch: NodeJS.Timeout | undefined;
  const stop = () => {
    clearInterval(watch);
    watch = undefined;
  };
  const startWatch = () => {
    if (watch || res.writableLength === 0 || res.writableFinished || res.destroyed) return;
    let last = probe(res);
    watch = setInterval(() => {
      const now = probe(res);
      if (res.writableLength === 0) return stop();
      if (moved(last, now)) {
        last = now;
        return;
      }
      stop();
      onCut(res.writableLength);
      res.destroy();
    }, stallMs);
    watch.unref();
  };
  stallWatches.set(res, startWatch);
  res.once('prefinish', startWatch);
  res.once('finish', stop);
  res.once('close', stop);
}
