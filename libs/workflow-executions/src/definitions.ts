import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { NatsConnection } from '@nats-io/nats-core';
import { z } from 'zod';
import { AppError, byteBoundedSql, cutByBytes, type Logger } from '@switchyard/platform';
import { request } from '@switchyard/messaging';
import {
  capabilitiesReply,
  MCP_REGISTRY_LIST_SUBJECT,
  serviceSubject,
  TASK_TYPE_ALIASES,
  TASKS_SERVICE,
} from '@switchyard/contracts';
import { handleCommand, type EventStore } from '@switchyard/event-store';
import {
  DEFINITIONS_TABLE,
  ProjectionRunner,
  READ_SCHEMA,
  WORKFLOW_DEFINITIONS_PROJECTION,
  workflowDefinitionsProjection,
} from '@switchyard/read-models';
import {
  AGENT_TASK_TYPES,
  builtInTemplates,
  checkBuiltinTemplate,
  definitionDecider,
  workflowDefinitionStream,
  isDomainError,
  type BuiltinTemplateCheck,
  type DefinitionEvent,
  type DefinitionState,
  type DeleteDefinition,
  type RegisterDefinition,
  parseUses,
  validateDefinition,
  workflowDefinitionSchema,
  type ToolCatalog,
  type WorkflowDefinition,
} from '@switchyard/domain';

export interface StoredDefinition {
  readonly definition: WorkflowDefinition;
  readonly source: 'builtin' | 'user';
  readonly createdAt: string;
}

/** A built-in template the seeding could not register as the code has it (see `checkBuiltinTemplate`). */
export type BuiltinTemplateProblem = Exclude<BuiltinTemplateCheck, { outcome: 'added' | 'unchanged' }>;

/** Versions are stored as PostgreSQL integers. */
export const MAX_VERSION = 2_147_483_647;

/** Who asked, for the events' metadata (as the commands on executions record it). */
export interface DefinitionCommandMeta {
  readonly actor?: string;
  readonly correlationId?: string;
}

export interface DefinitionStoreOptions {
  /** The event store: needed to register or delete (reads only use the table). */
  readonly store?: EventStore;
  readonly logger?: Logger;
  /** How long a registration waits for the read model to show it before answering anyway (default 5 s). */
  readonly readModelWaitMs?: number;
}

const registryReply = z.object({ servers: z.array(z.looseObject({ server: z.string(), tools: z.array(z.string()) })) });
type DefinitionRow = { definition: WorkflowDefinition; source: 'builtin' | 'user'; created_at: Date };

/**
 * Versioned workflow definitions. Registering and deleting are commands on the definition's
 * stream (`workflow_definition-<id>`, decided by `definitionDecider`); the table
 * `workflows.definitions` is their read model (`workflowDefinitionsProjection`), which every
 * query here reads. Rows are immutable: a new version is a new row; executions carry their own copy.
 * `start()` runs that projection in this process (the gateway and the engine both do: the
 * checkpoint's compare-and-set keeps them from applying an event twice), imports rows that
 * predate the events, and seeds the built-in templates.
 */
export class DefinitionStore {
  private readonly t = DEFINITIONS_TABLE;
  private readonly store: EventStore | undefined;
  private readonly log: Logger | undefined;
  private readonly waitMs: number;
  private runner: ProjectionRunner | undefined;

  constructor(
    private readonly pool: pg.Pool,
    opts: DefinitionStoreOptions = {},
  ) {
    this.store = opts.store;
    this.log = opts.logger?.child({ component: 'definitions' });
    this.waitMs = opts.readModelWaitMs ?? 5_000;
  }

  /** Run the definitions read model here (caught up to the head), adopt rows without events, seed the built-ins. */
  async start(): Promise<void> {
    const store = this.eventStore();
    if (!this.runner) {
      this.runner = new ProjectionRunner({
        store,
        db: { pool: this.pool },
        projections: [workflowDefinitionsProjection],
        ...(this.log ? { logger: this.log } : {}),
      });
      await this.runner.start();
    }
    await this.runner.waitFor(undefined, WORKFLOW_DEFINITIONS_PROJECTION);
    await this.adoptRows();
    await this.seedBuiltIns();
  }

  async stop(): Promise<void> {
    const r = this.runner;
    this.runner = undefined;
    await r?.stop();
  }

  /**
   * Register the built-in templates (their current versions) when missing: no event when present.
   * A version stored with other content than the code's keeps the stored content (executions on it
   * run what was stored) and is logged as a warning, as is a template whose id was deleted at or
   * above its version; the problems found are returned.
   */
  async seedBuiltIns(): Promise<BuiltinTemplateProblem[]> {
    const correlationId = randomUUID();
    let position: number | undefined;
    const problems: BuiltinTemplateProblem[] = [];
    for (const t of builtInTemplates) {
      const def = workflowDefinitionSchema.parse(t);
      const r = await this.command(
        def.id,
        { type: 'RegisterDefinition', data: { definition: def, source: 'builtin' } },
        { actor: 'system:builtin', correlationId },
      );
      position = r.position ?? position;
      const check = checkBuiltinTemplate(r.decidedFrom, def);
      if (check.outcome === 'stored_differs') {
        problems.push(check);
        this.log?.warn(
          { ...check },
          `built-in template ${check.definitionId} version ${check.version} differs from the content stored under that version (first at ${check.firstDifference}): the stored content is kept and runs; the code changed the template without a new version`,
        );
      } else if (check.outcome === 'id_deleted') {
        problems.push(check);
        this.log?.warn(
          { ...check },
          `built-in template ${check.definitionId} version ${check.version} is not registered: a deleted definition of that id reached version ${check.lastVersion}`,
        );
      }
    }
    if (position !== undefined) await this.waitForReadModel(position);
    return problems;
  }

  /**
   * Latest version of each definition (or every version of one id), in (id, version) order;
   * `after` (the last one a page held: its id, and its version when every version is listed) and
   * `limit` page it.
   */
  async list(
    opts: {
      id?: string | undefined;
      allVersions?: boolean | undefined;
      source?: 'builtin' | 'user';
      after?: { id: string; version?: number | undefined } | undefined;
      limit?: number | undefined;
    } = {},
  ): Promise<StoredDefinition[]> {
    return (await this.listPage(opts)).definitions;
  }

  /**
   * `list`, cut with `maxBytes` where the definitions' JSON passes it (at least one is kept);
   * `cut` says the bytes left rows of the limit behind (whether the limit did, the caller learns
   * by asking one more than it shows).
   */
  async listPage(
    opts: Parameters<DefinitionStore['list']>[0] & { maxBytes?: number | undefined } = {},
  ): Promise<{ definitions: StoredDefinition[]; cut: boolean }> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (opts.id) where.push(`id = $${args.push(opts.id)}`);
    if (opts.source) where.push(`source = $${args.push(opts.source)}`);
    if (opts.after && opts.allVersions)
      where.push(`(id, version) > ($${args.push(opts.after.id)}, $${args.push(opts.after.version ?? MAX_VERSION)})`);
    else if (opts.after) where.push(`id > $${args.push(opts.after.id)}`);
    const w = where.length ? `where ${where.join(' and ')}` : '';
    const limit = opts.limit !== undefined ? `limit ${Math.max(1, Math.floor(opts.limit))}` : '';
    const sql = opts.allVersions
      ? `select id, version, definition, source, created_at, definition_bytes from ${this.t} ${w} order by id, version ${limit}`
      : `select distinct on (id) id, version, definition, source, created_at, definition_bytes from ${this.t} ${w} order by id, version desc ${limit}`;
    // Sizes written with each row (the stored size, compressed, for rows from before): the cut
    // happens before the rows are sent, without reading them.
    const bounded =
      opts.maxBytes === undefined
        ? sql
        : `${byteBoundedSql(
            `select q.*, coalesce(q.definition_bytes, pg_column_size(q.definition)) as bytes from (${sql}) q`,
            'w.id, w.version',
            `$${args.push(Math.max(1, Math.floor(opts.maxBytes)))}`,
          )} order by c.id, c.version`;
    const r = await this.pool.query<DefinitionRow & { taken?: string }>(bounded, args);
    return {
      definitions: r.rows.map((x) => ({
        definition: x.definition,
        source: x.source,
        createdAt: x.created_at.toISOString(),
      })),
      cut: cutByBytes(r.rows),
    };
  }

  /** The latest (or the given) version; 404 when absent. */
  async get(id: string, version?: number): Promise<StoredDefinition> {
    if (version !== undefined && (!Number.isInteger(version) || version < 1 || version > MAX_VERSION)) {
      throw new AppError('not_found', `workflow definition "${id}" version ${version} not found`, { id, version });
    }
    const r = await this.pool.query<DefinitionRow>(
      version === undefined
        ? `select definition, source, created_at from ${this.t} where id = $1 order by version desc limit 1`
        : `select definition, source, created_at from ${this.t} where id = $1 and version = $2`,
      version === undefined ? [id] : [id, version],
    );
    const row = r.rows[0];
    if (!row)
      throw new AppError('not_found', `workflow definition "${id}"${version ? ` version ${version}` : ''} not found`, {
        id,
        version,
      });
    return { definition: row.definition, source: row.source, createdAt: row.created_at.toISOString() };
  }

  /**
   * Changes when a definition is registered or deleted (how many versions there are, which ones,
   * and the newest one's time; a delete and a registration together change the sum of the rows'
   * hashes even where a process clock set the time back): one small row, so a copy of the whole
   * list is read again only then.
   */
  async stamp(): Promise<string> {
    const r = await this.pool.query<{ stamp: string }>(
      `select count(*)::text || '|' || coalesce(max(created_at)::text, '') || '|' ||
              coalesce(sum(hashtext(id || ':' || version::text))::text, '') as stamp from ${this.t}`,
    );
    return r.rows[0]!.stamp;
  }

  async ids(): Promise<string[]> {
    return (await this.pool.query<{ id: string }>(`select distinct id from ${this.t}`)).rows.map((r) => r.id);
  }

  /**
   * Register a definition after validating it against `catalog`: 400 with every problem (a cycle
   * is named), 409 when that id and version already exist with other content, or when the version
   * is not newer than the latest. The same content again is accepted (idempotent, no event).
   * Answers once the read model shows the new version (bounded wait), so a start right after finds it.
   */
  async register(
    input: unknown,
    catalog: ToolCatalog,
    meta: DefinitionCommandMeta = {},
  ): Promise<{ definition: WorkflowDefinition; created: boolean; position?: number }> {
    const v = validateDefinition(input, catalog);
    if (!v.ok) {
      throw new AppError(
        'validation',
        `invalid workflow definition: ${v.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
        {
          problems: v.problems,
          errors: v.problems.map((p) => ({ path: p.path, message: p.message, code: p.code, in: 'body' })),
        },
      );
    }
    const def = v.definition;
    if (def.version > MAX_VERSION) {
      throw new AppError('validation', `invalid workflow definition: version: at most ${MAX_VERSION}`, {
        errors: [{ path: 'version', message: `at most ${MAX_VERSION}`, code: 'too_big', in: 'body' }],
      });
    }
    const r = await this.command(
      def.id,
      { type: 'RegisterDefinition', data: { definition: def, source: 'user' } },
      meta,
    );
    if (r.position !== undefined) await this.waitForReadModel(r.position);
    return {
      definition: def,
      created: r.events.length > 0,
      ...(r.position !== undefined ? { position: r.position } : {}),
    };
  }

  /** Delete every version of a user definition: 404 unknown (or already deleted), 409 for a built-in template. */
  async delete(
    id: string,
    meta: DefinitionCommandMeta & { reason?: string } = {},
  ): Promise<{ definitionId: string; versions: readonly number[]; position?: number }> {
    const r = await this.command(
      id,
      {
        type: 'DeleteDefinition',
        data: { definitionId: id, ...(meta.reason !== undefined ? { reason: meta.reason } : {}) },
      },
      meta,
    );
    const deleted = r.events.find((e) => e.type === 'DefinitionDeleted');
    if (r.position !== undefined) await this.waitForReadModel(r.position);
    return {
      definitionId: id,
      versions: deleted?.type === 'DefinitionDeleted' ? deleted.data.versions : [],
      ...(r.position !== undefined ? { position: r.position } : {}),
    };
  }

  private eventStore(): EventStore {
    if (!this.store)
      throw new AppError('internal', 'this DefinitionStore was made without an event store: it can only read');
    return this.store;
  }

  /** Read the definition's stream, decide, append (retried on a revision conflict). Domain errors keep their code. */
  private async command(
    id: string,
    c:
      | { type: 'RegisterDefinition'; data: RegisterDefinition['data'] }
      | { type: 'DeleteDefinition'; data: DeleteDefinition['data'] },
    meta: DefinitionCommandMeta & { timestamp?: string },
  ): Promise<{ events: readonly DefinitionEvent[]; decidedFrom: DefinitionState; position?: number }> {
    const metadata = {
      timestamp: meta.timestamp ?? new Date().toISOString(),
      actor: meta.actor ?? 'api',
      correlationId: meta.correlationId ?? randomUUID(),
    };
    try {
      const r = await handleCommand(this.eventStore(), workflowDefinitionStream(id), definitionDecider, {
        ...c,
        metadata,
      });
      return {
        events: r.events,
        decidedFrom: r.decidedFrom,
        ...(r.position !== undefined ? { position: r.position } : {}),
      };
    } catch (err) {
      if (isDomainError(err)) throw new AppError(err.code, err.message, err.details, false);
      throw err;
    }
  }

  /**
   * Wait until the read model has applied `position`: through this process's runner when it runs
   * one, else by reading the projection's checkpoint. Past the wait it answers anyway (the event
   * is recorded; the row follows), with a warning.
   */
  private async waitForReadModel(position: number): Promise<void> {
    try {
      if (this.runner) return await this.runner.waitFor(position, WORKFLOW_DEFINITIONS_PROJECTION, this.waitMs);
      const until = Date.now() + this.waitMs;
      for (;;) {
        const r = await this.pool
          .query<{ position: string }>(`select position from ${READ_SCHEMA}.checkpoints where name = $1`, [
            WORKFLOW_DEFINITIONS_PROJECTION,
          ])
          .catch(() => ({ rows: [] }));
        if (r.rows[0] && Number(r.rows[0].position) >= position) return;
        if (Date.now() >= until)
          throw new AppError('timeout', `definitions read model did not reach ${position} in ${this.waitMs} ms`);
        await new Promise((res) => setTimeout(res, 20));
      }
    } catch (err) {
      this.log?.warn(
        { err: (err as Error).message, position },
        'definitions read model behind: answering from the command result',
      );
    }
  }

  /**
   * Rows written before definitions were events (plain inserts) get their events, once: every
   * version of an id without a stream is registered in version order, at its row's time. The
   * projection then finds the rows already there, and a rebuild keeps them.
   */
  private async adoptRows(): Promise<void> {
    const store = this.eventStore();
    const rows = await this.pool.query<DefinitionRow & { id: string; version: number }>(
      `select id, version, definition, source, created_at from ${this.t} order by id, version`,
    );
    const byId = new Map<string, (typeof rows.rows)[number][]>();
    for (const row of rows.rows) byId.set(row.id, [...(byId.get(row.id) ?? []), row]);
    for (const [id, versions] of byId) {
      if ((await store.readStream(workflowDefinitionStream(id), { maxCount: 1 })).length > 0) continue;
      const correlationId = randomUUID();
      for (const row of versions) {
        await this.command(
          id,
          { type: 'RegisterDefinition', data: { definition: row.definition, source: row.source } },
          { actor: 'system:import', correlationId, timestamp: row.created_at.toISOString() },
        );
      }
      this.log?.info(
        { definitionId: id, versions: versions.length },
        'definition rows without events: registered as events',
      );
    }
  }
}

/**
 * The task types the dispatcher's agents offer now, external agents' included; none when it does
 * not answer (the built-in types are checked without it).
 */
async function offeredTaskTypes(
  deps: { nats: NatsConnection; logger?: Logger },
  timeoutMs: number,
): Promise<readonly string[]> {
  try {
    return (
      await request(deps.nats, serviceSubject(TASKS_SERVICE, 'capabilities'), undefined, {
        schema: capabilitiesReply,
        timeoutMs,
      })
    ).task_types;
  } catch (err) {
    deps.logger?.warn(
      { err: (err as Error).message },
      "task dispatcher unreachable: only the built-in agents' task types are known to steps",
    );
    return [];
  }
}

/**
 * What steps may call: MCP servers and their tools (from the connectors' registry when it answers),
 * the agents' task types, and the stored definition ids. When the registry does not answer, MCP
 * references cannot be checked: the catalog then accepts the servers and tools `lenientFor` uses
 * (`mcpChecked: false` says so), rather than refusing every definition while connectors are down.
 */
export async function buildCatalog(
  deps: { nats: NatsConnection; definitions: DefinitionStore; logger?: Logger },
  opts: { lenientFor?: unknown; timeoutMs?: number; extraTaskTypes?: readonly string[] } = {},
): Promise<ToolCatalog & { mcpChecked: boolean }> {
  const timeoutMs = opts.timeoutMs ?? 1_500;
  // The registry, the definitions and the task types asked at once; the registry's answer (or its
  // failure, which the catch below handles) is awaited after the other two, which may throw first.
  const registry = request(deps.nats, MCP_REGISTRY_LIST_SUBJECT, {}, { schema: registryReply, timeoutMs });
  void registry.catch(() => undefined);
  const [definitions, offered] = await Promise.all([deps.definitions.ids(), offeredTaskTypes(deps, timeoutMs)]);
  // An alias is a valid step task type too: the dispatcher resolves it when the step submits.
  // External agents' types come from the dispatcher (registered at run time).
  const taskTypes = [
    ...new Set([...AGENT_TASK_TYPES, ...Object.keys(TASK_TYPE_ALIASES), ...offered, ...(opts.extraTaskTypes ?? [])]),
  ];
  try {
    const reply = await registry;
    return {
      // A server that has listed no tools is one that is still connecting (or down): a connectors
      // process that just started answers like that, so its tools are not checked rather than refused.
      servers: reply.servers.map((s) => (s.tools.length > 0 ? { name: s.server, tools: s.tools } : { name: s.server })),
      taskTypes,
      definitions,
      mcpChecked: true,
    };
  } catch (err) {
    deps.logger?.warn(
      { err: (err as Error).message },
      'MCP registry unreachable: MCP steps are not checked against it',
    );
    const servers = new Map<string, Set<string>>();
    const steps = (opts.lenientFor as { steps?: { uses?: unknown }[] } | undefined)?.steps ?? [];
    for (const s of Array.isArray(steps) ? steps : []) {
      if (typeof s?.uses !== 'string' || !s.uses.startsWith('mcp:') || !s.uses.includes('/')) continue;
      const u = parseUses(s.uses);
      if (u.kind === 'mcp') servers.set(u.server, (servers.get(u.server) ?? new Set()).add(u.tool));
    }
    return {
      servers: [...servers].map(([name, tools]) => ({ name, tools: [...tools] })),
      taskTypes,
      definitions,
      mcpChecked: false,
    };
  }
}
