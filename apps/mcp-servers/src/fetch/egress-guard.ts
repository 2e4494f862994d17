// The guard lives in @switchyard/platform so every outbound call (agents, webhooks) shares it.
export { EgressGuard, nonPublicRange, type EgressPolicy, type Resolver } from '@switchyard/platform';
