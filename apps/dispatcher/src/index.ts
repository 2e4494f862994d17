export { ensureExternalAgentsTable } from './external-agent-store.js';
export {
  Dispatcher,
  taskEndError,
  type DispatcherOptions,
  type SubmitRequest,
  type TaskOwnership,
} from './dispatcher.js';
export { DispatcherLeases, partitionFenceName, taskPartition, type DispatcherLeaseOptions } from './leases.js';
export { InstanceRegistry, type AgentInstance, type BreakerState } from './instances.js';
export { startTasksService } from './service.js';
export {
  startDispatcher,
  type StartDispatcherOptions,
  type DispatcherHandle,
  type DispatcherRole,
} from './start-dispatcher.js';
