import { z } from 'zod';

/** The gateway's API key streams (`apikey-<id>`): other components follow their `ApiKeyRevoked`. */
export const API_KEY_STREAM_PREFIX = 'apikey-';

/** What another component reads of an `ApiKeyRevoked`: the key's id. */
export const apiKeyRevokedData = z.object({ id: z.string().min(1).max(200) });

/** The actor the gateway names a key's requests with (`apikey:<id>`). */
export const apiKeyActor = (keyId: string): string => `apikey:${keyId}`;
