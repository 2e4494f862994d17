import type { z } from 'zod';
import type pg from 'pg';
import type { Logger } from '@switchyard/platform';
import type { LlmClient } from './llm.js';
import type { AgentCard, BuiltinAgentName } from '@switchyard/contracts';

/** What every task handler gets besides its parsed input: the business database, a logger
 * (already carrying the task's correlation id) and an abort signal from the caller. */
export interface AgentContext {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  /** Optional wording helper; the default does nothing (no model is needed for any result). */
  readonly llm?: LlmClient;
}

export type AgentName = BuiltinAgentName;

/** A handler does the task's deterministic work; the input is already validated by its schema. */
export type TaskHandlerFn<I, O> = (input: I, ctx: AgentContext) => Promise<O>;

export interface TaskDefinition<S extends z.ZodType = z.ZodType, O = unknown> {
  readonly taskType: string;
  readonly agent: AgentName;
  readonly description: string;
  readonly input: S;
  readonly handle: TaskHandlerFn<z.infer<S>, O>;
}

export type { AgentCard };

/** Helper that keeps the schema and handler types tied together. */
export function defineTask<S extends z.ZodType, O>(def: TaskDefinition<S, O>): TaskDefinition<S, O> {
  return def;
}
