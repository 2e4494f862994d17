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
 * is missing (even below the latest, as a template shipped in code is), and otherwise records nothing.
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
