import { Argument, Command, Option } from 'commander';
import { z } from 'zod';
import { Api } from './client.js';
import { completionScript } from './completion.js';
import { configPath, resolveConnection, writeSavedConfig } from './config.js';
import { CliError, EXIT } from './errors.js';
import { askHidden, readJsonObject } from './input.js';
import { dim, green, printBlock, printJson, printLine, red, table, yellow } from './output.js';
import { eventSchema, liveEvents, type EventJson } from './sse.js';
import { watchExecution } from './watch.js';

/** Options every command takes (declared on the program, read with optsWithGlobals). */
interface GlobalOpts {
  url?: string;
  key?: string;
  allowHttp?: boolean;
  json?: boolean;
}

const globals = (cmd: Command): GlobalOpts => cmd.optsWithGlobals<GlobalOpts>();
const apiOf = (cmd: Command): Api => new Api(resolveConnection(globals(cmd)));
/** Commander passes (…arguments, options, command); every handler here reads the last two. */
const act =
  <O>(fn: (options: O, cmd: Command) => Promise<void> | void) =>
  (...a: unknown[]) =>
    fn(a[a.length - 2] as O, a[a.length - 1] as Command);

// ---- response schemas: only the fields the CLI relies on -----------------------------------

const templatesSchema = z.object({
  templates: z.array(
    z.looseObject({
      id: z.string(),
      version: z.number(),
      name: z.string(),
      description: z.string(),
      steps: z.array(z.looseObject({ id: z.string() })),
    }),
  ),
});
const startedSchema = z.looseObject({ execution_id: z.string(), status: z.string(), definition_id: z.string() });
const executionSchema = z.looseObject({
  execution_id: z.string(),
  status: z.string(),
  definition_id: z.string().optional(),
  started_at: z.string().nullable().optional(),
  ended_at: z.string().nullable().optional(),
  duration_ms: z.number().nullable().optional(),
  error: z.unknown().optional(),
  steps: z
    .array(
      z.looseObject({
        step_id: z.string(),
        status: z.string(),
        attempts: z.number().nullable().optional(),
        items: z.number().nullable().optional(),
        started_at: z.string().nullable().optional(),
        ended_at: z.string().nullable().optional(),
        attempt_history: z.array(z.looseObject({ item_index: z.number().nullable().optional() })).optional(),
      }),
    )
    .optional(),
});

/**
 * A step's items: a for_each step's count, or for a compensation that undid items one by one, how
 * many it undid (its attempt rows name them); null for a plain step.
 */
function itemsOf(s: { items?: number | null; attempt_history?: { item_index?: number | null }[] }): number | null {
  if (typeof s.items === 'number') return s.items;
  const undone = new Set(
    (s.attempt_history ?? []).flatMap((a) => (typeof a.item_index === 'number' ? [a.item_index] : [])),
  );
  return undone.size > 0 ? undone.size : null;
}
const executionListSchema = z.object({ items: z.array(executionSchema), next_cursor: z.string().nullable() });
const cancelSchema = z.looseObject({ execution_id: z.string(), status: z.string() });
const historySchema = z.object({
  events: z.array(
    z.looseObject({
      revision: z.number(),
      type: z.string(),
      time: z.string(),
      actor: z.string().nullable(),
      data: z.unknown(),
    }),
  ),
  next: z.string().nullable(),
});
const forkSchema = z.looseObject({
  execution_id: z.string(),
  status: z.string(),
  copied_steps: z.array(z.string()),
  rerun_steps: z.array(z.string()),
});
const retrySchema = z.looseObject({ execution_id: z.string(), status: z.string(), retried_steps: z.array(z.string()) });
const stepOf = (data: unknown): string | null =>
  data && typeof data === 'object' && typeof (data as { stepId?: unknown }).stepId === 'string'
    ? (data as { stepId: string }).stepId
    : null;
const taskSchema = z.looseObject({
  task_id: z.string(),
  status: z.string(),
  agent: z.string().nullable().optional(),
  result: z.unknown().optional(),
  error: z.unknown().optional(),
});
const mcpHealthSchema = z.looseObject({
  status: z.string(),
  servers: z.array(
    z.looseObject({
      server: z.string(),
      state: z.string(),
      breaker: z.string().nullable().optional(),
      transport: z.string().optional(),
      tools: z.array(z.string()).optional(),
    }),
  ),
});
const mcpServerSchema = z.looseObject({ server: z.string(), state: z.string(), tools: z.array(z.string()).optional() });
const alertSchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  severity: z.string(),
  state: z.string(),
  value: z.number().nullable().optional(),
  firingSince: z.string().nullable().optional(),
  updatedAt: z.string().nullable().optional(),
});
const alertsSchema = z.object({ alerts: z.array(alertSchema) });
const keySchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  role: z.string(),
  prefix: z.string(),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
});
const statusSchema = z.looseObject({
  status: z.string(),
  reasons: z.array(z.looseObject({ level: z.string(), component: z.string(), message: z.string() })).optional(),
  infrastructure: z
    .looseObject({ checks: z.record(z.string(), z.looseObject({ status: z.string() })).optional() })
    .optional(),
  mcp: z
    .looseObject({
      servers: z
        .array(z.looseObject({ server: z.string(), health: z.string().optional(), breaker: z.string().optional() }))
        .optional(),
    })
    .optional(),
  agents: z
    .looseObject({
      items: z
        .array(
          z.looseObject({
            agent: z.string(),
            in_flight: z.number().optional(),
            queued: z.number().optional(),
            instances: z.array(z.looseObject({ status: z.string() })).optional(),
          }),
        )
        .optional(),
    })
    .optional(),
  workflows: z
    .looseObject({ running: z.number().optional(), last_hour: z.record(z.string(), z.number()).optional() })
    .optional(),
  alerts: z.looseObject({ firing: z.number().optional(), pending: z.number().optional() }).optional(),
});
const readySchema = z.looseObject({
  status: z.string(),
  checks: z.record(z.string(), z.looseObject({ status: z.string(), error: z.string().optional() })).optional(),
});
const eventsPageSchema = z.object({
  events: z.array(eventSchema),
  next: z.looseObject({ after: z.number().optional(), href: z.string() }).nullable(),
});

const TERMINAL_TASK = new Set(['completed', 'failed', 'canceled', 'timed_out', 'rejected']);

function csv(value: string | undefined): string[] | undefined {
  const list = value
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return list?.length ? list : undefined;
}

function eventLine(e: EventJson): string {
  const corr = typeof e.metadata.correlationId === 'string' ? ` ${dim(`[${e.metadata.correlationId}]`)}` : '';
  return `${String(e.position).padStart(7)}  ${e.recordedAt}  ${e.type.padEnd(24)} ${e.streamId}${corr}`;
}

/** Stop reading a stream after `seconds` (0: never) or on Ctrl-C. */
function stopSignal(seconds: number | undefined): AbortController {
  const ac = new AbortController();
  if (seconds && seconds > 0) setTimeout(() => ac.abort(), seconds * 1000).unref();
  process.once('SIGINT', () => ac.abort());
  return ac;
}

/**
 * A whole number of at least `min` written in decimal digits: `Number()` alone reads a blank value
 * as 0 and `0x10`, `0b11`, `1e1` as 16, 3, 10, so a typo became another revision or limit.
 */
const wholeNumber = (min: number) => (name: string) => (v: string) => {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min)
    throw new CliError(
      `${name} must be a whole number${min > 0 ? ` of at least ${min}` : ''}, got ${JSON.stringify(v)}`,
      EXIT.usage,
    );
  return n;
};
const positiveInt = wholeNumber(1);
const nonNegativeInt = wholeNumber(0);

const WATCH_TIMEOUT_HELP = 'stop watching after this many seconds, exit 4 if not ended (the execution goes on)';
/** How `watch` and `--wait` follow an execution: JSON or not, and for how long (--timeout, 0 or none: as long as it runs). */
const watchOptions = (cmd: Command, timeout: number | undefined) => ({
  json: !!globals(cmd).json,
  ...(timeout ? { timeoutSeconds: timeout } : {}),
});

export function buildProgram(): Command {
  const program = new Command('switchyard')
    .description('Command-line client of the Switchyard gateway')
    .version('0.1.0')
    .option('--url <url>', 'gateway URL (else SWITCHYARD_URL, the config file, http://127.0.0.1:10000)')
    .option(
      '--key <key>',
      'API key (else SWITCHYARD_KEY, the config file); "-" reads it from stdin. Given here it shows in ' +
        "every local user's process list: prefer login's prompt, stdin or SWITCHYARD_KEY",
    )
    .option('--allow-http', 'send the key over plain http to another machine (else refused; SWITCHYARD_ALLOW_HTTP=1)')
    .option('--json', 'print machine-readable JSON')
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 usage, 2 API refused (4xx), 3 server error or unreachable, 4 the workflow or task ended failed/canceled.',
    );

  // ---- login -------------------------------------------------------------------------------
  program
    .command('login')
    .description(`check a URL and key, then save them to ${configPath()} (mode 0600)`)
    .action(
      act(async (_o, cmd: Command) => {
        let api = apiOf(cmd);
        if (!api.conn.key) {
          // Asked for, not typed on the command line (where the process list shows it).
          if (!process.stdin.isTTY || !process.stderr.isTTY)
            throw new CliError(
              'login needs a key: --key - (from stdin), SWITCHYARD_KEY, or run it in a terminal',
              EXIT.usage,
            );
          api = new Api(resolveConnection({ ...globals(cmd), key: await askHidden('API key: ') }));
        }
        await api.call('/api/v1/workflows/templates', templatesSchema);
        const file = configPath();
        writeSavedConfig({ url: api.conn.url, key: api.conn.key }, file);
        if (globals(cmd).json) printJson({ url: api.conn.url, config: file });
        else printLine(`${green('✔')} logged in to ${api.conn.url}; saved to ${file}`);
      }),
    );

  // ---- status, doctor ----------------------------------------------------------------------
  program
    .command('status')
    .description('the system status: verdict, reasons, infrastructure, MCP servers, agents, alerts')
    .action(
      act(async (_o, cmd: Command) => {
        const { body } = await apiOf(cmd).call('/api/v1/integration/status', statusSchema);
        if (globals(cmd).json) return printJson(body);
        const verdict =
          body.status === 'healthy'
            ? green(body.status)
            : body.status === 'degraded'
              ? yellow(body.status)
              : red(body.status);
        printLine(`status: ${verdict}`);
        for (const r of body.reasons ?? []) printLine(`  ${r.level}: ${r.component}: ${r.message}`);
        const checks = Object.entries(body.infrastructure?.checks ?? {});
        if (checks.length) printLine(`infrastructure: ${checks.map(([k, v]) => `${k} ${v.status}`).join(', ')}`);
        const servers = body.mcp?.servers ?? [];
        if (servers.length)
          printLine(
            `mcp servers: ${servers.map((s) => `${s.server} ${s.health ?? '?'}${s.breaker && s.breaker !== 'closed' ? ` (breaker ${s.breaker})` : ''}`).join(', ')}`,
          );
        if (body.workflows)
          printLine(
            `workflows: ${body.workflows.running ?? 0} running; last hour ${Object.entries(
              body.workflows.last_hour ?? {},
            )
              .map(([k, v]) => `${v} ${k}`)
              .join(', ')}`,
          );
        if (body.alerts) printLine(`alerts: ${body.alerts.firing ?? 0} firing, ${body.alerts.pending ?? 0} pending`);
        const agents = body.agents?.items ?? [];
        if (agents.length) {
          printLine('');
          printBlock(
            table(
              agents.map((a) => [
                a.agent,
                `${(a.instances ?? []).filter((i) => i.status === 'up').length}/${(a.instances ?? []).length} up`,
                a.in_flight ?? 0,
                a.queued ?? 0,
              ]),
              ['agent', 'instances', 'in flight', 'queued'],
            ),
          );
        }
      }),
    );

  program
    .command('doctor')
    .description('diagnose the connection: gateway reachable, readiness details, key valid')
    .action(
      act(async (_o, cmd: Command) => {
        const api = apiOf(cmd);
        const checks: { check: string; ok: boolean; detail: string }[] = [];
        const add = (check: string, ok: boolean, detail: string) => checks.push({ check, ok, detail });
        add('url', true, `${api.conn.url} (from ${api.conn.source.url})`);
        let reachable = false;
        try {
          const live = await api.raw('/livez', { timeoutMs: 5_000 });
          reachable = true;
          add('gateway reachable', live.status === 200, `GET /livez -> ${live.status}`);
        } catch (err) {
          add('gateway reachable', false, (err as Error).message);
        }
        if (reachable) {
          const ready = await api.raw('/readyz', { timeoutMs: 10_000 });
          const parsed = readySchema.safeParse(ready.body);
          const details = parsed.success
            ? Object.entries(parsed.data.checks ?? {})
                .map(([k, v]) => `${k} ${v.status}${v.error ? ` (${v.error})` : ''}`)
                .join(', ')
            : (typeof ready.body === 'string' ? ready.body : JSON.stringify(ready.body)).slice(0, 200);
          add('ready', ready.status === 200, `${parsed.success ? parsed.data.status : ready.status}: ${details}`);
          if (!api.conn.key)
            add(
              'key',
              false,
              api.conn.savedKeyFor
                ? `no key: the saved one is for ${api.conn.savedKeyFor}, not sent here; --key, SWITCHYARD_KEY or \`switchyard login --url ${api.conn.url}\``
                : 'no key: --key, SWITCHYARD_KEY or `switchyard login`',
            );
          else {
            const r = await api.raw('/api/v1/workflows/templates', { timeoutMs: 10_000 });
            const p = r.body as { title?: string; detail?: string; correlationId?: string };
            add(
              'key valid',
              r.status === 200,
              r.status === 200
                ? `accepted (from ${api.conn.source.key})`
                : `${r.status} ${p?.title ?? ''}: ${p?.detail ?? ''} [correlation id ${p?.correlationId ?? r.headers.get('x-correlation-id')}]`,
            );
            if (r.status === 200) {
              const admin = await api.raw('/api/v1/admin/api-keys', { timeoutMs: 10_000 });
              add(
                'admin rights',
                true,
                admin.status === 200 ? 'yes (keys create/list/revoke work)' : 'no (an operator or viewer key)',
              );
            }
          }
        }
        const ok = checks.every((c) => c.ok);
        if (globals(cmd).json) printJson({ ok, checks });
        else for (const c of checks) printLine(`${c.ok ? green('✔') : red('✖')} ${c.check.padEnd(18)} ${c.detail}`);
        if (!ok) process.exitCode = reachable ? EXIT.api : EXIT.server;
      }),
    );

  // ---- workflow ----------------------------------------------------------------------------
  const workflow = program.command('workflow').alias('executions').description('workflow templates and executions');
  workflow
    .command('templates')
    .description('the built-in templates')
    .action(
      act(async (_o, cmd: Command) => {
        const { body } = await apiOf(cmd).call('/api/v1/workflows/templates', templatesSchema);
        if (globals(cmd).json) return printJson(body);
        printBlock(
          table(
            body.templates.map((t) => [t.id, t.version, t.steps.length, t.description]),
            ['template', 'version', 'steps', 'description'],
          ),
        );
      }),
    );
  workflow
    .command('start <template>')
    .description('start an execution; --wait draws each step live until it ends')
    .option('--input <json|file>', 'the workflow input: inline JSON, a file, @file or - (stdin)')
    .option('--wait', 'follow the execution live until it ends')
    .option('--timeout <seconds>', WATCH_TIMEOUT_HELP, nonNegativeInt('--timeout'))
    .option('--idempotency-key <key>', 'send an Idempotency-Key (a repeat start answers the first execution)')
    .action(
      act(async (o: { input?: string; wait?: boolean; idempotencyKey?: string; timeout?: number }, cmd: Command) => {
        const input = readJsonObject(o.input, '--input');
        const api = apiOf(cmd);
        const template = cmd.processedArgs[0] as string;
        const { body } = await api.call(`/api/v1/workflows/start/${encodeURIComponent(template)}`, startedSchema, {
          method: 'POST',
          body: input,
          ...(o.idempotencyKey ? { headers: { 'idempotency-key': o.idempotencyKey } } : {}),
        });
        if (!o.wait) {
          if (globals(cmd).json) return printJson(body);
          printLine(`${body.execution_id}  ${body.status}`);
          printLine(dim(`follow it: switchyard workflow watch ${body.execution_id}`));
          return;
        }
        await watchExecution(api, body.execution_id, watchOptions(cmd, o.timeout));
      }),
    );
  workflow
    .command('list')
    .description('executions, newest first')
    .option('--status <status>', 'running, canceling, completed, failed or canceled')
    .option('--template <id>', 'only executions of this template')
    .option('--limit <n>', 'at most this many (1-200)', positiveInt('--limit'), 20)
    .action(
      act(async (o: { status?: string; template?: string; limit: number }, cmd: Command) => {
        const { body } = await apiOf(cmd).call('/api/v1/workflows/executions', executionListSchema, {
          query: { status: o.status, template: o.template, limit: o.limit },
        });
        if (globals(cmd).json) return printJson(body);
        printBlock(
          table(
            body.items.map((e) => [
              e.execution_id,
              e.definition_id,
              e.status,
              e.started_at,
              e.duration_ms !== null && e.duration_ms !== undefined ? `${e.duration_ms}ms` : null,
            ]),
            ['execution', 'template', 'status', 'started', 'took'],
          ),
        );
      }),
    );
  workflow
    .command('show <id>')
    .description('one execution with its steps')
    .action(
      act(async (_o, cmd: Command) => {
        const { body } = await apiOf(cmd).call(
          `/api/v1/workflows/executions/${encodeURIComponent(cmd.processedArgs[0] as string)}`,
          executionSchema,
        );
        if (globals(cmd).json) return printJson(body);
        printLine(
          `${body.execution_id}  ${body.definition_id ?? ''}  ${body.status}${body.duration_ms ? `  ${body.duration_ms}ms` : ''}`,
        );
        if (body.error) printLine(red(`error: ${JSON.stringify(body.error)}`));
        printBlock(
          table(
            (body.steps ?? []).map((s) => [
              s.step_id,
              s.status,
              s.attempts ?? null,
              itemsOf(s),
              s.started_at ?? null,
              s.ended_at ?? null,
            ]),
            ['step', 'status', 'attempts', 'items', 'started', 'ended'],
          ),
        );
      }),
    );
  workflow
    .command('cancel <id>')
    .description('cancel an execution (compensations run)')
    .option('--reason <text>', 'why, recorded in the execution')
    .action(
      act(async (o: { reason?: string }, cmd: Command) => {
        const { body } = await apiOf(cmd).call(
          `/api/v1/workflows/executions/${encodeURIComponent(cmd.processedArgs[0] as string)}/cancel`,
          cancelSchema,
          { method: 'POST', body: o.reason ? { reason: o.reason } : {} },
        );
        if (globals(cmd).json) return printJson(body);
        printLine(`${body.execution_id}  ${body.status}`);
      }),
    );
  // Operations on recorded executions (time travel, fork, retry); `executions` is an alias of this group.
  workflow
    .command('history <id>')
    .description(
      "an execution's events by revision; --at <revision> shows the execution as it was right after that event",
    )
    .option('--after <revision>', 'start after this revision', nonNegativeInt('--after'))
    .option('--limit <n>', 'at most this many events (1-500)', positiveInt('--limit'), 100)
    .option('--at <revision>', 'time travel: the state after this revision', nonNegativeInt('--at'))
    .action(
      act(async (o: { after?: number; limit: number; at?: number }, cmd: Command) => {
        const id = encodeURIComponent(cmd.processedArgs[0] as string);
        const api = apiOf(cmd);
        if (o.at !== undefined) {
          const { body } = await api.call(`/api/v1/workflows/executions/${id}`, executionSchema, {
            query: { at: o.at },
          });
          if (globals(cmd).json) return printJson(body);
          printLine(`${body.execution_id}  ${body.status}  at revision ${o.at}`);
          printBlock(
            table(
              (body.steps ?? []).map((s) => [s.step_id, s.status, s.attempts ?? null, itemsOf(s)]),
              ['step', 'status', 'attempts', 'items'],
            ),
          );
          return;
        }
        const { body } = await api.call(`/api/v1/workflows/executions/${id}/history`, historySchema, {
          query: { limit: o.limit, ...(o.after !== undefined ? { after: o.after } : {}) },
        });
        if (globals(cmd).json) return printJson(body);
        printBlock(
          table(
            body.events.map((e) => [e.revision, e.time, e.type, stepOf(e.data), e.actor]),
            ['rev', 'time', 'event', 'step', 'actor'],
          ),
        );
        if (body.next) printLine(dim(`more: --after ${body.events[body.events.length - 1]?.revision}`));
      }),
    );
  workflow
    .command('fork <id>')
    .description('a new execution that copies the outputs of the steps before --from-step and runs the rest')
    .requiredOption('--from-step <step>', 'the step to run again (with everything downstream of it)')
    .option(
      '--definition-version <n>',
      "run this registered version of the definition (default: the source execution's own)",
      positiveInt('--definition-version'),
    )
    .option('--input <json|file>', "another input (default: the source execution's)")
    .option('--idempotency-key <key>', 'send an Idempotency-Key (a repeat answers the first fork)')
    .option('--wait', 'follow the new execution live until it ends')
    .option('--timeout <seconds>', WATCH_TIMEOUT_HELP, nonNegativeInt('--timeout'))
    .action(
      act(
        async (
          o: {
            fromStep: string;
            definitionVersion?: number;
            input?: string;
            idempotencyKey?: string;
            wait?: boolean;
            timeout?: number;
          },
          cmd: Command,
        ) => {
          const api = apiOf(cmd);
          const body = {
            from_step: o.fromStep,
            ...(o.definitionVersion !== undefined ? { definition_version: o.definitionVersion } : {}),
            ...(o.input !== undefined ? { input: readJsonObject(o.input, '--input') } : {}),
          };
          const { body: r } = await api.call(
            `/api/v1/workflows/executions/${encodeURIComponent(cmd.processedArgs[0] as string)}/fork`,
            forkSchema,
            {
              method: 'POST',
              body,
              ...(o.idempotencyKey ? { headers: { 'idempotency-key': o.idempotencyKey } } : {}),
            },
          );
          if (o.wait) return watchExecution(api, r.execution_id, watchOptions(cmd, o.timeout));
          if (globals(cmd).json) return printJson(r);
          printLine(
            `${r.execution_id}  ${r.status}  copied: ${r.copied_steps.join(', ') || '-'}  runs: ${r.rerun_steps.join(', ')}`,
          );
        },
      ),
    );
  workflow
    .command('retry <id>')
    .description('re-run the failed steps of a failed execution and what depends on them, in the same execution')
    .option('--reason <text>', 'why, recorded in the execution')
    .option('--wait', 'follow the execution live until it ends')
    .option('--timeout <seconds>', WATCH_TIMEOUT_HELP, nonNegativeInt('--timeout'))
    .action(
      act(async (o: { reason?: string; wait?: boolean; timeout?: number }, cmd: Command) => {
        const api = apiOf(cmd);
        const id = cmd.processedArgs[0] as string;
        const { body } = await api.call(`/api/v1/workflows/executions/${encodeURIComponent(id)}/retry`, retrySchema, {
          method: 'POST',
          body: o.reason ? { reason: o.reason } : {},
        });
        if (o.wait) return watchExecution(api, id, { ...watchOptions(cmd, o.timeout), linesFrom: 'last_retry' });
        if (globals(cmd).json) return printJson(body);
        printLine(`${body.execution_id}  ${body.status}  retried: ${body.retried_steps.join(', ')}`);
      }),
    );
  workflow
    .command('watch <id>')
    .description('draw each step live (from the event stream) until the execution ends')
    .option('--timeout <seconds>', WATCH_TIMEOUT_HELP, nonNegativeInt('--timeout'))
    .action(
      act(async (o: { timeout?: number }, cmd: Command) => {
        await watchExecution(apiOf(cmd), cmd.processedArgs[0] as string, watchOptions(cmd, o.timeout));
      }),
    );

  // ---- task --------------------------------------------------------------------------------
  const task = program.command('task').description('tasks delegated to agents');
  task
    .command('delegate <type>')
    .description('delegate a task to the best capable agent')
    .option('--context <json|file>', 'the task context: inline JSON, a file, @file or -')
    .addOption(new Option('--priority <priority>', 'queue priority').choices(['low', 'normal', 'high', 'critical']))
    .option('--agent <name>', 'run it on this agent only')
    .option('--wait', 'wait for the result')
    .action(
      act(async (o: { context?: string; priority?: string; agent?: string; wait?: boolean }, cmd: Command) => {
        const api = apiOf(cmd);
        const body = {
          task_type: cmd.processedArgs[0] as string,
          context: readJsonObject(o.context, '--context'),
          ...(o.priority ? { priority: o.priority } : {}),
          ...(o.agent ? { agent: o.agent } : {}),
        };
        let { body: t } = await api.call('/api/v1/integration/agents/delegate', taskSchema, {
          method: 'POST',
          body,
          query: o.wait ? { wait: 'true' } : {},
          timeoutMs: 90_000,
        });
        // The server waits at most its request timeout; past it the task is still running: follow it.
        while (o.wait && !TERMINAL_TASK.has(t.status)) {
          await new Promise((r) => setTimeout(r, 1_000));
          t = (await api.call(`/api/v1/integration/agents/tasks/${t.task_id}`, taskSchema)).body;
        }
        if (globals(cmd).json) printJson(t);
        else {
          printLine(`${t.task_id}  ${t.status}  ${t.agent ?? ''}`);
          if (t.result !== undefined && t.result !== null) printBlock(JSON.stringify(t.result, null, 2));
          if (t.error) printLine(red(`error: ${JSON.stringify(t.error)}`));
        }
        if (o.wait && t.status !== 'completed') process.exitCode = EXIT.failed;
      }),
    );
  task
    .command('show <id>')
    .description('a task: status, agent, attempts, result or error')
    .action(
      act(async (_o, cmd: Command) => {
        const { body } = await apiOf(cmd).call(
          `/api/v1/integration/agents/tasks/${encodeURIComponent(cmd.processedArgs[0] as string)}`,
          taskSchema,
        );
        if (globals(cmd).json) return printJson(body);
        printBlock(JSON.stringify(body, null, 2));
      }),
    );
  task
    .command('cancel <id>')
    .description('cancel a queued or running task')
    .action(
      act(async (_o, cmd: Command) => {
        const { body } = await apiOf(cmd).call(
          `/api/v1/integration/agents/tasks/${encodeURIComponent(cmd.processedArgs[0] as string)}/cancel`,
          taskSchema,
          { method: 'POST', body: {} },
        );
        if (globals(cmd).json) return printJson(body);
        printLine(`${body.task_id}  ${body.status}`);
      }),
    );

  // ---- mcp ---------------------------------------------------------------------------------
  const mcp = program.command('mcp').description('MCP servers and their tools');
  mcp
    .command('servers')
    .description('every MCP server: state, breaker, tools')
    .action(
      act(async (_o, cmd: Command) => {
        const { body } = await apiOf(cmd).call('/api/v1/integration/mcp/health', mcpHealthSchema);
        if (globals(cmd).json) return printJson(body);
        printBlock(
          table(
            body.servers.map((s) => [s.server, s.transport, s.state, s.breaker, s.tools?.length ?? 0]),
            ['server', 'transport', 'state', 'breaker', 'tools'],
          ),
        );
      }),
    );
  mcp
    .command('tools <server>')
    .description("a server's tools (probed now)")
    .action(
      act(async (_o, cmd: Command) => {
        const { body } = await apiOf(cmd).call(
          `/api/v1/integration/mcp/health/${encodeURIComponent(cmd.processedArgs[0] as string)}`,
          mcpServerSchema,
        );
        if (globals(cmd).json) return printJson(body);
        for (const t of body.tools ?? []) printLine(t);
      }),
    );
  mcp
    .command('call <server> <tool>')
    .description('call a tool')
    .option('--args <json|file>', 'the tool arguments: inline JSON, a file, @file or -')
    .action(
      act(async (o: { args?: string }, cmd: Command) => {
        const [server, tool] = cmd.processedArgs as [string, string];
        const { body } = await apiOf(cmd).call('/api/v1/integration/mcp/call', z.unknown(), {
          method: 'POST',
          body: { server, tool, arguments: readJsonObject(o.args, '--args') },
        });
        printJson(body);
      }),
    );

  // ---- alerts ------------------------------------------------------------------------------
  const alerts = program
    .command('alerts')
    .description('alerts, firing first (`alerts resolve <id>` resolves one)')
    .option('--state <state>', 'only this state (pending, firing, resolved)')
    .option('--severity <severity>', 'only this severity')
    .action(
      act(async (o: { state?: string; severity?: string }, cmd: Command) => {
        const { body } = await apiOf(cmd).call('/api/v1/system/alerts', alertsSchema, {
          query: { state: o.state, severity: o.severity },
        });
        if (globals(cmd).json) return printJson(body);
        if (!body.alerts.length) return printLine('no alerts');
        printBlock(
          table(
            body.alerts.map((a) => [
              a.id,
              a.state,
              a.severity,
              a.name,
              a.value !== null && a.value !== undefined ? Number(a.value.toFixed(2)) : null,
              a.firingSince ?? a.updatedAt ?? null,
            ]),
            ['id', 'state', 'severity', 'alert', 'value', 'since'],
          ),
        );
      }),
    );
  alerts
    .command('resolve <id>')
    .description('resolve an alert by hand')
    .option('--reason <text>', 'why (recorded with who)')
    .action(
      act(async (o: { reason?: string }, cmd: Command) => {
        const { body } = await apiOf(cmd).call(
          `/api/v1/system/alerts/${encodeURIComponent(cmd.processedArgs[0] as string)}/resolve`,
          z.unknown(),
          { method: 'POST', body: o.reason ? { reason: o.reason } : {} },
        );
        if (globals(cmd).json) return printJson(body);
        printLine(`${cmd.processedArgs[0] as string} resolved`);
      }),
    );

  // ---- events ------------------------------------------------------------------------------
  const events = program.command('events').description('the event log: live tail and replay');
  events
    .command('tail')
    .description('print events live as they are committed (Server-Sent Events)')
    .option('--type <types>', 'only these event types (comma list)')
    .option('--stream-prefix <prefixes>', 'only streams whose id starts with one of these (comma list)')
    .option('--after <position>', 'start after this position (default: only new events)', nonNegativeInt('--after'))
    .option('--max <n>', 'exit after this many events', positiveInt('--max'))
    .option('--timeout <seconds>', 'exit after this many seconds', nonNegativeInt('--timeout'))
    .action(
      act(
        async (
          o: { type?: string; streamPrefix?: string; after?: number; max?: number; timeout?: number },
          cmd: Command,
        ) => {
          const ac = stopSignal(o.timeout);
          let n = 0;
          const types = csv(o.type);
          const prefixes = csv(o.streamPrefix);
          for await (const e of liveEvents(apiOf(cmd), {
            ...(o.after !== undefined ? { after: o.after } : {}),
            ...(types ? { types } : {}),
            ...(prefixes ? { streamPrefixes: prefixes } : {}),
            signal: ac.signal,
          })) {
            printLine(globals(cmd).json ? JSON.stringify(e) : eventLine(e));
            if (o.max !== undefined && ++n >= o.max) {
              ac.abort();
              break;
            }
          }
        },
      ),
    );
  events
    .command('replay')
    .description('print recorded events from a position or a time')
    .requiredOption('--from <position|time>', 'a global position (inclusive) or an ISO-8601 time')
    .option('--to <time>', 'up to this ISO-8601 time')
    .option('--type <types>', 'only these event types (comma list)')
    .option('--stream-prefix <prefixes>', 'only streams whose id starts with one of these (comma list)')
    .option('--limit <n>', 'at most this many events', positiveInt('--limit'), 1000)
    .action(
      act(
        async (o: { from: string; to?: string; type?: string; streamPrefix?: string; limit: number }, cmd: Command) => {
          const api = apiOf(cmd);
          const isPosition = /^\d+$/.test(o.from);
          if (!isPosition && Number.isNaN(Date.parse(o.from)))
            throw new CliError(`--from: a position or an ISO-8601 time, got ${o.from}`, EXIT.usage);
          let after: number | undefined = isPosition ? Number(o.from) - 1 : undefined;
          let printed = 0;
          for (;;) {
            const { body } = await api.call('/api/v1/events', eventsPageSchema, {
              query: {
                limit: Math.min(1000, o.limit - printed),
                ...(after !== undefined ? { after } : {}),
                ...(!isPosition ? { since: new Date(o.from).toISOString() } : {}),
                ...(o.to ? { until: new Date(o.to).toISOString() } : {}),
                ...(o.type ? { type: o.type } : {}),
                ...(o.streamPrefix ? { stream_prefix: o.streamPrefix } : {}),
              },
            });
            for (const e of body.events) printLine(globals(cmd).json ? JSON.stringify(e) : eventLine(e));
            printed += body.events.length;
            if (!body.next || body.next.after === undefined || printed >= o.limit) break;
            after = body.next.after;
          }
        },
      ),
    );

  // ---- keys --------------------------------------------------------------------------------
  const keys = program.command('keys').description('API keys (admin)');
  keys
    .command('create')
    .description('create a key; it is shown once')
    .requiredOption('--name <name>', 'what the key is for')
    .addOption(
      new Option('--role <role>', 'what it may do').choices(['viewer', 'operator', 'admin']).default('operator'),
    )
    .action(
      act(async (o: { name: string; role: string }, cmd: Command) => {
        const { body } = await apiOf(cmd).call('/api/v1/admin/api-keys', keySchema.extend({ key: z.string() }), {
          method: 'POST',
          body: { name: o.name, role: o.role },
        });
        if (globals(cmd).json) return printJson(body);
        printLine(`${body.id}  ${body.role}  ${body.name}`);
        printLine(body.key);
        printLine(dim('shown once: store it now (e.g. switchyard login --key <key>)'));
      }),
    );
  keys
    .command('list')
    .description('keys (never their secrets)')
    .option('--all', 'also revoked keys')
    .action(
      act(async (o: { all?: boolean }, cmd: Command) => {
        // Every page, in order (the list is paged: at most 1,000 keys an answer).
        const keys: z.infer<typeof keySchema>[] = [];
        let cursor: string | undefined;
        do {
          const { body } = await apiOf(cmd).call(
            '/api/v1/admin/api-keys',
            z.object({ keys: z.array(keySchema), next_cursor: z.string().nullable().optional() }),
            { query: { include_revoked: o.all ? 'true' : undefined, limit: '1000', cursor } },
          );
          keys.push(...body.keys);
          cursor = body.next_cursor ?? undefined;
        } while (cursor);
        if (globals(cmd).json) return printJson({ keys });
        printBlock(
          table(
            keys.map((k) => [k.id, k.role, k.name, k.prefix, k.createdAt, k.revokedAt]),
            ['id', 'role', 'name', 'prefix', 'created', 'revoked'],
          ),
        );
      }),
    );
  keys
    .command('revoke <id>')
    .description('revoke a key')
    .action(
      act(async (_o, cmd: Command) => {
        const { body } = await apiOf(cmd).call(
          `/api/v1/admin/api-keys/${encodeURIComponent(cmd.processedArgs[0] as string)}`,
          keySchema,
          { method: 'DELETE' },
        );
        if (globals(cmd).json) return printJson(body);
        printLine(`${body.id} revoked at ${body.revokedAt}`);
      }),
    );

  // ---- completion --------------------------------------------------------------------------
  program
    .command('completion')
    .description('print a shell completion script: eval "$(switchyard completion bash)"')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .action((shell: 'bash' | 'zsh') => {
      process.stdout.write(completionScript(program, shell));
    });

  return program;
}
