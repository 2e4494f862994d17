/** Options of the status feature (`StatusFeatureModule.forRoot`). */
export interface StatusFeatureOptions {
  /** How often the background refresher runs the readiness probes. Default 2 000 ms. */
  readonly refreshMs?: number;
  /** Cached probe results older than this make the answer `degraded` (the refresher is stuck). Default 5 × refreshMs, at least 10 s. */
  readonly staleAfterMs?: number;
  /** Schema of the status projection's tables (default `status`). */
  readonly statusSchema?: string;
  /** Schema of the delegation read models (default `delegation`). */
  readonly delegationSchema?: string;
}

export const STATUS_FEATURE_OPTIONS = Symbol.for('switchyard.gateway.statusFeatureOptions');

export interface ResolvedStatusOptions {
  readonly refreshMs: number;
  readonly staleAfterMs: number;
  readonly statusSchema?: string;
  readonly delegationSchema?: string;
}

export function resolveStatusOptions(o: StatusFeatureOptions = {}): ResolvedStatusOptions {
  const refreshMs = o.refreshMs ?? 2_000;
  return {
    refreshMs,
    staleAfterMs: o.staleAfterMs ?? Math.max(10_000, 5 * refreshMs),
    ...(o.statusSchema ? { statusSchema: o.statusSchema } : {}),
    ...(o.delegationSchema ? { delegationSchema: o.delegationSchema } : {}),
  };
}
