import type { Artifact, Message, Part, StreamResponse, Task, TaskPushNotificationConfig } from '@a2a-js/sdk';
import type { ServerCallContext, User } from '@a2a-js/sdk/server';
import { maskErrorTexts, maskQuotedValues, REDACTED_PAYLOAD, redactUrl } from '../../events/redaction.js';

/**
 * The user the gateway hands the A2A SDK: who calls, and whether the key may see payloads
 * (operator and admin; everyone when auth is off). A viewer reads a task's state and errors,
 * as on the REST routes, but not what the work was given or answered.
 */
export interface GatewayA2aUser extends User {
  readonly seesPayloads: boolean;
  /** An admin key: replaces and deletes any key's push notification configs, reads their URLs whole. */
  readonly actsForAllKeys: boolean;
  /** scheme://host the request came to (the extended card's addresses). */
  readonly base?: string;
  /** Aborted when the request's response closes (answered, or the client went): a stream answering it stops then. */
  readonly clientGone?: AbortSignal;
}

/** The signal of the caller's leaving, when the gateway's user carries one. */
export const clientGoneOf = (context: ServerCallContext | undefined): AbortSignal | undefined =>
  (context?.user as Partial<GatewayA2aUser> | undefined)?.clientGone;

/** Whether the caller of this A2A request sees payloads (a context without the gateway's user: yes, auth is off). */
export const seesPayloads = (context: ServerCallContext | undefined): boolean =>
  (context?.user as Partial<GatewayA2aUser> | undefined)?.seesPayloads !== false;

/** Metadata a client sent beside its parts (it may carry what the parts do) as a viewer sees it. */
const redactMetadata = (m: Record<string, unknown> | undefined): Record<string, unknown> | undefined =>
  m && Object.keys(m).length > 0 ? { redacted: REDACTED_PAYLOAD } : m;
const redactPart = (p: Part): Part => ({
  ...p,
  content: { $case: 'text', value: REDACTED_PAYLOAD },
  mediaType: 'text/plain',
  filename: '',
  metadata: redactMetadata(p.metadata),
});
const redactMessage = (m: Message): Message => ({
  ...m,
  parts: m.parts.map(redactPart),
  metadata: redactMetadata(m.metadata),
});
const redactArtifact = (a: Artifact): Artifact => ({
  ...a,
  parts: a.parts.map(redactPart),
  metadata: redactMetadata(a.metadata),
});

/**
 * A status message (a failure's error: a text part, or a data part `{ error }`) with the values it
 * quotes masked, as every viewer-facing error text; its metadata redacted, any other part too.
 */
const maskStatusMessage = (m: Message | undefined): Message | undefined =>
  m && {
    ...m,
    metadata: redactMetadata(m.metadata),
    parts: m.parts.map((p) => {
      const c = p.content;
      if (c?.$case === 'text')
        return {
          ...p,
          content: { $case: 'text', value: maskQuotedValues(c.value) },
          metadata: redactMetadata(p.metadata),
        };
      if (c?.$case === 'data')
        return {
          ...p,
          content: { $case: 'data', value: maskErrorTexts(c.value) },
          metadata: redactMetadata(p.metadata),
        };
      return redactPart(p);
    }),
  };
const maskStatus = <S extends { message?: Message | undefined }>(status: S | undefined): S | undefined =>
  status && { ...status, message: maskStatusMessage(status.message) };

/**
 * A task as a viewer sees it: its artifacts (results) and its history (what it was sent)
 * redacted, with the metadata of their messages, parts and artifacts; status and errors kept,
 * with the values an error quotes masked.
 */
export const redactTask = (t: Task): Task => ({
  ...t,
  status: maskStatus(t.status),
  artifacts: t.artifacts.map(redactArtifact),
  history: t.history.map(redactMessage),
});

/** A stream update as a viewer sees it (see redactTask; a status update carries state and errors only). */
export function redactStreamResponse(r: StreamResponse): StreamResponse {
  switch (r.payload?.$case) {
    case 'task':
      return { payload: { $case: 'task', value: redactTask(r.payload.value) } };
    case 'message':
      return { payload: { $case: 'message', value: redactMessage(r.payload.value) } };
    case 'artifactUpdate': {
      const u = r.payload.value;
      return {
        payload: {
          $case: 'artifactUpdate',
          value: { ...u, artifact: u.artifact ? redactArtifact(u.artifact) : u.artifact },
        },
      };
    }
    case 'statusUpdate': {
      const u = r.payload.value;
      return { payload: { $case: 'statusUpdate', value: { ...u, status: maskStatus(u.status) } } };
    }
    default:
      return r;
  }
}

/**
 * A push notification config as it is read back, by any key: where it goes, without its token or
 * credentials. They are secrets of the receiver, which whoever set them already holds (the
 * automation server's delivery listing leaves them out too); every other key of any role could
 * otherwise read them. For a viewer (`cutUrl`) the URL is cut to its origin as well: a receiver's
 * URL can carry its own credential in its path or query, as a webhook's does.
 */
export const redactPushConfig = (c: TaskPushNotificationConfig, cutUrl = false): TaskPushNotificationConfig => ({
  ...c,
  url: cutUrl && c.url ? String(redactUrl(c.url)) : c.url,
  token: c.token ? REDACTED_PAYLOAD : c.token,
  authentication: c.authentication
    ? {
        ...c.authentication,
        credentials: c.authentication.credentials ? REDACTED_PAYLOAD : c.authentication.credentials,
      }
    : c.authentication,
});
