/**
 * The built-in agents' capability cards: each agent's name, description and concurrency, and
 * for each of its task types the description and the zod schema of the task's input. The
 * agents (apps/agents) run the tasks behind these cards; the dispatcher validates a
 * submission's input against them and lists the built-in agents before any instance answers.
 * Serialised with `cardToJson` (input schemas as JSON Schema) where a card crosses a process.
 */
import { z } from 'zod';
import { aliasesOf } from './task-aliases.js';
import { checkTaskContext, contextAliasesOf } from './task-context.js';
import { trimmedText } from './text.js';

/** A calendar day, `YYYY-MM-DD`. */
export const isoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'expected YYYY-MM-DD');
/**
 * A first day the agents plan or report from: years 1000-9000, so a window of a few years after
 * it stays a date PostgreSQL and the agents' arithmetic both take (9999-12-31 plus a month failed
 * inside the agent).
 */
export const planningDate = isoDate.refine(
  (d) => d >= '1000-01-01' && d <= '9000-12-31' && !Number.isNaN(Date.parse(d)),
  {
    message: 'a date from 1000-01-01 to 9000-12-31',
  },
);
/** A customer's id: the business tables keep it as a PostgreSQL integer. */
export const customerIdSchema = z.number().int().positive().max(2_147_483_647);

/** `30d`, `12m`, `24m`: a window that ends at a reference date (inclusive). */
export const timeframeSchema = z.string().regex(/^([1-9]\d{0,3})([dm])$/, 'expected <n>d or <n>m, e.g. 30d or 12m');

/** The subscription plans a proposal may name, cheapest first. */
export const PLAN_NAMES = ['starter', 'growth', 'business', 'enterprise'] as const;

/** One step attempt as the workflow engine records it (or as the caller supplies it). */
export const stepRecordSchema = z.strictObject({
  stepId: z.string().min(1),
  name: z.string().optional(),
  status: z.enum(['succeeded', 'failed', 'timed_out', 'skipped']),
  startedAt: z.iso.datetime({ offset: true }),
  finishedAt: z.iso.datetime({ offset: true }),
  attempt: z.number().int().min(1).default(1),
  dependsOn: z.array(z.string()).optional(),
  error: z.string().optional(),
  /** manual steps wait for a person; they are the automation candidates */
  kind: z.enum(['tool', 'agent', 'manual', 'approval', 'other']).optional(),
});
export const executionRecordSchema = z.strictObject({
  executionId: z.string().min(1),
  workflowId: z.string().optional(),
  steps: z.array(stepRecordSchema).min(1),
});

export const revenueAnalysisInput = z.strictObject({
  timeframe: timeframeSchema.default('12m'),
  /** last day of the window; defaults to the last order date in the data */
  asOf: isoDate.optional(),
  topN: z.number().int().min(1).max(100).default(10),
  /** modified z-score above which a period is flagged (Iglewicz & Hoaglin recommend 3.5) */
  anomalyThreshold: z.number().positive().default(3.5),
  includeCohorts: z.boolean().default(true),
});

export const customerSegmentationInput = z.strictObject({
  asOf: isoDate.optional(),
  /** orders older than this many months before asOf are ignored */
  lookbackMonths: z.number().int().min(1).max(120).default(24),
  k: z.number().int().min(2).max(10).default(4),
  seed: z.number().int().default(42),
  includeCustomers: z.boolean().default(false),
});

export const revenueForecastInput = z.strictObject({
  horizon: z.number().int().min(1).max(24).default(6),
  method: z.enum(['auto', 'holt_winters_additive', 'holt', 'simple']).default('auto'),
  seasonLength: z.number().int().min(2).max(24).default(12),
  /** months held out at the end to measure the error of the same procedure */
  backtestMonths: z.number().int().min(1).max(12).default(6),
  historyMonths: z.number().int().min(6).max(120).default(24),
  confidence: z.union([z.literal(0.8), z.literal(0.9), z.literal(0.95)]).default(0.95),
  /** replace robust-z outliers by their rolling median before fitting (like R's tsclean) */
  cleanAnomalies: z.boolean().default(true),
  asOf: isoDate.optional(),
});

export const costOptimizationInput = z.strictObject({
  asOf: isoDate.optional(),
  months: z.number().int().min(6).max(36).default(12),
  /** flag categories whose growth exceeds revenue growth by more than this (0.05 = 5 points) */
  excessGrowthThreshold: z.number().min(0).max(5).default(0.05),
});

export const scheduleOptimizationInput = z.strictObject({
  /** first day to plan (inclusive); defaults to the earliest shift in business.shifts */
  from: planningDate.optional(),
  days: z.number().int().min(1).max(31).default(7),
  uncoveredPenalty: z.number().positive().default(1000),
  maxShiftsPerDay: z.number().int().min(1).max(3).default(1),
  /** the solver stops after this and returns its best schedule, marked not proven optimal */
  timeoutMs: z.number().int().min(100).max(60_000).default(10_000),
});

export const performanceAnalysisInput = z.strictObject({
  executions: z.array(executionRecordSchema).min(1).max(10_000),
});

export const workflowOptimizationInput = z.strictObject({
  executions: z.array(executionRecordSchema).min(1).max(10_000),
  /** attempt failure rate from which a step counts as a hot spot */
  hotSpotRate: z.number().min(0).max(1).default(0.05),
});

export const generateProposalInput = z.strictObject({
  customerId: customerIdSchema,
  proposalType: z.enum(['upgrade', 'renewal', 'expansion']).default('upgrade'),
  /** plan to propose; default: the next plan up for an upgrade, the current plan otherwise */
  targetPlan: z.enum(PLAN_NAMES).optional(),
  /** extra seats for an expansion; default: enough for active users plus 20 % headroom */
  additionalSeats: z.number().int().min(0).max(10_000).optional(),
  discountPct: z.number().min(0).max(30).default(0),
  contact: z.string().min(1).max(200).default('your account manager'),
  asOf: isoDate.optional(),
});

/** What the content creator writes: copy for an audience, or one new customer's welcome. */
const MARKETING_CONTENT_KINDS = ['newsletter', 'welcome'] as const;

export const marketingContentInput = z
  .strictObject({
    channel: z.enum(['email', 'blog', 'social']).default('email'),
    /**
     * newsletter: copy from the aggregate figures of a segment or region (the default); welcome:
     * the welcome e-mail of the customer `customerId` (its name, plan and seats, next steps; a
     * subject of its own and a plain-text body, no figures of other customers).
     */
    kind: z.enum(MARKETING_CONTENT_KINDS).default('newsletter'),
    /** the customer a welcome is for */
    customerId: customerIdSchema.optional(),
    segment: z.enum(['smb', 'mid_market', 'enterprise']).optional(),
    region: z.enum(['north_america', 'emea', 'apac', 'latam']).optional(),
    asOf: isoDate.optional(),
  })
  .superRefine((v, ctx) => {
    if (v.kind !== 'welcome') return;
    if (v.customerId === undefined)
      ctx.addIssue({ code: 'custom', path: ['customerId'], message: 'a welcome is for one customer: give customerId' });
    if (v.channel !== 'email')
      ctx.addIssue({ code: 'custom', path: ['channel'], message: 'a welcome is an e-mail: channel must be email' });
  });

export const supportResponseInput = z.strictObject({
  query: trimmedText(3, 10_000),
  customerId: customerIdSchema.optional(),
});

export const satisfactionAnalysisInput = z.strictObject({
  months: z.number().int().min(1).max(36).default(12),
  asOf: isoDate.optional(),
  category: z.string().optional(),
});

export type BuiltinAgentName =
  | 'data_analyst'
  | 'financial_advisor'
  | 'operations_manager'
  | 'automation_specialist'
  | 'content_creator'
  | 'customer_success';

/** Every built-in task type: the agent that runs it, what it does, its input. */
export const builtinTaskTypes = {
  revenue_analysis: {
    agent: 'data_analyst',
    description: 'Revenue per period with MoM/YoY growth, top customers, cohort retention and robust anomaly detection',
    input: revenueAnalysisInput,
  },
  customer_segmentation: {
    agent: 'data_analyst',
    description: 'RFM scores and segments plus deterministic k-means clusters over RFM features',
    input: customerSegmentationInput,
  },
  revenue_forecast: {
    agent: 'financial_advisor',
    description:
      'Monthly revenue forecast by exponential smoothing (Holt-Winters) with prediction intervals and a back-test MAPE',
    input: revenueForecastInput,
  },
  cost_optimization: {
    agent: 'financial_advisor',
    description: 'Cost breakdown by category with trends, anomalies and savings suggestions with their figures',
    input: costOptimizationInput,
  },
  schedule_optimization: {
    agent: 'operations_manager',
    description:
      'Assign staff to shifts under availability, skills and weekly hour limits (MIP); reports cost, coverage and a feasibility check',
    input: scheduleOptimizationInput,
  },
  performance_analysis: {
    agent: 'operations_manager',
    description: 'Workflow execution records → duration p50/p95 and failure rate per step and per execution',
    input: performanceAnalysisInput,
  },
  workflow_optimization: {
    agent: 'automation_specialist',
    description:
      'Bottlenecks, failure hot spots, parallelisable steps, retry and schedule proposals from execution records',
    input: workflowOptimizationInput,
  },
  process_automation: {
    agent: 'automation_specialist',
    description:
      'Automation candidates (manual and approval steps by handling time) plus the workflow optimisation findings',
    input: workflowOptimizationInput,
  },
  generate_proposal: {
    agent: 'content_creator',
    description: "Markdown proposal (upgrade, renewal, expansion) filled from the customer's plan, usage and revenue",
    input: generateProposalInput,
  },
  marketing_content: {
    agent: 'content_creator',
    description:
      "Email, blog or social copy built from aggregate customer figures of a segment or region, or a new customer's welcome e-mail (kind: welcome)",
    input: marketingContentInput,
  },
  support_response: {
    agent: 'customer_success',
    description:
      'Intent and sentiment of a support query, a drafted answer from the knowledge base, and an escalation decision with reasons',
    input: supportResponseInput,
  },
  satisfaction_analysis: {
    agent: 'customer_success',
    description: 'CSAT average and share, by category, monthly trend, and resolution time p50/p95 over tickets',
    input: satisfactionAnalysisInput,
  },
} as const satisfies Record<
  string,
  { readonly agent: BuiltinAgentName; readonly description: string; readonly input: z.ZodType }
>;
export type BuiltinTaskType = keyof typeof builtinTaskTypes;

/**
 * A context of a built-in task type with its fields' other spellings renamed, as the dispatcher
 * records it (checkTaskContext); as given for any other type, or a context the check refuses
 * (the dispatcher refuses it when it takes the task over).
 */
export function builtinTaskContext(taskType: string, context: Record<string, unknown>): Record<string, unknown> {
  const def = Object.hasOwn(builtinTaskTypes, taskType)
    ? (builtinTaskTypes as Record<string, { readonly input: z.ZodType }>)[taskType]
    : undefined;
  if (!def) return context;
  const r = checkTaskContext(taskType, def.input, context);
  return r.success ? r.context : context;
}

const BUILTIN_AGENTS: { name: BuiltinAgentName; description: string; maxConcurrency: number }[] = [
  {
    name: 'data_analyst',
    description: 'Revenue analysis and customer segmentation over the business database',
    maxConcurrency: 4,
  },
  {
    name: 'financial_advisor',
    description: 'Revenue forecasting with back-tested error, and cost optimisation',
    maxConcurrency: 4,
  },
  // The MIP solver is CPU-bound and single-threaded: two at a time is plenty on small hosts.
  {
    name: 'operations_manager',
    description: 'Shift scheduling under constraints, and workflow performance analysis',
    maxConcurrency: 2,
  },
  {
    name: 'automation_specialist',
    description: 'Workflow bottlenecks, failure hot spots, parallelism, retry and schedule proposals',
    maxConcurrency: 4,
  },
  {
    name: 'content_creator',
    description: 'Proposals and marketing copy filled from real customer figures',
    maxConcurrency: 8,
  },
  {
    name: 'customer_success',
    description: 'Support replies with intent, sentiment and escalation; satisfaction analysis',
    maxConcurrency: 8,
  },
];

/** The capability card an agent publishes: what it can do and how many tasks it runs at once. */
export interface AgentCard {
  readonly name: BuiltinAgentName;
  readonly version: string;
  readonly description: string;
  readonly maxConcurrency: number;
  /** `aliases`: the other names a delegation may give the type (TASK_TYPE_ALIASES). */
  readonly taskTypes: readonly {
    readonly type: string;
    readonly description: string;
    readonly input: z.ZodType;
    readonly aliases: readonly string[];
  }[];
}

/** The six capability cards. */
export const builtinAgentCards: readonly AgentCard[] = BUILTIN_AGENTS.map((a) => ({
  ...a,
  version: '1.0.0',
  taskTypes: Object.entries(
    builtinTaskTypes as Record<string, { agent: BuiltinAgentName; description: string; input: z.ZodType }>,
  )
    .filter(([, t]) => t.agent === a.name)
    .map(([type, t]) => ({ type, description: t.description, input: t.input, aliases: aliasesOf(type) })),
}));

/** A card as plain JSON (input schemas as JSON Schema), for publishing across a process boundary. */
export interface AgentCardJson {
  readonly name: BuiltinAgentName;
  readonly version: string;
  readonly description: string;
  readonly maxConcurrency: number;
  readonly taskTypes: readonly {
    readonly type: string;
    readonly description: string;
    readonly inputSchema: Record<string, unknown>;
    readonly aliases: readonly string[];
    /** The other spellings of the input's fields (`customer_id` -> `customerId`), accepted and renamed (task-context.ts). */
    readonly contextAliases: Readonly<Record<string, string>>;
  }[];
}

/**
 * A task's input as JSON Schema for callers: `input` mode (fields with defaults are optional),
 * `additionalProperties: false` (strict), and each field's other spelling in its description.
 */
export function inputJsonSchema(input: z.ZodType): Record<string, unknown> {
  const schema = z.toJSONSchema(input, { io: 'input' }) as Record<string, unknown>;
  const properties = schema.properties as Record<string, Record<string, unknown>> | undefined;
  if (!properties) return schema;
  for (const [alias, field] of Object.entries(contextAliasesOf(input))) {
    const p = properties[field];
    if (!p) continue;
    const also = `also accepted as ${alias}`;
    properties[field] = { ...p, description: typeof p.description === 'string' ? `${p.description} (${also})` : also };
  }
  return schema;
}

export function cardToJson(card: AgentCard): AgentCardJson {
  return {
    name: card.name,
    version: card.version,
    description: card.description,
    maxConcurrency: card.maxConcurrency,
    taskTypes: card.taskTypes.map((t) => ({
      type: t.type,
      description: t.description,
      inputSchema: inputJsonSchema(t.input),
      aliases: [...t.aliases],
      contextAliases: contextAliasesOf(t.input),
    })),
  };
}

export const NOOP_TASK_TYPE = 'noop';

/**
 * Not strict, unlike the agents' inputs: noop is a test and benchmark fixture, and specs give it
 * extra fields of their own to tell one submission from another.
 */
export const noopInput = z.object({
  sleep_ms: z.number().int().min(0).max(600_000).default(0),
  echo: z.unknown().optional(),
  /**
   * `retryable`: fail with unavailable (another instance may do better); `fatal`: fail with a
   * validation error; `throw`: throw a plain exception, as a handler's bug on one input would.
   */
  fail: z.enum(['retryable', 'fatal', 'throw']).optional(),
});
