export { Dispatcher, ensureExternalAgentsTable, taskViewOf, taskEndError, type DispatcherOptions, type SubmitRequest, type TaskOwnership } from './dispatcher.js';
export { DispatcherLeases, partitionFenceName, taskPartition, type DispatcherLeaseOptions } from './leases.js';
export { InstanceRegistry, type AgentInstance, type BreakerState } from './instances.js';
export { tasksProjection, performanceProjection, queryPerformance } from './projections.js';
export { startTasksService, tasksSubject } from './service.js';
export { taskIdForIdempotencyKey } from './task-ids.js';
export {
  startDispatcher,
  delegationProjections,
  type StartDispatcherOptions,
  type DispatcherHandle,
  type DispatcherRole,
} from './start-dispatcher.js';
