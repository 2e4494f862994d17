/**
 * The webhook registration aggregate as a pure decider (no I/O, no clock: time comes in the
 * command's metadata). One stream per webhook name, `automation_webhook-<name>`: the name is
 * the registration's key, so "a name is registered at most once" is the stream's own
 * optimistic-concurrency check. A deleted name may be registered again (a new id).
 *
 * The HMAC secret is never in an event (the log is read by other components and relayed):
 * events carry `secret_id`, the key of the secret in `automation.webhook_secrets`.
 */
import { z } from 'zod';
import type { Event } from '@switchyard/domain';
import { AppError } from '@switchyard/platform';

export const WEBHOOK_STREAM_PREFIX = 'automation_webhook-';
export const webhookStream = (name: string): string => `${WEBHOOK_STREAM_PREFIX}${name}`;

/** Metadata of every automation command and event: the decider's only clock is `timestamp`. */
export interface AutomationMetadata {
  readonly timestamp: string;
  readonly correlationId: string;
  readonly actor?: string;
  readonly causationId?: string;
  readonly [key: string]: unknown;
}

/**
 * Who asks for a command on something someone owns, as the server knows them: the person the call
 * is for (`_meta.actor`; absent: the server's own token, i.e. the system) and whether that person's
 * key is an admin's (see admin-actors.ts). A command without a caller is the server's own.
 */
export interface CommandCaller {
  readonly actor?: string | undefined;
  readonly admin: boolean;
}

/**
 * The person a command's metadata names, when it names one: not the server itself (`mcp:...`,
 * a call with its token and no `_meta.actor`, an adoption) nor a part of the system (`system:...`).
 */
export const personOf = (actor: string | undefined): string | undefined =>
  actor === undefined || actor.startsWith('mcp:') || actor.startsWith('system:') ? undefined : actor;

/**
 * Refuse a change to something `owner` answers for, unless the caller is that owner, an admin, or
 * the system; something without an owner (made by the system, or before owners were recorded) is
 * anyone's, as it was.
 */
export function assertMayChange(what: string, owner: string | undefined, caller: CommandCaller | undefined): void {
  if (caller === undefined || caller.actor === undefined || caller.admin) return;
  if (owner === undefined || owner === caller.actor) return;
  throw new AppError(
    'forbidden',
    `${what} belongs to another API key: only its owner or an admin may change it`,
    { owner, caller: caller.actor, reason: 'not_owner' },
    false,
  );
}

/** Whether an error is assertMayChange's refusal (the service then checks once more for a new admin key). */
export const isNotOwner = (e: unknown): boolean =>
  e instanceof AppError && e.code === 'forbidden' && e.details['reason'] === 'not_owner';

export const webhookRegisteredSchema = z.object({
  id: z.uuid(),
  name: z.string().min(1),
  url: z.string().min(1),
  events: z.array(z.string()),
  secret_id: z.uuid(),
  registered_at: z.iso.datetime({ offset: true }),
  /**
   * Who registered it (`_meta.actor`): only they or an admin may update or delete it. Absent on
   * older events, whose metadata's actor says the same.
   */
  owner: z.string().min(1).optional(),
});
export const webhookUpdatedSchema = z.object({
  id: z.uuid(),
  name: z.string().min(1),
  url: z.string().min(1),
  events: z.array(z.string()),
  secret_id: z.uuid(),
  updated_at: z.iso.datetime({ offset: true }),
});
export const webhookDeletedSchema = z.object({
  id: z.uuid(),
  name: z.string().min(1),
  deleted_at: z.iso.datetime({ offset: true }),
});

export type WebhookEvent =
  | Event<'WebhookRegistered', z.infer<typeof webhookRegisteredSchema>, AutomationMetadata>
  | Event<'WebhookUpdated', z.infer<typeof webhookUpdatedSchema>, AutomationMetadata>
  | Event<'WebhookDeleted', z.infer<typeof webhookDeletedSchema>, AutomationMetadata>;

export const WEBHOOK_EVENT_TYPES = ['WebhookRegistered', 'WebhookUpdated', 'WebhookDeleted'] as const;

/** `id`: when the caller named the webhook by id, the registration it meant (a re-registered name has another). */
export type WebhookCommand =
  | {
      readonly type: 'RegisterWebhook';
      readonly data: {
        readonly id: string;
        readonly name: string;
        readonly url: string;
        readonly events: readonly string[];
        readonly secret_id: string;
        readonly owner?: string | undefined;
      };
      readonly metadata: AutomationMetadata;
    }
  | {
      readonly type: 'UpdateWebhook';
      readonly data: {
        readonly name: string;
        readonly id?: string;
        readonly url?: string;
        readonly events?: readonly string[];
        readonly secret_id?: string;
        readonly caller?: CommandCaller | undefined;
      };
      readonly metadata: AutomationMetadata;
    }
  | {
      readonly type: 'DeleteWebhook';
      readonly data: { readonly name: string; readonly id?: string; readonly caller?: CommandCaller | undefined };
      readonly metadata: AutomationMetadata;
    };

export type WebhookState =
  | { readonly status: 'none' }
  | {
      readonly status: 'registered';
      readonly id: string;
      readonly name: string;
      readonly url: string;
      readonly events: readonly string[];
      readonly secret_id: string;
      readonly registered_at: string;
      /** Who registered it, when a person did. */
      readonly owner?: string | undefined;
    }
  | { readonly status: 'deleted'; readonly id: string; readonly name: string };

const notFound = (name: string, id?: string): AppError =>
  new AppError('not_found', `no webhook named or with id "${id ?? name}"`, { webhook: id ?? name });

function registered(
  state: WebhookState,
  data: { name: string; id?: string },
): Extract<WebhookState, { status: 'registered' }> {
  if (state.status !== 'registered' || (data.id !== undefined && data.id !== state.id))
    throw notFound(data.name, data.id);
  return state;
}

const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

export const webhookDecider = {
  initialState: { status: 'none' } as WebhookState,

  decide(command: WebhookCommand, state: WebhookState): WebhookEvent[] {
    const metadata = command.metadata;
    switch (command.type) {
      case 'RegisterWebhook': {
        if (state.status === 'registered')
          throw new AppError('illegal_state', `webhook "${command.data.name}" already exists`, {
            name: `webhook "${command.data.name}"`,
          });
        const { id, name, url, events, secret_id, owner } = command.data;
        return [
          {
            type: 'WebhookRegistered',
            data: {
              id,
              name,
              url,
              events: [...events],
              secret_id,
              registered_at: metadata.timestamp,
              ...(owner !== undefined ? { owner } : {}),
            },
            metadata,
          },
        ];
      }
      case 'UpdateWebhook': {
        const s = registered(state, command.data);
        // Its URL and secret decide where its deliveries go and who can sign for them.
        assertMayChange(`webhook "${s.name}"`, s.owner, command.data.caller);
        const next = {
          url: command.data.url ?? s.url,
          events: [...(command.data.events ?? s.events)],
          secret_id: command.data.secret_id ?? s.secret_id,
        };
        // Nothing changes: nothing to record (a repeated update is idempotent).
        if (next.url === s.url && sameList(next.events, s.events) && next.secret_id === s.secret_id) return [];
        return [
          {
            type: 'WebhookUpdated',
            data: { id: s.id, name: s.name, ...next, updated_at: metadata.timestamp },
            metadata,
          },
        ];
      }
      case 'DeleteWebhook': {
        const s = registered(state, command.data);
        assertMayChange(`webhook "${s.name}"`, s.owner, command.data.caller);
        return [{ type: 'WebhookDeleted', data: { id: s.id, name: s.name, deleted_at: metadata.timestamp }, metadata }];
      }
      default: {
        const never: never = command;
        throw new AppError('validation', `unknown webhook command ${JSON.stringify(never)}`);
      }
    }
  },

  evolve(state: WebhookState, event: WebhookEvent): WebhookState {
    switch (event.type) {
      case 'WebhookRegistered': {
        const { owner, ...d } = event.data;
        // Registrations recorded before the owner was: the person their metadata names.
        const by = owner ?? personOf(event.metadata.actor);
        return { status: 'registered', ...d, ...(by !== undefined ? { owner: by } : {}) };
      }
      case 'WebhookUpdated':
        return state.status === 'registered'
          ? { ...state, url: event.data.url, events: event.data.events, secret_id: event.data.secret_id }
          : state;
      case 'WebhookDeleted':
        return { status: 'deleted', id: event.data.id, name: event.data.name };
      default: {
        const never: never = event;
        return never;
      }
    }
  },
};
