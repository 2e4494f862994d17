import { z } from 'zod';
import { AppError } from '@switchyard/platform';
import { API_KEY_STREAM_PREFIX, trimmedText } from '@switchyard/contracts';
import type { EventMetadata } from '@switchyard/event-store';
import { roleSchema, type Role } from './roles.js';

/**
 * The API key aggregate, one stream per key (`apikey-<id>`). A pure decider: no I/O,
 * no clock (time and actor come in the command's metadata).
 *
 * ApiKeyCreated carries the SHA-256 of the secret, never the secret, so the
 * security.api_keys table can be rebuilt from the log. The hash of a 256-bit random
 * secret reveals nothing usable (see keys.ts).
 */
export const apiKeyStream = (id: string): string => `${API_KEY_STREAM_PREFIX}${id}`;
export { API_KEY_STREAM_PREFIX };

export const keyIdSchema = z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 hex characters');
// Printable text only: control characters and lone surrogates have no place in a name
// (and PostgreSQL's jsonb refuses \u0000 and unpaired surrogates in the event).
// eslint-disable-next-line no-control-regex -- control characters are what this rejects
const unprintable = /[\u0000-\u001f\u007f]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
export const keyNameSchema = trimmedText(1, 100).refine(
  (s) => !unprintable.test(s),
  'must be printable text (no control characters or unpaired surrogates)',
);

export const apiKeyCreatedData = z.object({
  id: keyIdSchema,
  name: keyNameSchema,
  role: roleSchema,
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  prefix: z.string(),
});
export type ApiKeyCreatedData = z.infer<typeof apiKeyCreatedData>;

type Meta = EventMetadata;
export type CreateApiKey = { readonly type: 'CreateApiKey'; readonly data: ApiKeyCreatedData; readonly metadata: Meta };
export type RevokeApiKey = {
  readonly type: 'RevokeApiKey';
  readonly data: { readonly id: string };
  readonly metadata: Meta;
};
export type ApiKeyCommand = CreateApiKey | RevokeApiKey;

export type ApiKeyCreated = {
  readonly type: 'ApiKeyCreated';
  readonly data: ApiKeyCreatedData;
  readonly metadata: Meta;
};
export type ApiKeyRevoked = {
  readonly type: 'ApiKeyRevoked';
  readonly data: { readonly id: string };
  readonly metadata: Meta;
};
export type ApiKeyEvent = ApiKeyCreated | ApiKeyRevoked;
export const API_KEY_EVENT_TYPES = ['ApiKeyCreated', 'ApiKeyRevoked'] as const;

interface KeyInfo {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
}
export type ApiKeyState =
  | { readonly status: 'absent' }
  | { readonly status: 'active'; readonly key: KeyInfo }
  | { readonly status: 'revoked'; readonly key: KeyInfo; readonly revokedAt: string };

const assertNever = (x: never): never => {
  throw new Error(`unexpected ${JSON.stringify(x)}`);
};

export const apiKeyDecider = {
  initialState: { status: 'absent' } as ApiKeyState,

  decide(command: ApiKeyCommand, state: ApiKeyState): ApiKeyEvent[] {
    switch (command.type) {
      case 'CreateApiKey':
        if (state.status !== 'absent')
          throw new AppError('illegal_state', `API key ${command.data.id} already exists`, { id: command.data.id });
        return [{ type: 'ApiKeyCreated', data: command.data, metadata: command.metadata }];
      case 'RevokeApiKey':
        if (state.status === 'absent')
          throw new AppError('not_found', `no API key ${command.data.id}`, { id: command.data.id });
        if (state.status === 'revoked') {
          throw new AppError('illegal_state', `API key ${command.data.id} is already revoked`, {
            id: command.data.id,
            revokedAt: state.revokedAt,
          });
        }
        return [{ type: 'ApiKeyRevoked', data: { id: command.data.id }, metadata: command.metadata }];
      default:
        return assertNever(command);
    }
  },

  evolve(state: ApiKeyState, event: ApiKeyEvent): ApiKeyState {
    switch (event.type) {
      case 'ApiKeyCreated':
        return { status: 'active', key: { id: event.data.id, name: event.data.name, role: event.data.role } };
      case 'ApiKeyRevoked':
        return state.status === 'absent'
          ? state
          : { status: 'revoked', key: state.key, revokedAt: event.metadata.timestamp };
      default:
        return assertNever(event);
    }
  },
};
