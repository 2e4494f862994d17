/**
 * The workflow definition: plain JSON/YAML-compatible data, parsed by zod at every boundary.
 * Expression syntax is documented in ./expressions.ts.
 */
import { z } from 'zod';

/** Step ids are CEL identifiers so `steps.<id>.output` works without quoting. */
export const stepIdSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,62}$/, 'step id: lowercase letter, then lowercase letters, digits or _ (max 63)');

/** Definition ids are slugs: they appear in `workflow:<id>`, URLs and stream names. */
export const definitionIdSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,62}$/, 'definition id: lowercase letter, then lowercase letters, digits, _ or - (max 63)');

/** What a step runs: an MCP tool, an agent task, or another workflow (sub-workflow). */
export const usesSchema = z
  .string()
  .regex(
    /^(mcp:[a-z0-9][a-z0-9_-]*\/[A-Za-z0-9_.-]+|agent:[a-z][a-z0-9_]*|workflow:[a-z][a-z0-9_-]*)$/,
    "uses: 'mcp:<server>/<tool>', 'agent:<task_type>' or 'workflow:<definition_id>'",
  );

export type ParsedUses =
  | { readonly kind: 'mcp'; readonly server: string; readonly tool: string }
  | { readonly kind: 'agent'; readonly taskType: string }
  | { readonly kind: 'workflow'; readonly definitionId: string };

/** Split a (schema-valid) `uses` string into its parts. */
export function parseUses(uses: string): ParsedUses {
  if (uses.startsWith('mcp:')) {
    const [server, tool] = uses.slice(4).split('/') as [string, string];
    return { kind: 'mcp', server, tool };
  }
  if (uses.startsWith('agent:')) return { kind: 'agent', taskType: uses.slice(6) };
  if (uses.startsWith('workflow:')) return { kind: 'workflow', definitionId: uses.slice(9) };
  throw new Error(`not a uses reference: ${uses}`);
}

/** Longest a wait step may wait (30 days): a bound on timers and on executions left open. */
export const MAX_WAIT_TIMEOUT_MS = 2_592_000_000;
/**
 * Longest delay before a retry (30 days, as a wait): a retry time past the year 9999 is one
 * PostgreSQL refuses, and past 275,000 years one JavaScript cannot represent.
 */
export const MAX_RETRY_DELAY_MS = 30 * 24 * 3_600_000;

export const backoffSchema = z.strictObject({
  initialMs: z.number().int().min(0).max(MAX_RETRY_DELAY_MS).default(1000),
  factor: z.number().min(1).max(1_000).default(2),
  maxMs: z.number().int().min(0).max(MAX_RETRY_DELAY_MS).default(60_000),
  /** Fraction 0..1 of each delay that is randomised (deterministically, from the execution's seed). */
  jitter: z.number().min(0).max(1).default(0),
});

export const retrySchema = z.strictObject({
  /** Total attempts including the first (1 = no retry). */
  attempts: z.number().int().min(1).max(100),
  backoff: backoffSchema.default({ initialMs: 1000, factor: 2, maxMs: 60_000, jitter: 0 }),
  /** Error codes worth retrying; absent = every error the executor marked retryable. */
  on: z.array(z.string().min(1)).optional(),
});

/**
 * What a terminal step failure does: `fail` the workflow, `continue` (dependents are skipped
 * unless their `if` says otherwise), or fail after running the named compensation step.
 */
export const onErrorSchema = z.union([
  z.literal('fail'),
  z.literal('continue'),
  z.strictObject({ compensate: stepIdSchema }),
]);

export const forEachSchema = z.strictObject({
  /** CEL expression giving a list; one item sub-step runs per element. */
  items: z.string().min(1),
  /** How many items may be in flight at once. */
  concurrency: z.number().int().min(1).max(100).default(1),
  /**
   * The undo of one item: a compensation step run, when the execution is canceled, once for each
   * item that succeeded (one still running then, once it has), resolved against that item
   * (`item`, `index` and the item's `output`). An item that failed or was never sent is not undone.
   */
  compensate: stepIdSchema.optional(),
});

/** Default per-attempt timeout when a step names none: keeps "canceling" and "running" finite. */
export const DEFAULT_STEP_TIMEOUT_MS = 300_000;

/** Signal names: what `POST .../executions/{id}/signals/{name}` names. */
export const signalNameSchema = z
  .string()
  .regex(
    /^[a-z][a-z0-9_.-]{0,62}$/,
    'signal name: lowercase letter, then lowercase letters, digits, _ . or - (max 63)',
  );

/**
 * What a wait step does when its timeout passes without the signal: `fail` the step (then its
 * `on_error` decides for the workflow), `continue` (the step succeeds with output null), or
 * succeed with `default_output` as its output (so dependents can read a value either way).
 */
export const waitOnTimeoutSchema = z.union([
  z.literal('fail'),
  z.literal('continue'),
  z.strictObject({ default_output: z.record(z.string(), z.json()) }),
]);

/**
 * A wait step (`wait` instead of `uses`): it pauses until the named signal arrives (its payload is
 * the step's output) or `timeout_ms` passes (a durable timer). `timeout_ms` is a number or one
 * expression, e.g. `${{ input.approval_timeout_ms }}`, resolved when the step starts.
 */
export const waitSchema = z.strictObject({
  signal: signalNameSchema,
  timeout_ms: z.union([
    z.number().int().min(1).max(MAX_WAIT_TIMEOUT_MS),
    z
      .string()
      .regex(/^\s*\$\{\{[\s\S]+\}\}\s*$/, "timeout_ms: a number of milliseconds or one expression '${{ ... }}'"),
  ]),
  on_timeout: waitOnTimeoutSchema.default('fail'),
});

export const stepSchema = z
  .strictObject({
    id: stepIdSchema,
    name: z.string().optional(),
    description: z.string().optional(),
    /** What the step runs; absent exactly when the step is a `wait` step. */
    uses: usesSchema.optional(),
    wait: waitSchema.optional(),
    needs: z.array(stepIdSchema).default([]),
    if: z.string().min(1).optional(),
    with: z.record(z.string(), z.json()).default({}),
    retry: retrySchema.optional(),
    timeout_ms: z.number().int().min(1).max(86_400_000).optional(),
    on_error: onErrorSchema.default('fail'),
    for_each: forEachSchema.optional(),
  })
  .superRefine((s, ctx) => {
    if ((s.uses === undefined) === (s.wait === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['uses'],
        message: "a step has either 'uses' (what it runs) or 'wait' (a signal it waits for), not both or neither",
      });
    }
  });

/** A wait step's `uses`-like label (`wait:<signal>`), for views that list what each step runs. */
export const stepUsesLabel = (s: { readonly uses?: string; readonly wait?: { readonly signal: string } }): string =>
  s.uses ?? `wait:${s.wait?.signal ?? ''}`;

/** A JSON-Schema subset describing the workflow input (what `z.fromJSONSchema` understands). */
export interface InputSchemaNode {
  type?: 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array' | 'null';
  description?: string;
  default?: unknown;
  enum?: unknown[];
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  properties?: Record<string, InputSchemaNode>;
  required?: string[];
  additionalProperties?: boolean;
  items?: InputSchemaNode;
  minItems?: number;
  maxItems?: number;
}

export const inputSchemaNodeSchema: z.ZodType<InputSchemaNode> = z.lazy(() =>
  z.strictObject({
    type: z.enum(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']).optional(),
    description: z.string().optional(),
    default: z.json().optional(),
    enum: z.array(z.json()).optional(),
    format: z.string().optional(),
    minLength: z.number().int().min(0).optional(),
    maxLength: z.number().int().min(0).optional(),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
    pattern: z.string().optional(),
    properties: z.record(z.string(), inputSchemaNodeSchema).optional(),
    required: z.array(z.string()).optional(),
    additionalProperties: z.boolean().optional(),
    items: inputSchemaNodeSchema.optional(),
    minItems: z.number().int().min(0).optional(),
    maxItems: z.number().int().min(0).optional(),
  }),
);

export const workflowDefinitionSchema = z.strictObject({
  id: definitionIdSchema,
  version: z.number().int().min(1),
  name: z.string().min(1),
  description: z.string().default(''),
  /** The expected input, as a JSON-Schema object (required fields, types, defaults). */
  input: inputSchemaNodeSchema.default({ type: 'object', properties: {} }),
  steps: z.array(stepSchema).min(1),
  /** The workflow's result: a mapping resolved when every step has settled. */
  outputs: z.record(z.string(), z.json()).default({}),
});

/** A parsed definition (defaults applied). */
export type WorkflowDefinition = z.output<typeof workflowDefinitionSchema>;
/** What authors write (defaults optional). */
export type WorkflowDefinitionInput = z.input<typeof workflowDefinitionSchema>;
export type StepDefinition = z.output<typeof stepSchema>;
export type RetryPolicy = z.output<typeof retrySchema>;
export type BackoffPolicy = z.output<typeof backoffSchema>;
export type OnError = z.output<typeof onErrorSchema>;
export type WaitDefinition = z.output<typeof waitSchema>;
export type WaitOnTimeout = z.output<typeof waitOnTimeoutSchema>;
