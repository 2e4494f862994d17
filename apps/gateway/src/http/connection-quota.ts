import { AppError } from '@switchyard/platform';

/** The limits of one kind of long-lived connection, with the settings that change them (named in refusals). */
export interface ConnectionLimits {
  readonly perCaller: number;
  readonly total: number;
  readonly perCallerSetting: string;
  readonly totalSetting: string;
  /** What a caller at its share can do (default: close one first). */
  readonly howToFree?: string;
}

/**
 * Why one more connection is refused, if it is: rate_limited (429) when the caller holds
 * `mine` of its share, unavailable (503) when `open` fills the total.
 */
export function connectionRefusal(
  what: string,
  limits: ConnectionLimits,
  mine: number,
  open: number,
): AppError | undefined {
  const { perCaller, total, perCallerSetting, totalSetting } = limits;
  if (mine >= perCaller)
    return new AppError(
      'rate_limited',
      `too many open ${what} for this caller: at most ${perCaller} (${perCallerSetting}); ${limits.howToFree ?? 'close one first'}`,
      { limit: perCaller, open: mine, retry_after_ms: 1_000 },
      true,
    );
  if (open >= total)
    return new AppError(
      'unavailable',
      `too many open ${what}: at most ${total} (${totalSetting}); retry later`,
      { limit: total, retry_after_ms: 1_000 },
      true,
    );
  return undefined;
}

/**
 * Long-lived connections (live event streams, MCP sessions) counted per caller and in all. Each
 * holds memory and a subscription for as long as it stays open while the request rate limit
 * counts it once, so without a share per caller one key could take every slot and shut the
 * others out.
 */
export class ConnectionQuota {
  private readonly byCaller = new Map<string, number>();
  private count = 0;

  constructor(
    private readonly what: string,
    private readonly limits: ConnectionLimits,
  ) {}

  /** Connections open now. */
  get open(): number {
    return this.count;
  }

  /** Connections `caller` holds now. */
  openBy(caller: string): number {
    return this.byCaller.get(caller) ?? 0;
  }

  /**
   * Take a slot for `caller`, or throw: rate_limited (429) when the caller holds its share,
   * unavailable (503) when every slot is taken. Returns the release, which frees the slot once.
   */
  take(caller: string): () => void {
    const mine = this.openBy(caller);
    const refused = connectionRefusal(this.what, this.limits, mine, this.count);
    if (refused) throw refused;
    this.byCaller.set(caller, mine + 1);
    this.count++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.count--;
      const left = (this.byCaller.get(caller) ?? 1) - 1;
      if (left > 0) this.byCaller.set(caller, left);
      else this.byCaller.delete(caller);
    };
  }
}

/** The quota of calls answered on the request that made them (see DEFAULT_HELD_CALLS), for one endpoint. */
export const heldCallsQuota = (what: string, limits: { perCaller: number; total: number }): ConnectionQuota =>
  new ConnectionQuota(what, {
    ...limits,
    perCallerSetting: 'GATEWAY_HELD_CALLS_PER_CALLER',
    totalSetting: 'GATEWAY_HELD_CALLS_MAX',
    howToFree: 'wait for one to end, or start work without waiting for it (wait: false, returnImmediately)',
  });

/**
 * A share per caller of work that takes turns behind a bound of its own (filtered event pages,
 * definition checks): at most `perCaller` running or waiting, so one caller's flood leaves the
 * others their turns (the total is the turns' own bound's to keep).
 */
export const callerShareQuota = (what: string, perCaller: number): ConnectionQuota =>
  new ConnectionQuota(what, {
    perCaller,
    total: 100_000,
    perCallerSetting: 'per API key',
    totalSetting: 'in all',
    howToFree: 'wait for one to end',
  });

/** A body this large (Content-Length, or any body without one) takes a slot of largeBodiesQuota while it is received and handled. */
export const LARGE_BODY_BYTES = 64 * 1024;

/** The quota of large request bodies in flight (see DEFAULT_LARGE_BODIES). */
export const largeBodiesQuota = (limits: { perCaller: number; total: number }): ConnectionQuota =>
  new ConnectionQuota(`request bodies of ${LARGE_BODY_BYTES / 1024} KiB or more`, {
    ...limits,
    perCallerSetting: 'GATEWAY_LARGE_BODIES_PER_CALLER',
    totalSetting: 'GATEWAY_LARGE_BODIES_MAX',
    howToFree: 'wait for one to be answered',
  });
