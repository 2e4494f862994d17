import { createHash, randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/nats-core';
import { JetStreamApiError } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { MCP_CALLS_BUCKET, MCP_CALLS_MAX_BYTES } from '@switchyard/contracts';
import { ensureKvBucket } from '@switchyard/messaging';
import { AppError, errorCodes, isAppError, logAtMostEvery, type ErrorCode, type Logger } from '@switchyard/platform';
import type { SharedCallCache, SharedCallId, SharedCallLease } from '../resilience/mcp-connector.js';
import { CLAIM_LOST } from '../errors.js';

export { MCP_CALLS_BUCKET };

export interface NatsKvCallCacheOptions {
  readonly nats: NatsConnection;
  readonly logger: Logger;
  /** Bucket name (default SWITCHYARD_MCP_CALLS); another one isolates a set of connectors (tests). */
  readonly bucket?: string;
  /** How long an entry lives after its last write (the bucket's TTL). Default 10 min, as the per-process cache. */
  readonly ttlMs?: number;
  /**
   * A running call's lease; renewed every third of it while it runs. A lease that ran out (its
   * process died) may be taken over: a retry after a killed process waits at most this long. Default 6 s.
   */
  readonly leaseMs?: number;
  /** How long a caller joining a call running in another process waits for its result before answering `timeout` (retryable). Default 120 s. */
  readonly joinWaitMs?: number;
  /**
   * Copies of the bucket in a JetStream cluster (NATS_STREAM_REPLICAS) when this process makes
   * it; an existing bucket with fewer is raised to it when `manage`. Default 1.
   */
  readonly replicas?: number;
  /** Whether this process's NATS user may create or change the bucket (default true; a role's own user may not). */
  readonly manage?: boolean;
  /**
   * How long a call waits on a bucket that does not answer (its node down, JetStream electing a
   * leader) before it runs without it: each request gets half, and taking a key makes at most
   * two. Default 1 s.
   */
  readonly timeoutMs?: number;
}

/** See NatsKvCallCacheOptions.timeoutMs. */
export const SHARED_CALL_TIMEOUT_MS = 1_000;

const errorCodeSchema = z.enum(Object.keys(errorCodes) as [ErrorCode, ...ErrorCode[]]);
/** One key's entry, as every connectors process reads and writes it (it crosses processes: parsed, never trusted). */
const entrySchema = z.discriminatedUnion('state', [
  z.object({ state: z.literal('running'), owner: z.string(), lease_until: z.number() }),
  z.object({ state: z.literal('done'), owner: z.string(), result: z.record(z.string(), z.unknown()) }),
  z.object({
    state: z.literal('failed'),
    owner: z.string(),
    error: z.object({
      code: errorCodeSchema,
      message: z.string(),
      retryable: z.boolean(),
      details: z.record(z.string(), z.unknown()).default({}),
    }),
  }),
]);
type Entry = z.infer<typeof entrySchema>;

type Claim =
  | { readonly kind: 'owner'; readonly revision: number; readonly at: number }
  | { readonly kind: 'done'; readonly result: CallToolResult }
  | { readonly kind: 'running'; readonly revision: number };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** The lease of a call run without the shared cache (unreachable): nobody else can take it. */
const unshared: SharedCallLease = { held: () => true };

/**
 * Keyed tool calls shared across connectors processes through a NATS KV bucket with a TTL:
 * the connectors already hold a NATS connection (and nothing else: the process needs no
 * database), and a bucket's TTL expires entries the way the per-process cache did.
 *
 * Per (server, tool, idempotency key), one entry:
 * 1. `create` (succeeds for exactly one process: the key's first writer) -> `running` with a
 *    lease; the owner runs the tool, renewing the lease while it runs, then writes `done` with
 *    the result, or `failed` with the error;
 * 2. a process whose create lost reads the entry: `done` -> the stored result, the tool does not
 *    run again; `running` -> it watches the key until `done` / `failed` (bounded by joinWaitMs);
 *    `failed`, or a lease that ran out (the owner died) -> it takes the key over with a
 *    compare-and-set on the revision (one winner) and runs the call itself. A joiner that was
 *    waiting when the call failed gets that failure, like a caller of the same process.
 * NATS KV unreachable: the call runs here without sharing (logged) after at most about
 * `timeoutMs` (1 s): a tool call is not refused, nor held long, because the cache is down; then
 * only the per-process cache holds.
 */
export class NatsKvCallCache implements SharedCallCache {
  private kv: Promise<KV> | undefined;
  private readonly owner = `${process.pid}-${randomUUID().slice(0, 8)}`;
  private readonly log: Logger;
  private readonly leaseMs: number;
  private readonly joinWaitMs: number;
  private readonly warnGate = logAtMostEvery(10_000);

  constructor(private readonly o: NatsKvCallCacheOptions) {
    this.log = o.logger.child({ component: 'mcp-shared-calls' });
    this.leaseMs = o.leaseMs ?? 6_000;
    this.joinWaitMs = o.joinWaitMs ?? 120_000;
  }

  /** The bucket (created when missing, with the configured replicas; an existing one with fewer raised to them when this user may). */
  bucket(): Promise<KV> {
    this.kv ??= ensureKvBucket(this.o.nats, {
      name: this.o.bucket ?? MCP_CALLS_BUCKET,
      ttlMs: this.o.ttlMs ?? 600_000,
      maxBytes: MCP_CALLS_MAX_BYTES,
      replicas: this.o.replicas ?? 1,
      manage: this.o.manage ?? true,
      timeoutMs: Math.max(1, Math.floor((this.o.timeoutMs ?? SHARED_CALL_TIMEOUT_MS) / 2)),
      logger: this.log,
    }).catch((err: unknown) => {
      this.kv = undefined;
      throw err;
    });
    return this.kv;
  }

  /** KV keys are subject tokens: a hash of server, tool and key (any characters, any length). */
  static keyOf(id: SharedCallId): string {
    return `c.${createHash('sha256').update(`${id.server}\u0000${id.tool}\u0000${id.key}`).digest('hex')}`;
  }

  async run(id: SharedCallId, execute: (lease: SharedCallLease) => Promise<CallToolResult>): Promise<CallToolResult> {
    let kv: KV;
    try {
      kv = await this.bucket();
    } catch (err) {
      this.warn(err, id, 'shared call cache unreachable; running the call without it');
      return execute(unshared);
    }
    const k = NatsKvCallCache.keyOf(id);
    const deadline = Date.now() + this.joinWaitMs;
    for (;;) {
      let claim: Claim;
      try {
        claim = await this.claim(kv, k);
      } catch (err) {
        this.warn(err, id, 'shared call cache failed; running the call without it');
        return execute(unshared);
      }
      if (claim.kind === 'done') return claim.result;
      if (claim.kind === 'owner') {
        const owned = await this.own(kv, k, claim.revision, claim.at, execute);
        if (owned.kind === 'result') return owned.result;
        // Held up past the lease before the call was sent: another process may own it now; join it.
        continue;
      }
      let outcome: Awaited<ReturnType<NatsKvCallCache['join']>>;
      try {
        outcome = await this.join(kv, k, deadline);
      } catch (err) {
        this.warn(err, id, 'shared call cache failed while waiting for another process; running the call without it');
        return execute(unshared);
      }
      if (outcome.kind === 'done') return outcome.result;
      if (outcome.kind === 'failed') throw outcome.error;
      if (outcome.kind === 'timeout') {
        throw new AppError(
          'timeout',
          `the call with this idempotency key still runs in another connectors process after ${this.joinWaitMs} ms`,
          { server: id.server, tool: id.tool },
          true,
        );
      }
      // 'free': the owner's lease ran out: try to take the key over.
    }
  }

  /** At most one such line every 10 s: with NATS KV away every keyed call would say it. */
  private warn(err: unknown, id: SharedCallId, msg: string): void {
    this.warnGate(() => this.log.warn({ err: (err as Error)?.message, server: id.server, tool: id.tool }, msg));
  }

  private encode(e: Entry): string {
    return JSON.stringify(e);
  }

  private decode(entry: KvEntry | null): Entry | undefined {
    if (!entry || entry.operation !== 'PUT') return undefined;
    try {
      const parsed = entrySchema.safeParse(entry.json());
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  /** Create the key (we run), or read what it holds; take over a failed call or an expired lease by compare-and-set. */
  private async claim(kv: KV, k: string): Promise<Claim> {
    for (let attempt = 0; ; attempt++) {
      const running = (): string =>
        this.encode({ state: 'running', owner: this.owner, lease_until: Date.now() + this.leaseMs });
      // When the claim was asked for (monotonic): the lease counts from there.
      const at = performance.now();
      try {
        return { kind: 'owner', revision: await kv.create(k, running()), at };
      } catch (err) {
        // Only JetStream's own answer (the key exists) is worth a read; a timeout or no responders is the bucket away.
        if (attempt >= 5 || !(err instanceof JetStreamApiError)) throw err;
      }
      const entry = await kv.get(k);
      const e = this.decode(entry);
      if (!entry || !e) continue; // deleted or unreadable between create and get: create again
      if (e.state === 'done') return { kind: 'done', result: e.result as CallToolResult };
      // Ours (this process gave it up, held up past its lease, and asks again) counts as free.
      if (e.state === 'failed' || e.lease_until < Date.now() || e.owner === this.owner) {
        try {
          const at = performance.now();
          return { kind: 'owner', revision: await kv.update(k, running(), entry.revision), at };
        } catch {
          continue; // another process took it first: read again
        }
      }
      return { kind: 'running', revision: entry.revision };
    }
  }

  /**
   * Run the call as the key's owner: renew the lease while it runs, then store the outcome for the
   * other processes. The call sees the lease (SharedCallLease): this process held up past it (paused,
   * or a renewal the bucket refused because another process took the key) no longer owns the key, and
   * sends nothing; its caller joins whoever took it. An outcome is stored only while the key is ours.
   */
  private async own(
    kv: KV,
    k: string,
    revision: number,
    claimedAt: number,
    execute: (lease: SharedCallLease) => Promise<CallToolResult>,
  ): Promise<{ kind: 'result'; result: CallToolResult } | { kind: 'lost' }> {
    let rev = revision;
    // Counted on the monotonic clock from when the claim (or the last renewal that landed) was asked
    // for, less a margin for the other processes' clocks, which judge the lease by its wall-clock time.
    let heldUntil = claimedAt + this.leaseMs - Math.floor(this.leaseMs / 6);
    let taken = false;
    const lease: SharedCallLease = { held: () => !taken && performance.now() < heldUntil };
    const renew = setInterval(
      () => {
        if (!lease.held()) return; // too late: another process may have it; a renewal would take it back
        const asked = performance.now();
        kv.update(
          k,
          this.encode({ state: 'running', owner: this.owner, lease_until: Date.now() + this.leaseMs }),
          rev,
        ).then(
          (r) => {
            rev = r;
            heldUntil = asked + this.leaseMs - Math.floor(this.leaseMs / 6);
          },
          (err: unknown) => {
            // The bucket's own refusal: the key's revision moved (another process took it, or it was deleted).
            if (err instanceof JetStreamApiError) taken = true;
            this.log.warn({ err: (err as Error).message }, 'renewing the lease of a shared call failed');
          },
        );
      },
      Math.max(100, Math.floor(this.leaseMs / 3)),
    );
    renew.unref();
    try {
      const result = await execute(lease);
      clearInterval(renew);
      await this.store(kv, k, { state: 'done', owner: this.owner, result: result });
      return { kind: 'result', result };
    } catch (err) {
      clearInterval(renew);
      const e = isAppError(err) ? err : new AppError('internal', (err as Error)?.message ?? String(err));
      if (e.details[CLAIM_LOST] === true) {
        this.log.info({}, 'held up past the lease of a shared call before sending it: joining whoever has it now');
        return { kind: 'lost' };
      }
      // Another process's claim now: a failure of ours must not end the call for its joiners.
      if (lease.held())
        await this.store(kv, k, {
          state: 'failed',
          owner: this.owner,
          error: { code: e.code, message: e.message, retryable: e.retryable, details: e.details },
        });
      throw err;
    }
  }

  private async store(kv: KV, k: string, e: Entry): Promise<void> {
    try {
      await kv.put(k, this.encode(e));
    } catch (err) {
      // Too large for a NATS message, or NATS away: the others must not wait for it; they may run it again.
      this.log.warn(
        { err: (err as Error).message, state: e.state },
        'storing a shared call outcome failed; releasing the key',
      );
      await kv.delete(k).catch(() => undefined);
    }
  }

  /**
   * Wait for the owner's outcome by reading the key, every 10 ms at first and less often as the
   * wait goes on (to a third of the lease): a read is one request a process's own NATS user may
   * make, where a watch needs a JetStream consumer, which a role's user may not create (its
   * delivery subject would run with the account's rights). An owner that died lets its lease run out.
   */
  private async join(
    kv: KV,
    k: string,
    deadline: number,
  ): Promise<
    | { kind: 'done'; result: CallToolResult }
    | { kind: 'failed'; error: AppError }
    | { kind: 'free' }
    | { kind: 'timeout' }
  > {
    const longest = Math.max(100, Math.floor(this.leaseMs / 3));
    for (let wait = 10; ; wait = Math.min(longest, Math.ceil(wait * 1.5))) {
      const left = deadline - Date.now();
      if (left <= 0) return { kind: 'timeout' };
      await sleep(Math.min(left, wait));
      const e = this.decode(await kv.get(k));
      if (!e) return { kind: 'free' };
      if (e.state === 'done') return { kind: 'done', result: e.result as CallToolResult };
      if (e.state === 'failed')
        return {
          kind: 'failed',
          error: new AppError(e.error.code, e.error.message, e.error.details, e.error.retryable),
        };
      if (e.lease_until < Date.now()) return { kind: 'free' };
    }
  }
}
