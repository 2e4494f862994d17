import type { CommandBus, QueryBus } from '@nestjs/cqrs';
import { RequestMalformedError } from '@a2a-js/sdk/errors';
import { builtinTaskTypes, checkTaskContext, resolveTaskType } from '@switchyard/contracts';
import { checkedWorkflowInput } from '@switchyard/workflow-executions';
import type { CapabilitiesReply, TaskView } from '@switchyard/contracts';
import { isAppError, newId } from '@switchyard/platform';
import { currentCorrelationId } from '../../http/context.js';
import { CancelTask, DelegateTask } from '../agents/commands/index.js';
import { GetAgentCapabilities, GetTask } from '../agents/queries/index.js';
import { CancelWorkflowExecution } from '../workflows/commands/index.js';
import { GetExecution, GetWorkflowDefinition, ListWorkflowDefinitions } from '../workflows/queries/index.js';
import type { WorkflowsService } from '../workflows/workflows.service.js';
import type { DefinitionListed } from '../workflows/queries/list-workflow-definitions.js';
import type { ExecutionWaits } from '../workflows/execution-waits.js';
import type { TaskMoves } from '../agents/task-moves.js';
import type { NextEventWatch } from '../../events/stream-fanout.js';
import type { Backend, WorkState, WorkStatus } from './executor.js';
import type { WorkRequest } from './message.js';

const cid = () => currentCorrelationId() ?? newId();
/** The idempotency key of the Switchyard work behind an A2A task: a retried start finds the same work. */
const keyOf = (a2aTaskId: string) => `a2a:${a2aTaskId}`;

const TASK_STATES: Record<TaskView['status'], WorkState> = {
  submitted: 'submitted',
  queued: 'submitted',
  assigned: 'working',
  working: 'working',
  completed: 'completed',
  failed: 'failed',
  timed_out: 'failed',
  canceled: 'canceled',
};

export function taskWorkStatus(v: TaskView): WorkStatus {
  const state = TASK_STATES[v.status];
  const error =
    v.status === 'timed_out' && !v.error
      ? { code: 'timeout', message: `task timed out after ${v.timeout_ms} ms` }
      : v.error;
  return {
    state,
    ...(state === 'completed' ? { result: v.result } : {}),
    ...(error ? { error: { code: error.code, message: error.message } } : {}),
  };
}

/**
 * One value read at most every `ttlMs` (every caller in that time shares the read in flight or
 * its answer; a failed read is not kept). `fresh` reads again unless the copy is under
 * `minAgeMs` old: misses at the same moment share one read.
 */
export class CachedValue<T> {
  private cached?: { at: number; value: Promise<T> };
  constructor(
    private readonly load: () => Promise<T>,
    private readonly ttlMs = 5_000,
    private readonly minAgeMs = 50,
  ) {}
  get(o: { fresh?: boolean } = {}): Promise<T> {
    const age = this.cached ? Date.now() - this.cached.at : Infinity;
    if (age > this.ttlMs || (o.fresh && age >= this.minAgeMs)) {
      const value = this.load();
      this.cached = { at: Date.now(), value };
      // Only this read's failure drops it (not a newer read made meanwhile).
      value.catch(() => {
        if (this.cached?.value === value) this.cached = undefined;
      });
    }
    return this.cached!.value;
  }
}

/** The capability cards, asked of the dispatcher at most every few seconds. */
export const capabilitiesCache = (queries: QueryBus): CachedValue<CapabilitiesReply> =>
  new CachedValue(() => queries.execute(new GetAgentCapabilities(cid())));

/**
 * The workflow definitions (latest version of each), read at most once a second for the public
 * card and the skills a message may name (a name not in the copy reads them again).
 */
export const definitionsCache = (queries: QueryBus): CachedValue<{ definitions: DefinitionListed[] }> =>
  new CachedValue(() => queries.execute(new ListWorkflowDefinitions(undefined, undefined)), 1_000);

/** One agent's endpoint: a message is a delegation to that agent (`POST /api/v1/integration/agents/delegate` with `agent` set). */
export class AgentBackend implements Backend {
  readonly kind = 'task' as const;
  constructor(
    readonly agent: string,
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly caps: CachedValue<CapabilitiesReply>,
    private readonly moves: TaskMoves,
  ) {}

  watch(id: string): Promise<NextEventWatch> {
    return this.moves.watch(id);
  }

  async skills(o: { fresh?: boolean } = {}): Promise<string[]> {
    const card = (await this.caps.get(o)).agents.find((a) => a.agent === this.agent);
    return card ? card.task_types.map((t) => t.type) : [];
  }

  resolveSkill(name: string, skills: readonly string[]): string | undefined {
    if (skills.includes(name)) return name;
    const { taskType } = resolveTaskType(name);
    return skills.includes(taskType) ? taskType : undefined;
  }

  /**
   * A built-in task type's input checked as the dispatcher checks a delegation's context
   * (checkTaskContext against the type's schema: unknown fields named, wrong types); another
   * agent's type is the dispatcher's to judge when the work starts (the gateway has no schema).
   */
  check(req: WorkRequest): Promise<void> {
    // An alias is checked as the task type it names, as the dispatcher will.
    const { taskType } = resolveTaskType(req.skill);
    if (!Object.hasOwn(builtinTaskTypes, taskType)) return Promise.resolve();
    const { input } = (builtinTaskTypes as Record<string, { readonly input: Parameters<typeof checkTaskContext>[1] }>)[
      taskType
    ]!;
    const r = checkTaskContext(taskType, input, req.input);
    return r.success ? Promise.resolve() : Promise.reject(new RequestMalformedError(r.message));
  }

  async start(req: WorkRequest, a2aTaskId: string) {
    const { outcome: r } = await this.commands.execute(
      new DelegateTask(
        { task_type: req.skill, context: req.input, priority: req.priority, agent: this.agent },
        cid(),
        keyOf(a2aTaskId),
        undefined,
      ),
    );
    return {
      id: r.submitted.task_id,
      metadata: { switchyard_task_id: r.submitted.task_id, agent: this.agent, task_type: req.skill },
    };
  }

  async status(id: string): Promise<WorkStatus> {
    return taskWorkStatus(await this.queries.execute(new GetTask(id, cid())));
  }

  async cancel(id: string): Promise<WorkStatus> {
    return taskWorkStatus(await this.commands.execute(new CancelTask(id, 'canceled over A2A', cid())));
  }
}

/** `/a2a/workflows`: a message starts a workflow (template or registered definition) by its id. */
export class WorkflowBackend implements Backend {
  readonly kind = 'workflow' as const;
  constructor(
    private readonly workflows: WorkflowsService,
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly waits: ExecutionWaits,
    private readonly definitions: CachedValue<{ definitions: DefinitionListed[] }>,
  ) {}

  /** The end only: an execution is `working` from its start. */
  watch(id: string): Promise<NextEventWatch> {
    return this.waits.watchEnd(id);
  }

  async skills(o: { fresh?: boolean } = {}): Promise<string[]> {
    return [...new Set((await this.definitions.get(o)).definitions.map((d) => d.id))];
  }

  resolveSkill(name: string, skills: readonly string[]): string | undefined {
    return skills.includes(name) ? name : undefined;
  }

  /** The input checked against the definition's input schema, as a REST start checks it. */
  async check(req: WorkRequest): Promise<void> {
    const stored = await this.queries.execute(new GetWorkflowDefinition(req.skill));
    try {
      checkedWorkflowInput(stored.definition, req.input);
    } catch (err) {
      if (isAppError(err) && err.code === 'validation') throw new RequestMalformedError(err.message);
      throw err;
    }
  }

  async start(req: WorkRequest, a2aTaskId: string) {
    const stored = await this.queries.execute(new GetWorkflowDefinition(req.skill));
    const r = await this.workflows.start(stored.definition, req.input, cid(), {
      wait: false,
      waitMs: 0,
      idempotencyKey: keyOf(a2aTaskId),
    });
    const id = String(r.body.execution_id);
    return {
      id,
      metadata: { switchyard_execution_id: id, workflow: req.skill, definition_version: stored.definition.version },
    };
  }

  async status(id: string): Promise<WorkStatus> {
    const d = (await this.queries.execute(new GetExecution(id))).detail as {
      status: string;
      output?: unknown;
      error?: { reason?: string } | null;
    };
    switch (d.status) {
      case 'completed':
        return { state: 'completed', result: d.output ?? {} };
      case 'failed':
        return {
          state: 'failed',
          error: { code: 'workflow_failed', message: d.error?.reason ?? 'the workflow failed' },
        };
      case 'canceled':
        return { state: 'canceled' };
      case 'not_started':
        return { state: 'submitted' };
      default:
        return { state: 'working' };
    }
  }

  async cancel(id: string): Promise<WorkStatus> {
    const r = await this.commands.execute(new CancelWorkflowExecution(id, 'canceled over A2A', cid()));
    // Canceling runs compensations first; the A2A task is canceled once the request is recorded.
    return r.status === 'canceled' || r.status === 'canceling' ? { state: 'canceled' } : this.status(id);
  }
}
