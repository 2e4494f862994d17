// Shared with every outbound caller: see @switchyard/platform (egress).
export { isTextual, safeHttpRequest, type HttpMethod, type SafeRequest, type SafeResponse } from '@switchyard/platform';
