/** Where "now" comes from; injected so tests can move time by hand. */
export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };
