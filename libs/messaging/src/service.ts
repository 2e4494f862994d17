import {
  headers as natsHeaders,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Payload,
  type PublishOptions,
} from '@nats-io/nats-core';
import { Svcm, type Service, type ServiceClient } from '@nats-io/services';
import type { z } from 'zod';
import { headerNames, statusOfCode, toErrorEnvelope } from '@switchyard/contracts';
import { AppError, logAtMostEvery, newId, type Logger } from '@switchyard/platform';
import { asAppError, headerSafe } from './errors.js';
import { notARequest } from './stored-messages.js';

export type { Service, ServiceClient };

const encoder = new TextEncoder();

/**
 * The service message typed against our nats-core. @nats-io/services 3.0.0-25 is
 * typed against an older nats-core prerelease, but at run time the message, its
 * headers and the connection all come from the one connection we pass in.
 */
interface ServiceMsg extends Msg {
  respondError(code: number, description: string, data?: Payload, opts?: PublishOptions): boolean;
}
const decoder = new TextDecoder();

/** What a handler gets besides its parsed input. */
export interface HandlerContext {
  /** From the request's correlation header, or a new id when the caller sent none. */
  readonly correlationId: string;
  readonly causationId?: string;
  readonly subject: string;
  readonly headers?: MsgHdrs;
  /** A child logger with correlationId, service and endpoint already set. */
  readonly logger: Logger;
}

export interface EndpointDefinition<S extends z.ZodType = z.ZodType> {
  /** Full subject, normally `serviceSubject(service, endpoint)` from @switchyard/contracts. */
  readonly subject: string;
  /** Parses the JSON request body; failures reply 400 with the zod issues. */
  readonly schema: S;
  /** Returns the reply value (JSON encoded) or throws an AppError whose code travels back. */
  readonly handler: (input: z.infer<S>, ctx: HandlerContext) => unknown; // a value or a promise of one
  /** Shown by `$SRV.INFO` (e.g. a schema version). */
  readonly metadata?: Record<string, string>;
  /** Overrides the service's queue group for this endpoint. */
  readonly queue?: string;
}

export interface AddServiceOptions<E extends Record<string, z.ZodType>> {
  /** Service name: letters, digits, `-`, `_` (the NATS services rule). */
  readonly name: string;
  /** Semantic version, e.g. `1.0.0` (required by the services API). */
  readonly version: string;
  readonly description?: string;
  /**
   * Queue group: instances in the same group share the load, each request goes to
   * one of them. Defaults to the service name.
   */
  readonly queue?: string;
  readonly metadata?: Record<string, string>;
  readonly logger: Logger;
  readonly endpoints: { [K in keyof E]: EndpointDefinition<E[K]> };
  /**
   * Each endpoint also listens on `<subject>.<instance id>` (see instanceSubject), so a caller
   * can address this instance: one whose request went to a stopped instance still subscribed to
   * the shared subject (a frozen process: NATS keeps delivering to it) asks the instances that
   * answer `$SRV.PING` instead (see liveInstances).
   */
  readonly direct?: boolean;
}

/** The subject of an endpoint on one instance of its service (AddServiceOptions.direct). */
export const instanceSubject = (subject: string, instanceId: string): string => `${subject}.${instanceId}`;

/**
 * The ids of the instances of service `name` that answer `$SRV.PING` within `waitMs`: a stopped
 * or hung process does not. Empty when none answers.
 */
export async function liveInstances(nc: NatsConnection, name: string, waitMs: number): Promise<string[]> {
  const ids: string[] = [];
  try {
    for await (const s of await serviceClient(nc, { timeoutMs: waitMs }).ping(name)) ids.push(s.id);
  } catch {
    // no responders: none is there
  }
  return ids;
}

/** Type helper so an endpoint's handler input is inferred from its schema when defined apart. */
export const defineEndpoint = <S extends z.ZodType>(def: EndpointDefinition<S>): EndpointDefinition<S> => def;

/**
 * Register a NATS micro-service (`@nats-io/services`): each endpoint listens in a
 * queue group, parses its JSON request with zod, calls the handler and replies JSON.
 * Errors reply with `Nats-Service-Error-Code` (the AppError's status), `Nats-Service-Error`
 * and the error envelope as body; `request()` turns them back into the same AppError.
 * Discovery (`$SRV.PING|INFO|STATS`) comes from the services API. Stop with `service.stop()`.
 * Resolves once the server has the endpoints' subscriptions.
 */
export async function addService<E extends Record<string, z.ZodType>>(
  nc: NatsConnection,
  opts: AddServiceOptions<E>,
): Promise<Service> {
  const svc = await new Svcm(nc as never).add({
    name: opts.name,
    version: opts.version,
    description: opts.description ?? '',
    queue: opts.queue ?? opts.name,
    metadata: opts.metadata,
  });
  const baseLog = opts.logger.child({ component: 'nats-service', service: opts.name, instance: svc.info().id });
  const listeners = (Object.entries(opts.endpoints) as [string, EndpointDefinition][]).flatMap(([endpoint, def]) =>
    opts.direct
      ? [
          { endpoint, def, name: endpoint, subject: def.subject },
          { endpoint, def, name: `${endpoint}_direct`, subject: instanceSubject(def.subject, svc.info().id) },
        ]
      : [{ endpoint, def, name: endpoint, subject: def.subject }],
  );
  for (const { endpoint, def, name, subject } of listeners) {
    const log = baseLog.child({ endpoint });
    const dropped = droppedMessagesLog(log);
    svc.addEndpoint(name, {
      subject,
      metadata: def.metadata,
      ...(def.queue !== undefined ? { queue: def.queue } : {}),
      handler: (err, msg) => {
        if (err) {
          log.error({ err }, 'service endpoint subscription failed');
          return;
        }
        // Every endpoint is request-reply: a message without a reply subject, or one JetStream
        // handed out from a stream, is someone making JetStream publish where they may not.
        const request = msg as unknown as ServiceMsg;
        const refused = notARequest(request);
        if (refused) return dropped(refused);
        void handle(request, def, log, nc);
      },
    });
  }
  // The server has every endpoint's subscription once this round trip is answered: a request sent
  // from another connection after addService returns finds a responder (not "no responders").
  await nc.flush();
  baseLog.debug({ version: opts.version, endpoints: Object.keys(opts.endpoints) }, 'service started');
  void svc.stopped.then((e) =>
    e ? baseLog.error({ err: e }, 'service stopped on error') : baseLog.info({}, 'service stopped'),
  );
  return svc;
}

/** How often at most an endpoint logs the messages it dropped (a flood of them must not flood the log). */
const DROPPED_LOG_INTERVAL_MS = 10_000;

/** Counts dropped non-requests and logs them at most once per interval, with the count since the last line. */
function droppedMessagesLog(log: Logger): (reason: string) => void {
  const gate = logAtMostEvery(DROPPED_LOG_INTERVAL_MS);
  return (reason) =>
    gate((held) => log.warn({ reason, dropped: held + 1 }, 'dropped a message that is not a request to this endpoint'));
}

/** Room left for the reply's headers under the server's payload limit. */
const REPLY_HEADROOM_BYTES = 16 * 1024;

/**
 * Largest reply body this connection may publish: the server's `max_payload` (1 MiB by
 * default) less room for headers. A bigger one would fail to publish and leave the caller
 * waiting for a timeout; it is answered as `result_too_large` instead.
 */
export const maxReplyBytes = (nc: NatsConnection): number =>
  Math.max(1024, (nc.info?.max_payload ?? 1024 * 1024) - REPLY_HEADROOM_BYTES);

async function handle(msg: ServiceMsg, def: EndpointDefinition, baseLog: Logger, nc: NatsConnection): Promise<void> {
  const correlationId = msg.headers?.get(headerNames.correlationId) || newId();
  const causationId = msg.headers?.get(headerNames.causationId) || undefined;
  const log = baseLog.child({ correlationId });
  const replyHeaders = natsHeaders();
  replyHeaders.set(headerNames.correlationId, correlationId);
  try {
    // 1. Parse: the body must be JSON (empty means `undefined`, for endpoints without input).
    let json: unknown;
    try {
      json = msg.data.length === 0 ? undefined : JSON.parse(decoder.decode(msg.data));
    } catch {
      throw new AppError('validation', 'request body is not JSON');
    }
    const parsed = def.schema.safeParse(json);
    if (!parsed.success) throw new AppError('validation', 'invalid request', { issues: parsed.error.issues });
    // 2. Run the handler and reply with its result.
    const result = await def.handler(parsed.data, {
      correlationId,
      causationId,
      subject: msg.subject,
      headers: msg.headers,
      logger: log,
    });
    const body = encoder.encode(JSON.stringify(result ?? null));
    const limit = maxReplyBytes(nc);
    if (body.length > limit) {
      throw new AppError(
        'result_too_large',
        `the answer is ${body.length} bytes, more than the ${limit}-byte limit of a reply`,
        { size_bytes: body.length, limit_bytes: limit },
        false,
      );
    }
    msg.respond(body, { headers: replyHeaders });
  } catch (thrown) {
    // 3. Any failure becomes an error reply with its code; only unexpected ones are logged as errors.
    const err = asAppError(thrown);
    if (err.code === 'internal') log.error({ err: thrown }, 'service handler failed');
    else log.debug({ code: err.code, message: err.message }, 'service replied with an error');
    msg.respondError(
      statusOfCode(err.code),
      headerSafe(err.message),
      encoder.encode(JSON.stringify(toErrorEnvelope(err))),
      {
        headers: replyHeaders,
      },
    );
  }
}

/**
 * Client for service discovery: `ping()`, `info()`, `stats()` over `$SRV.*`.
 * It gathers replies for `timeoutMs` (default 1 s); with `expect` it returns as soon
 * as that many instances answered (still bounded by `timeoutMs`).
 */
export const serviceClient = (nc: NatsConnection, opts: { timeoutMs?: number; expect?: number } = {}): ServiceClient =>
  new Svcm(nc as never).client(
    opts.expect === undefined
      ? { strategy: 'timer', maxWait: opts.timeoutMs ?? 1_000 }
      : { strategy: 'count', maxMessages: opts.expect, maxWait: opts.timeoutMs ?? 1_000 },
  );
