/**
 * A batch job over workflow executions (stream `workflow_batch-<id>`): the executions a filter
 * matched when it started (fixed and recorded), the action applied to each, and each item's result.
 */
import type { Command, Event } from '../../decider.js';

/** What a batch does to each matched execution. */
export type BatchAction =
  | { readonly kind: 'cancel' }
  | {
      readonly kind: 'retry';
      /**
       * Who started the batch, as the tool policy sees them: a retry re-runs the execution's
       * recorded definition, and one that names a guarded tool (the database writer, the
       * mailbox) and is not a registered definition needs what an ad-hoc start of it needs.
       * Absent in batches recorded before it was kept: not checked.
       */
      readonly rerunAs?: {
        readonly role: string | null;
        readonly authEnabled: boolean;
        readonly writesAllowed: boolean;
      };
    }
  | { readonly kind: 'fork'; readonly definitionVersion: number; readonly fromStep: string };

/** The filter as the caller gave it (kept for the record; the matched set is what counts). */
export interface BatchFilter {
  readonly template_id?: string;
  readonly definition_id?: string;
  readonly status?: string;
  readonly started_after?: string;
  readonly started_before?: string;
  readonly error_contains?: string;
}

export interface BatchItemError {
  readonly code: string;
  readonly message: string;
}

// ---- commands -------------------------------------------------------------

export type StartBatch = Command<
  'StartBatch',
  {
    readonly batchId: string;
    readonly filter: BatchFilter;
    readonly action: BatchAction;
    /** Execution ids matched at start, in the order they are worked. */
    readonly items: readonly string[];
  }
>;
/** `worker`: which worker process did the item (audit: one batch is worked by one process at a time). */
export type RecordBatchItemDone = Command<
  'RecordBatchItemDone',
  { readonly executionId: string; readonly outcome: string; readonly worker?: string }
>;
export type RecordBatchItemFailed = Command<
  'RecordBatchItemFailed',
  { readonly executionId: string; readonly error: BatchItemError; readonly worker?: string }
>;
export type CancelBatch = Command<'CancelBatch', { readonly reason: string }>;

export type BatchCommand = StartBatch | RecordBatchItemDone | RecordBatchItemFailed | CancelBatch;

// ---- events ---------------------------------------------------------------

export type BatchStarted = Event<
  'BatchStarted',
  {
    readonly batchId: string;
    readonly filter: BatchFilter;
    readonly action: BatchAction;
    readonly items: readonly string[];
    readonly startedAt: string;
    readonly actor: string | null;
  }
>;
export type BatchItemDone = Event<
  'BatchItemDone',
  { readonly executionId: string; readonly outcome: string; readonly at: string; readonly worker?: string }
>;
export type BatchItemFailed = Event<
  'BatchItemFailed',
  { readonly executionId: string; readonly error: BatchItemError; readonly at: string; readonly worker?: string }
>;
export type BatchCompleted = Event<
  'BatchCompleted',
  { readonly done: number; readonly failed: number; readonly completedAt: string }
>;
export type BatchCancelled = Event<
  'BatchCancelled',
  {
    readonly reason: string;
    readonly actor: string | null;
    readonly done: number;
    readonly failed: number;
    readonly pending: number;
    readonly cancelledAt: string;
  }
>;

export type BatchEvent = BatchStarted | BatchItemDone | BatchItemFailed | BatchCompleted | BatchCancelled;

export const batchEventTypes: readonly BatchEvent['type'][] = [
  'BatchStarted',
  'BatchItemDone',
  'BatchItemFailed',
  'BatchCompleted',
  'BatchCancelled',
];

// ---- state ----------------------------------------------------------------

export type BatchItemStatus = 'pending' | 'done' | 'failed';

export interface BatchData {
  readonly batchId: string;
  readonly filter: BatchFilter;
  readonly action: BatchAction;
  readonly items: readonly string[];
  readonly itemStatus: Readonly<Record<string, BatchItemStatus>>;
  readonly done: number;
  readonly failed: number;
  readonly startedAt: string;
  readonly actor: string | null;
  /** Item failures, in order (what the progress view lists). */
  readonly failures: readonly { readonly executionId: string; readonly error: BatchItemError }[];
}

export type BatchState =
  | { readonly status: 'not_started' }
  | (BatchData & { readonly status: 'running' })
  | (BatchData & { readonly status: 'completed'; readonly endedAt: string })
  | (BatchData & { readonly status: 'cancelled'; readonly endedAt: string; readonly reason: string });
