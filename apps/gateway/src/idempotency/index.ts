export { IdempotencyInterceptor, RedactInReplay, SHOWN_ONCE, WithoutIdempotency } from './interceptor.js';
export {
  IdempotencyStore,
  resolveIdempotencyOptions,
  IDEMPOTENCY_SCHEMA_SQL,
  type IdempotencyOptions,
  type ResolvedIdempotencyOptions,
} from './store.js';
export { documentIdempotencyKeys } from './document.js';
export {
  IDEMPOTENCY_HEADER,
  REPLAYED_HEADER,
  IDEMPOTENCY_KEY_MAX,
  IDEMPOTENCY_KEY_PATTERN,
  IdempotencyKey,
  backendKey,
  executionIdForKey,
  parseIdempotencyKey,
  requestFingerprint,
} from './keys.js';
