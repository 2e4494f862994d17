/**
 * How far the wall clock moved against the monotonic one between two readings: a step of the
 * wall clock (an NTP correction, a resumed VM), positive forward, negative back. The engine's
 * timers and the automation schedules each watch it on their tick.
 */
export class WallClockWatch {
  private last: { readonly wall: number; readonly monotonic: number } | undefined;

  /**
   * Take a reading (`wall` epoch ms, `monotonic` performance.now(), read together) and return the
   * step since the previous one; undefined on the first.
   */
  step(wall: number, monotonic = performance.now()): number | undefined {
    const last = this.last;
    this.last = { wall, monotonic };
    return last === undefined ? undefined : wall - last.wall - (monotonic - last.monotonic);
  }
}
