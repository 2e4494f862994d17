/**
 * Deterministic time arithmetic and jitter. Nothing here reads a clock: "now" is always a
 * command timestamp, and randomness comes from the execution's seed, so replaying the same
 * commands yields the same events.
 */
import { MAX_RETRY_DELAY_MS, type BackoffPolicy } from '../definition/schema.js';

/** ISO instant + milliseconds -> ISO instant. */
export function addMs(iso: string, ms: number): string {
  return new Date(Date.parse(iso) + ms).toISOString();
}

/** The last instant PostgreSQL's timestamptz takes in the ISO form JavaScript writes (a later year is written `+0YYYYY`). */
const LAST_STORABLE = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * `iso` as an instant a timestamptz column takes: a later one (recorded before retry delays were
 * bounded) is the last one it takes, an unreadable one is null. Without this, one such event
 * stopped a projection for every execution, retrying the same batch for good.
 */
export function storableInstant(iso: string | null | undefined): string | null {
  if (iso === null || iso === undefined) return null;
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return null;
  return t > LAST_STORABLE ? new Date(LAST_STORABLE).toISOString() : iso;
}

/** a >= b for ISO instants. */
export function notBefore(a: string, b: string): boolean {
  return Date.parse(a) >= Date.parse(b);
}

/** 32-bit FNV-1a of a string. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A number in [0, 1) determined by seed and key (one mulberry32 step). */
export function seededUnit(seed: number, key: string): number {
  let t = (hash32(`${seed}:${key}`) + 0x6d2b79f5) >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/**
 * Delay before attempt `nextAttempt` (2 = first retry): exponential, capped at maxMs, then up to
 * `jitter` of it removed at random so retries of many executions do not arrive in lockstep.
 */
export function backoffDelay(policy: BackoffPolicy, nextAttempt: number, seed: number, key: string): number {
  // Bounded again here: a definition stored before the schema bounded its backoff still decides.
  const base = Math.min(
    MAX_RETRY_DELAY_MS,
    policy.maxMs,
    policy.initialMs * Math.pow(policy.factor, Math.max(0, nextAttempt - 2)),
  );
  const jittered = base * (1 - policy.jitter * seededUnit(seed, `${key}:${nextAttempt}`));
  return Math.max(0, Math.round(jittered));
}

/** How long transient errors of one unit are retried, from its first schedule, before the step fails. */
export const TRANSIENT_RETRY_BUDGET_MS = 120_000;
const TRANSIENT_INITIAL_MS = 250;
const TRANSIENT_MAX_MS = 10_000;

/**
 * Delay before the `n`-th transient retry (1 = first): exponential from 250 ms, capped at 10 s,
 * with up to half of it removed at random (seeded) so a burst of refused calls does not come back
 * in lockstep.
 */
export function transientDelay(n: number, seed: number, key: string): number {
  const base = Math.min(TRANSIENT_MAX_MS, TRANSIENT_INITIAL_MS * Math.pow(2, Math.max(0, n - 1)));
  return Math.max(1, Math.round(base * (1 - 0.5 * seededUnit(seed, `${key}:transient:${n}`))));
}

/**
 * How long a step's call may wait for a worker slot (an MCP server's bulkhead queue) before it
 * runs. A worker that says the call is queued moves the attempt's deadline to queued + this +
 * the step's timeout; once it says the call started, the deadline is started + the step's
 * timeout. So `timeout_ms` measures the call's own work, and a queue that never drains still
 * ends the attempt (the worker refuses a call that waited this long: `rate_limited`, retried).
 */
export const STEP_QUEUE_WAIT_BUDGET_MS = 60_000;
/**
 * The same for an agent step's task waiting for a free agent in the task dispatcher's queue,
 * which has no bound of its own: under load a task can wait minutes for an agent while taking
 * no work, and its own timeout counts from its assignment.
 */
export const AGENT_QUEUE_WAIT_BUDGET_MS = 600_000;

/** The queue-wait budget of a step by what it uses (`agent:...` or anything else). */
export const queueWaitBudgetMs = (uses: string): number =>
  uses.startsWith('agent:') ? AGENT_QUEUE_WAIT_BUDGET_MS : STEP_QUEUE_WAIT_BUDGET_MS;
