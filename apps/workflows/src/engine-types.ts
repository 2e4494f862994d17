/** The workflow engine's options and statistics, and the records it keeps per call, execution and timer. */
import type pg from 'pg';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from '@switchyard/platform';
import type { EventStore } from '@switchyard/event-store';
import type {
  DispatchAction,
  StopAction,
  TimerAction,
  WorkflowExecutionState,
  WorkflowLimits,
} from '@switchyard/domain';
import type { ExecutorSubjects, StepOutcome } from './executor.js';

/** Where a sub-workflow reports back: kept in the metadata of the child's WorkflowStarted. */
export interface ParentRef {
  readonly executionId: string;
  readonly stepId: string;
  readonly itemIndex?: number;
  readonly attempt: number;
}

export interface WorkflowEngineOptions {
  readonly store: EventStore;
  /** The engine's database (its tables live in schema `workflows`). */
  readonly pool: pg.Pool;
  readonly nats: NatsConnection;
  readonly logger: Logger;
  /** For the dedicated partition-lock connection; default: the pool's connection string. */
  readonly databaseUrl?: string;
  /** Number of partitions executions are hashed into (default 16; every process must agree). */
  readonly partitions?: number;
  readonly memberId?: string;
  readonly leaseTickMs?: number;
  readonly memberTtlMs?: number;
  /** How long the partition-lock connection may sit unused before PostgreSQL ends it (see PartitionLeases). */
  readonly lockIdleMs?: number;
  /**
   * The engine's wall clock, ms since the epoch (default Date.now): command timestamps, due times,
   * and what is due. Tests move it to stand for a step of the host's clock or a skewed host.
   */
  readonly wallClock?: () => number;
  /** Timer poll interval (default 200 ms). */
  readonly timerPollMs?: number;
  /** Re-check every owned execution this often (default 15 000 ms). */
  readonly recoveryIntervalMs?: number;
  /** How often the executions of revoked API keys are looked for and canceled (default 2 000 ms). */
  readonly revocationSweepMs?: number;
  /** Checkpoint flush interval (default 250 ms). */
  readonly checkpointIntervalMs?: number;
  /** Executions whose events are handled at once (default 32; each execution's events stay in order). */
  readonly sagaConcurrency?: number;
  /** Run the workflow_executions read model in this process too (default true). */
  readonly readModel?: boolean;
  /** Replace how mcp/agent units are executed (tests, benches); default NATS request-reply. */
  readonly execute?: (a: DispatchAction) => Promise<StepOutcome>;
  /** Replace how running mcp/agent units are asked to stop on a cancel (tests); default NATS. */
  readonly stop?: (s: StopAction) => Promise<void>;
  /** Subjects of the MCP connectors and the task service (default the production ones). */
  readonly subjects?: ExecutorSubjects;
  /** A followed call (queued or running) whose worker is silent this long is sent again (default CALL_SILENCE_MS; tests shorten it). */
  readonly callSilenceMs?: number;
  /** Override limits from the environment (WORKFLOW_MAX_*; tests). They apply to the whole process. */
  readonly limits?: Partial<WorkflowLimits>;
  /** The batch worker of bulk operations (default on, WORKFLOW_BATCH_ITEMS_PER_SEC); false: none in this process. */
  readonly batches?: false | { readonly itemsPerSec?: number; readonly pollMs?: number };
}

export interface WorkflowEngineStats {
  readonly memberId: string;
  readonly partitions: number[];
  readonly eventsHandled: number;
  readonly dispatches: number;
  readonly timersFired: number;
  readonly recoveries: number;
  /** Queued calls sent again after their worker fell silent (see CALL_SILENCE_MS). */
  readonly resends: number;
  readonly inflight: number;
}

/** A step call in flight over NATS and what its worker last said of it. */
export interface TrackedCall {
  readonly action: DispatchAction;
  state?: 'queued' | 'started';
  /** When the worker last said anything (or the call was sent). */
  heardAt: number;
}

/**
 * What the owning process knows of an execution: its state after `revision`, and that every
 * event up to `revision` has been handled here (timers armed, dispatches started). Commands of
 * this process decide against it and append with `revision` expected (no re-read); the saga
 * skips events at or below it.
 */
export interface CachedState {
  state: WorkflowExecutionState;
  revision: number;
  /** False only when this process knows the timers table holds no row of the execution. */
  timersInTable: boolean;
  /** From WorkflowStarted's metadata; undefined = not seen (read it at the end). */
  parent?: ParentRef | null;
}

/** A step timeout not yet written to the timers table (see `flushTimeouts`). */
export interface PendingTimeout {
  readonly partition: number;
  readonly timer: TimerAction;
  /** performance.now() when it was kept (-Infinity: write at the next flush). */
  readonly since: number;
}
