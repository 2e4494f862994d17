/**
 * The registration of one workflow definition id (stream `workflow_definition-<id>`): its
 * versions as they were registered, and whether it was deleted. Validation against the live
 * catalog (MCP servers, task types) needs I/O, so it happens before the command: the command
 * carries a definition already validated and normalised. The decider keeps the version rules:
 * a user version must be newer than the latest, the same content again is accepted with no new
 * event, other content under an existing version is refused.
 */
import { assertNever, DomainError, type Command, type Decider, type Event } from '../../decider.js';
import type { WorkflowDefinition } from './schema.js';

/** Where a version came from: the built-in templates shipped in code, or a caller's registration. */
export type DefinitionSource = 'builtin' | 'user';

// ---- commands -------------------------------------------------------------

/**
 * Register a version. `source: 'builtin'` seeds a template at start: it is added when that version
 * is missing (even below the latest, as a template shipped in code is), and otherwise records nothing,
 * whatever the stored content: `checkBuiltinTemplate` says what the caller should report.
 */
export type RegisterDefinition = Command<
  'RegisterDefinition',
  { readonly definition: WorkflowDefinition; readonly source: DefinitionSource }
>;
/** Delete every version of a user definition (running executions keep their own copy). */
export type DeleteDefinition = Command<'DeleteDefinition', { readonly definitionId: string; readonly reason?: string }>;

export type DefinitionCommand = RegisterDefinition | DeleteDefinition;

// ---- events ---------------------------------------------------------------

export type DefinitionRegistered = Event<
  'DefinitionRegistered',
  {
    readonly definitionId: string;
    readonly version: number;
    readonly definition: WorkflowDefinition;
    readonly source: DefinitionSource;
    readonly registeredAt: string;
    readonly actor: string | null;
  }
>;
export type DefinitionDeleted = Event<
  'DefinitionDeleted',
  {
    readonly definitionId: string;
    /** Every version that was deleted, ascending. */
    readonly versions: readonly number[];
    readonly reason: string | null;
    readonly deletedAt: string;
    readonly actor: string | null;
  }
>;

export type DefinitionEvent = DefinitionRegistered | DefinitionDeleted;

export const definitionEventTypes: readonly DefinitionEvent['type'][] = ['DefinitionRegistered', 'DefinitionDeleted'];

/** Stream of one definition id. */
export const DEFINITION_STREAM_PREFIX = 'workflow_definition-';
export const workflowDefinitionStream = (definitionId: string): string => `${DEFINITION_STREAM_PREFIX}${definitionId}`;

// ---- state ----------------------------------------------------------------

export interface RegisteredVersion {
  readonly definition: WorkflowDefinition;
  readonly source: DefinitionSource;
}

export type DefinitionState =
  | { readonly status: 'none' }
  | {
      readonly status: 'active';
      readonly definitionId: string;
      readonly versions: Readonly<Record<number, RegisteredVersion>>;
      readonly latest: number;
    }
  /** `lastVersion`: the highest version ever registered; a new registration must go above it. */
  | { readonly status: 'deleted'; readonly definitionId: string; readonly lastVersion: number };

export const initialDefinitionState: DefinitionState = { status: 'none' };

/**
 * The same JSON value, whatever the order of object keys (events come back from jsonb, which
 * does not keep it). Only JSON values reach here: definitions are parsed by a zod schema.
 */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => sameJson(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  // Undefined members are dropped by JSON: compare what JSON would keep.
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return (
    ak.length === bk.length && ak.every((k) => Object.prototype.hasOwnProperty.call(bo, k) && sameJson(ao[k], bo[k]))
  );
}

/**
 * The JSON text of a value with object keys sorted and undefined members dropped: two values
 * `sameJson` holds for have the same canonical JSON, so it can be hashed to name a content.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Where two JSON values first differ, as a path (`steps[5].with.missing_ok`); undefined when they are the same. */
export function firstJsonDifference(a: unknown, b: unknown, path = ''): string | undefined {
  if (sameJson(a, b)) return undefined;
  const here = path === '' ? '(root)' : path;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return here;
  if (Array.isArray(a) !== Array.isArray(b)) return here;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    for (let i = 0; i < Math.max(a.length, bb.length); i++) {
      const d = firstJsonDifference(a[i], bb[i], `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return here;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort();
  for (const k of keys) {
    const d = firstJsonDifference(ao[k], bo[k], path === '' ? k : `${path}.${k}`);
    if (d !== undefined) return d;
  }
  return here;
}

/**
 * What seeding a built-in template found, for the caller to report (the decider records nothing
 * for a version already there, whatever its content). `stored_differs`: the id and version hold
 * other content than the code's, which is kept (executions on that version keep running what was
 * stored); the code changed the template without a new version. `id_deleted`: a deleted definition
 * of that id had reached this version, so the template is not registered.
 */
export type BuiltinTemplateCheck =
  | { readonly outcome: 'added' | 'unchanged' }
  | {
      readonly outcome: 'stored_differs';
      readonly definitionId: string;
      readonly version: number;
      readonly storedSource: DefinitionSource;
      /** The first place where the stored content and the code's differ. */
      readonly firstDifference: string;
    }
  | {
      readonly outcome: 'id_deleted';
      readonly definitionId: string;
      readonly version: number;
      readonly lastVersion: number;
    };

/** Check a built-in template against the state its seeding was decided from (pure: the caller logs). */
export function checkBuiltinTemplate(state: DefinitionState, definition: WorkflowDefinition): BuiltinTemplateCheck {
  if (state.status === 'none') return { outcome: 'added' };
  if (state.status === 'deleted') {
    if (definition.version > state.lastVersion) return { outcome: 'added' };
    return {
      outcome: 'id_deleted',
      definitionId: definition.id,
      version: definition.version,
      lastVersion: state.lastVersion,
    };
  }
  const existing = state.versions[definition.version];
  if (!existing) return { outcome: 'added' };
  if (sameJson(existing.definition, definition)) return { outcome: 'unchanged' };
  return {
    outcome: 'stored_differs',
    definitionId: definition.id,
    version: definition.version,
    storedSource: existing.source,
    firstDifference: firstJsonDifference(existing.definition, definition) ?? '(root)',
  };
}

export function decideDefinition(command: DefinitionCommand, state: DefinitionState): DefinitionEvent[] {
  const meta = command.metadata;
  switch (command.type) {
    case 'RegisterDefinition': {
      const def = command.data.definition;
      const registered: DefinitionEvent = {
        type: 'DefinitionRegistered',
        data: {
          definitionId: def.id,
          version: def.version,
          definition: def,
          source: command.data.source,
          registeredAt: meta.timestamp,
          actor: meta.actor ?? null,
        },
        metadata: meta,
      };
      if (state.status === 'none') return [registered];
      if (state.status === 'deleted') {
        if (def.version > state.lastVersion) return [registered];
        if (command.data.source === 'builtin') return [];
        throw new DomainError(
          'illegal_state',
          `workflow definition "${def.id}" was deleted; register a version above ${state.lastVersion}`,
          {
            id: def.id,
            version: def.version,
            latest: state.lastVersion,
          },
        );
      }
      const existing = state.versions[def.version];
      if (command.data.source === 'builtin') return existing ? [] : [registered];
      if (existing && sameJson(existing.definition, def)) return [];
      if (existing || def.version < state.latest) {
        throw new DomainError(
          'illegal_state',
          `workflow definition "${def.id}" version ${def.version} exists or is older than the latest (${state.latest})`,
          {
            id: def.id,
            version: def.version,
            latest: state.latest,
          },
        );
      }
      return [registered];
    }
    case 'DeleteDefinition': {
      const id = command.data.definitionId;
      if (state.status !== 'active')
        throw new DomainError('not_found', `workflow definition "${id}" not found`, { id });
      const versions = Object.keys(state.versions)
        .map(Number)
        .sort((a, b) => a - b);
      // The built-in templates are code: they would come back at the next start.
      const builtin = versions.filter((v) => state.versions[v]!.source === 'builtin');
      if (builtin.length > 0) {
        throw new DomainError(
          'illegal_state',
          `workflow definition "${id}" is a built-in template and cannot be deleted`,
          { id, builtinVersions: builtin },
        );
      }
      return [
        {
          type: 'DefinitionDeleted',
          data: {
            definitionId: id,
            versions,
            reason: command.data.reason ?? null,
            deletedAt: meta.timestamp,
            actor: meta.actor ?? null,
          },
          metadata: meta,
        },
      ];
    }
    default:
      return assertNever(command, 'command');
  }
}

export function evolveDefinition(state: DefinitionState, event: DefinitionEvent): DefinitionState {
  switch (event.type) {
    case 'DefinitionRegistered': {
      const d = event.data;
      const entry: RegisteredVersion = { definition: d.definition, source: d.source };
      if (state.status === 'active') {
        return {
          ...state,
          versions: { ...state.versions, [d.version]: entry },
          latest: Math.max(state.latest, d.version),
        };
      }
      return { status: 'active', definitionId: d.definitionId, versions: { [d.version]: entry }, latest: d.version };
    }
    case 'DefinitionDeleted':
      if (state.status !== 'active') return state;
      return { status: 'deleted', definitionId: state.definitionId, lastVersion: state.latest };
    default:
      return assertNever(event, 'event');
  }
}

/** The registration of one definition id as a Decider. */
export const definitionDecider: Decider<DefinitionCommand, DefinitionEvent, DefinitionState> = {
  decide: decideDefinition,
  evolve: evolveDefinition,
  initialState: initialDefinitionState,
};
