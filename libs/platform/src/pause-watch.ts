/**
 * Whether this process is waking from a pause: stopped (SIGSTOP), its VM suspended, or its event
 * loop blocked for seconds. Requests read right after waking may have sat in the socket's buffer
 * for the whole pause, and one whose caller's timeout is shorter than the pause was given up by
 * that caller, which may have sent it again elsewhere; running it now would do its work a second
 * time. Measured on the monotonic clock only: no host's wall clock is trusted.
 *
 * A tick every `tickMs` notes the time; a tick later than due by `thresholdMs` or more ends a
 * pause of that length, which counts for `windowMs` after it (long enough for the buffered
 * requests to be read). I/O that runs before the late tick (the process woke inside its poll for
 * I/O) sees the pause as it still runs: the time since the last tick.
 */
export class PauseWatch {
  private readonly tickMs: number;
  private readonly thresholdMs: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private lastTick: number;
  private lastPause: { readonly ms: number; readonly endedAt: number } | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(o: { tickMs?: number; thresholdMs?: number; windowMs?: number; now?: () => number } = {}) {
    this.tickMs = o.tickMs ?? 100;
    this.thresholdMs = o.thresholdMs ?? 1_000;
    this.windowMs = o.windowMs ?? 1_000;
    this.now = o.now ?? (() => performance.now());
    this.lastTick = this.now();
  }

  /** Start ticking (the timer does not keep the process alive). */
  start(): this {
    if (this.timer) return this;
    this.lastTick = this.now();
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One tick: a late one ends a pause. Public for tests with their own clock. */
  tick(): void {
    const now = this.now();
    const late = now - this.lastTick - this.tickMs;
    if (late >= this.thresholdMs) this.lastPause = { ms: Math.round(late), endedAt: now };
    this.lastTick = now;
  }

  /** How long the pause this process is waking from lasted (ms), or 0 when it is not waking from one. */
  pausedFor(): number {
    const now = this.now();
    const running = now - this.lastTick - this.tickMs;
    if (running >= this.thresholdMs) return Math.round(running);
    if (this.lastPause && now - this.lastPause.endedAt <= this.windowMs) return this.lastPause.ms;
    return 0;
  }
}
