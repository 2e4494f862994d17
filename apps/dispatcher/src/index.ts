export { ensureExternalAgentsTable } from './external-agent-store.js';
export { Dispatcher, taskEndError, type DispatcherOptions } from './dispatcher.js';
export { type SubmitRequest } from './submission.js';
export { type TaskOwnership } from './ownership.js';
export { DispatcherLeases, partitionFenceName, taskPartition, type DispatcherLeaseOptions } from './leases.js';
export { InstanceRegistry, type AgentInstance, type BreakerState } from './instances.js';
export { startTasksService } from './service.js';
export {
  dispatcherLeaseTtlMs,
  startDispatcher,
  type StartDispatcherOptions,
  type DispatcherHandle,
  type DispatcherRole,
} from './start-dispatcher.js';
