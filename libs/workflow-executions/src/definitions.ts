import { isDeepStrictEqual } from 'node:util';
import type pg from 'pg';
import type { NatsConnection } from '@nats-io/nats-core';
import { z } from 'zod';
import { AppError, type Logger } from '@switchyard/platform';
import { request } from '@switchyard/messaging';
import { MCP_REGISTRY_LIST_SUBJECT, TASK_TYPE_ALIASES } from '@switchyard/contracts';
import {
  AGENT_TASK_TYPES,
  builtInTemplates,
  parseUses,
  validateDefinition,
  workflowDefinitionSchema,
  type ToolCatalog,
  type WorkflowDefinition,
} from '@switchyard/domain';
import { WORKFLOW_SCHEMA } from './schema.js';

export interface StoredDefinition {
  readonly definition: WorkflowDefinition;
  readonly source: 'builtin' | 'user';
  readonly createdAt: string;
}

/** Versions are stored as PostgreSQL integers. */
export const MAX_VERSION = 2_147_483_647;

const registryReply = z.object({ servers: z.array(z.looseObject({ server: z.string(), tools: z.array(z.string()) })) });

/**
 * Versioned workflow definitions in PostgreSQL, seeded with the built-in templates.
 * Rows are immutable: a new version is a new row; executions carry their own copy.
 */
export class DefinitionStore {
  private readonly t = `${WORKFLOW_SCHEMA}.definitions`;
  constructor(private readonly pool: pg.Pool) {}

  /** Insert the built-in templates (their current versions) when missing. */
  async seedBuiltIns(): Promise<void> {
    for (const t of builtInTemplates) {
      const def = workflowDefinitionSchema.parse(t);
      await this.pool.query(`insert into ${this.t} (id, version, definition, source) values ($1, $2, $3, 'builtin') on conflict do nothing`, [
        def.id,
        def.version,
        JSON.stringify(def),
      ]);
    }
  }

  /** Latest version of each definition (or every version of one id). */
  async list(opts: { id?: string; allVersions?: boolean; source?: 'builtin' | 'user' } = {}): Promise<StoredDefinition[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (opts.id) where.push(`id = $${args.push(opts.id)}`);
    if (opts.source) where.push(`source = $${args.push(opts.source)}`);
    const w = where.length ? `where ${where.join(' and ')}` : '';
    const sql = opts.allVersions
      ? `select definition, source, created_at from ${this.t} ${w} order by id, version`
      : `select distinct on (id) definition, source, created_at from ${this.t} ${w} order by id, version desc`;
    const r = await this.pool.query<{ definition: WorkflowDefinition; source: 'builtin' | 'user'; created_at: Date }>(sql, args);
    return r.rows.map((x) => ({ definition: x.definition, source: x.source, createdAt: x.created_at.toISOString() }));
  }

  /** The latest (or the given) version; 404 when absent. */
  async get(id: string, version?: number): Promise<StoredDefinition> {
    if (version !== undefined && (!Number.isInteger(version) || version < 1 || version > MAX_VERSION)) {
      throw new AppError('not_found', `workflow definition "${id}" version ${version} not found`, { id, version });
    }
    const r = await this.pool.query<{ definition: WorkflowDefinition; source: 'builtin' | 'user'; created_at: Date }>(
      version === undefined
        ? `select definition, source, created_at from ${this.t} where id = $1 order by version desc limit 1`
        : `select definition, source, created_at from ${this.t} where id = $1 and version = $2`,
      version === undefined ? [id] : [id, version],
    );
    const row = r.rows[0];
    if (!row) throw new AppError('not_found', `workflow definition "${id}"${version ? ` version ${version}` : ''} not found`, { id, version });
    return { definition: row.definition, source: row.source, createdAt: row.created_at.toISOString() };
  }

  async ids(): Promise<string[]> {
    return (await this.pool.query<{ id: string }>(`select distinct id from ${this.t}`)).rows.map((r) => r.id);
  }

  /**
   * Register a definition after validating it against `catalog`: 400 with every problem (a cycle
   * is named), 409 when that id and version already exist with other content, or when the version
   * is not newer than the latest. The same content again is accepted (idempotent).
   */
  async register(input: unknown, catalog: ToolCatalog): Promise<{ definition: WorkflowDefinition; created: boolean }> {
    const v = validateDefinition(input, catalog);
    if (!v.ok) {
      throw new AppError('validation', `invalid workflow definition: ${v.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, {
        problems: v.problems,
        errors: v.problems.map((p) => ({ path: p.path, message: p.message, code: p.code, in: 'body' })),
      });
    }
    const def = v.definition;
    if (def.version > MAX_VERSION) {
      throw new AppError('validation', `invalid workflow definition: version: at most ${MAX_VERSION}`, {
        errors: [{ path: 'version', message: `at most ${MAX_VERSION}`, code: 'too_big', in: 'body' }],
      });
    }
    const ins = await this.pool.query(
      `insert into ${this.t} (id, version, definition, source)
       select $1, $2, $3, 'user' where not exists (select 1 from ${this.t} where id = $1 and version >= $2)
       on conflict do nothing`,
      [def.id, def.version, JSON.stringify(def)],
    );
    if (ins.rowCount === 1) return { definition: def, created: true };
    const existing = await this.pool.query<{ definition: WorkflowDefinition }>(`select definition from ${this.t} where id = $1 and version = $2`, [
      def.id,
      def.version,
    ]);
    // jsonb does not keep key order: compare values, not texts.
    if (existing.rows[0] && isDeepStrictEqual(existing.rows[0].definition, JSON.parse(JSON.stringify(def)))) return { definition: def, created: false };
    const latest = await this.pool.query<{ v: number }>(`select max(version) as v from ${this.t} where id = $1`, [def.id]);
    throw new AppError('illegal_state', `workflow definition "${def.id}" version ${def.version} exists or is older than the latest (${latest.rows[0]?.v})`, {
      id: def.id,
      version: def.version,
      latest: latest.rows[0]?.v,
    });
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
  const definitions = await deps.definitions.ids();
  // An alias is a valid step task type too: the dispatcher resolves it when the step submits.
  const taskTypes = [...AGENT_TASK_TYPES, ...Object.keys(TASK_TYPE_ALIASES), ...(opts.extraTaskTypes ?? [])];
  try {
    const reply = await request(deps.nats, MCP_REGISTRY_LIST_SUBJECT, {}, { schema: registryReply, timeoutMs: opts.timeoutMs ?? 1_500 });
    return { servers: reply.servers.map((s) => ({ name: s.server, tools: s.tools })), taskTypes, definitions, mcpChecked: true };
  } catch (err) {
    deps.logger?.warn({ err: (err as Error).message }, 'MCP registry unreachable: MCP steps are not checked against it');
    const servers = new Map<string, Set<string>>();
    const steps = (opts.lenientFor as { steps?: { uses?: unknown }[] } | undefined)?.steps ?? [];
    for (const s of Array.isArray(steps) ? steps : []) {
      if (typeof s?.uses !== 'string' || !s.uses.startsWith('mcp:') || !s.uses.includes('/')) continue;
      const u = parseUses(s.uses);
      if (u.kind === 'mcp') servers.set(u.server, (servers.get(u.server) ?? new Set()).add(u.tool));
    }
    return { servers: [...servers].map(([name, tools]) => ({ name, tools: [...tools] })), taskTypes, definitions, mcpChecked: false };
  }
}
