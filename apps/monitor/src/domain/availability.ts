import type { HealthEvent, ServiceStatus } from './health.js';

/**
 * Availability math over recorded status intervals (pure). Time observed as `unknown` is left out
 * of the denominator and reported as `unknownMs`, and so is time `unconfigured` (nothing to run); `degraded` counts as available unless
 * `degradedCountsAsDown` is set. Down time is the `down` intervals, and a `down` interval starts
 * at the first failed probe of its run (see intervalStart), so an outage counts from when the
 * service stopped answering as far as the monitor can know, not from when the failures had lasted
 * long enough to call it down.
 *
 * A time the monitor itself did not run is never `up`: nothing probed, so an open `up` interval
 * must not bridge it. Each service's history as probed stops at its last probe before the stop
 * (ServiceUnmonitored); the gap up to its next verdict is `down` for a service that shares the
 * monitor's process (if the monitor was not running, neither was it) and `unknown` for one that
 * may have run on without it. The choice errs on the side an SLA should: a colocated service that
 * outlived the monitor (only the monitor's unit restarted, for a few seconds) is counted down for
 * that time, never up for a time nobody looked. `unmonitoredMs` says how much of the window was
 * such a gap, whichever way it counted.
 *
 * The same holds while the monitor runs: two probes of a service much further apart than the probe
 * interval (a suspended host, a stalled monitor, a step of the wall clock: see unprobedGap) leave
 * the time between them unmonitored, counted `unknown`, instead of up.
 *
 * A step back of the wall clock leaves what was stamped while it was ahead in the future of every
 * later reading, where it counts for nothing (clip): an open `up` interval starting there would
 * never grow. So the first probe after the step restates the service's verdict at its own time
 * (decideHealth), and that event, starting before them, takes the intervals stamped ahead away
 * and ends the one it falls in (statusIntervals): observed time grows with the probes again.
 */
export interface StatusInterval {
  readonly status: ServiceStatus;
  readonly start: number; // epoch ms
  readonly end: number | null; // null = still open (ends at `now`)
  /** Nobody probed (the monitor was not running, or its probes were too far apart: ServiceUnmonitored): `down` or `unknown` by its verdict. */
  readonly unmonitored?: boolean;
}

export interface Incident {
  readonly start: number;
  readonly end: number | null; // null = ongoing
  readonly durationMs: number; // up to `now` when ongoing, clipped to the window
}

export interface WindowAvailability {
  readonly window: string;
  readonly windowMs: number;
  readonly observedMs: number;
  readonly downMs: number;
  /** Time in the window nothing knew the service's status (a gap counted unknown): not in `observedMs`. */
  readonly unknownMs: number;
  /** Time in the window nobody probed (the monitor not running, or a probe gap), counted as down or unknown (see the header). */
  readonly unmonitoredMs: number;
  /** Percentage 0..100, or null when nothing was observed in the window. */
  readonly uptimePercent: number | null;
  /** The window's latest MAX_LISTED_INCIDENTS incidents, oldest first (all of them count in the figures). */
  readonly incidents: readonly Incident[];
  /** How many incidents the window had in all. */
  readonly incidentCount: number;
  /** Mean time to recovery over incidents that both started and ended in the window; null without any. */
  readonly mttrMs: number | null;
  readonly slaTargetPercent: number;
  /** Null when nothing was observed. */
  readonly slaMet: boolean | null;
}

/**
 * Incidents listed per window: a service flapping every few minutes for a month had thousands, and
 * listing them all made the report of every service too large to answer (413).
 */
export const MAX_LISTED_INCIDENTS = 20;

export const availabilityWindows = {
  '1h': 3_600_000,
  '24h': 86_400_000,
  '7d': 604_800_000,
  '30d': 2_592_000_000,
} as const;
export type AvailabilityWindow = keyof typeof availabilityWindows;

export interface AvailabilityOptions {
  readonly now: number;
  readonly slaTargetPercent?: number; // default 99.9
  readonly degradedCountsAsDown?: boolean;
}

/** The status an event puts a service in (its row in the services read model). */
export function statusOf(e: HealthEvent): ServiceStatus {
  switch (e.type) {
    case 'ServiceWentDown':
      return 'down';
    case 'ServiceDegraded':
      return 'degraded';
    case 'ServiceRecovered':
      return 'up';
    case 'ServiceUnconfigured':
      return 'unconfigured';
    case 'ServiceUnmonitored':
    case 'ServiceRetired':
      return 'unknown';
  }
}

/** The interval an event opens (none for a retirement: the history ends). */
export function openedInterval(e: HealthEvent): { status: ServiceStatus; unmonitored: boolean } | null {
  if (e.type === 'ServiceRetired') return null;
  if (e.type === 'ServiceUnmonitored') return { status: e.data.countsAs, unmonitored: true };
  return { status: statusOf(e), unmonitored: false };
}

/**
 * Where the interval an event opens starts. A service that fails its probes has been failing since
 * the first failed probe was sent (`failingSince`): a `failing` degradation and `down` start there,
 * not when the monitor decided (a probe that times out is decided 15 s after it went out). Any
 * other event starts at its own time.
 */
export function intervalStart(e: HealthEvent): number {
  if (e.type === 'ServiceUnmonitored') return e.data.from;
  if (e.type === 'ServiceRetired') return e.data.lastProbeAt ?? e.metadata.at;
  if (e.type === 'ServiceRecovered' || e.type === 'ServiceUnconfigured' || e.data.failingSince === null)
    return e.metadata.at;
  return Math.min(e.data.failingSince, e.metadata.at);
}

/**
 * Fold a service's health events, in order, into its status intervals: each event opens one at
 * intervalStart; intervals that began after that start (the degradation of the same failing run)
 * give way to it, and an earlier one still open ends there. A retirement opens none, and takes
 * away what began at its start too (a gap opened at the same last probe), so the history ends at
 * the last probe. The monitor-services projection writes the same rows (applyHealthEvent).
 */
export function statusIntervals(events: readonly HealthEvent[]): StatusInterval[] {
  let out: StatusInterval[] = [];
  for (const e of events) {
    const start = intervalStart(e);
    const retired = e.type === 'ServiceRetired';
    out = out
      .filter((iv) => iv.start < start || (!retired && iv.start === start))
      .map((iv) => (iv.end === null || iv.end > start ? { ...iv, end: start } : iv));
    const opened = openedInterval(e);
    if (opened)
      out.push({ status: opened.status, start, end: null, ...(opened.unmonitored ? { unmonitored: true } : {}) });
  }
  return out;
}

const clip = (s: number, e: number, from: number, to: number): number =>
  Math.max(0, Math.min(e, to) - Math.max(s, from));

/** Availability over one window ending at `now`. */
export function availabilityOver(
  intervals: readonly StatusInterval[],
  windowName: string,
  windowMs: number,
  opts: AvailabilityOptions,
): WindowAvailability {
  const { now } = opts;
  const from = now - windowMs;
  const target = opts.slaTargetPercent ?? 99.9;
  const isDown = (s: ServiceStatus) => s === 'down' || (opts.degradedCountsAsDown === true && s === 'degraded');
  const sorted = [...intervals].sort((a, b) => a.start - b.start);
  let observedMs = 0;
  let downMs = 0;
  let unknownMs = 0;
  let unmonitoredMs = 0;
  // Adjacent down intervals (e.g. down -> down after a restart) form one incident.
  const incidents: { start: number; end: number | null }[] = [];
  for (const iv of sorted) {
    const end = iv.end ?? now;
    const inWindow = clip(iv.start, end, from, now);
    if (iv.unmonitored) unmonitoredMs += inWindow;
    if (iv.status === 'unknown' || iv.status === 'unconfigured') {
      unknownMs += inWindow;
      continue;
    }
    if (isDown(iv.status)) {
      const last = incidents[incidents.length - 1];
      if (last && last.end !== null && last.end >= iv.start) last.end = iv.end;
      else incidents.push({ start: iv.start, end: iv.end });
    }
    if (inWindow === 0) continue;
    observedMs += inWindow;
    if (isDown(iv.status)) downMs += inWindow;
  }
  const inWindow = incidents
    .filter((i) => (i.end ?? now) > from && i.start < now)
    .map((i) => ({ start: i.start, end: i.end, durationMs: clip(i.start, i.end ?? now, from, now) }));
  const repaired = incidents.filter((i) => i.end !== null && i.start >= from && i.end <= now);
  const mttrMs = repaired.length ? repaired.reduce((s, i) => s + (i.end! - i.start), 0) / repaired.length : null;
  const uptimePercent = observedMs > 0 ? ((observedMs - downMs) / observedMs) * 100 : null;
  return {
    window: windowName,
    windowMs,
    observedMs,
    downMs,
    unknownMs,
    unmonitoredMs,
    uptimePercent,
    incidents: inWindow.slice(-MAX_LISTED_INCIDENTS),
    incidentCount: inWindow.length,
    mttrMs,
    slaTargetPercent: target,
    slaMet: uptimePercent === null ? null : uptimePercent >= target,
  };
}

/** Availability for the standard windows 1h / 24h / 7d / 30d. */
export function availabilityReport(
  intervals: readonly StatusInterval[],
  opts: AvailabilityOptions,
): Record<AvailabilityWindow, WindowAvailability> {
  const out = {} as Record<AvailabilityWindow, WindowAvailability>;
  for (const [name, ms] of Object.entries(availabilityWindows) as [AvailabilityWindow, number][]) {
    out[name] = availabilityOver(intervals, name, ms, opts);
  }
  return out;
}

/** A moment by the wall clock (epoch ms) and by the monotonic clock (ms, any origin). */
export interface ProbeInstant {
  readonly wall: number;
  readonly monotonic: number;
}

/**
 * The time nobody looked at a service between its previous probe outcome and its next probe, when
 * they are more than `maxGapMs` apart on either clock: the wall clock alone sees a suspend or a step
 * forward (the monotonic clock stands still through both), the monotonic clock alone a stalled
 * monitor whose wall clock was also set back. Null when they are close enough, or when the wall
 * clock went back (no wall time lies between them to mark).
 */
export function unprobedGap(
  previous: ProbeInstant,
  next: ProbeInstant,
  maxGapMs: number,
): { from: number; to: number } | null {
  const wallGap = next.wall - previous.wall;
  const monotonicGap = next.monotonic - previous.monotonic;
  if (wallGap <= maxGapMs && monotonicGap <= maxGapMs) return null;
  if (wallGap <= 0) return null;
  return { from: previous.wall, to: next.wall };
}
