import type { Msg, MsgHdrs } from '@nats-io/nats-core';

/**
 * Headers JetStream puts on a stored message it hands out (a direct get, a consumer's delivery).
 * JetStream answers a request on the account's behalf, to whatever reply subject the requester
 * named, without checking it against the requester's publish rights: a user allowed to write a
 * key of a bucket and read it back directly can have JetStream deliver that message, with its
 * body and headers, on a subject the user may not publish to (a service endpoint, a notice
 * subject). Such a message is never one of ours: nothing here is fed from a stream directly.
 */
const STORED_MESSAGE_HEADERS = ['Nats-Stream', 'Nats-Sequence', 'Nats-Subject', 'Nats-Time-Stamp'] as const;

/** True when the message was handed out by JetStream from a stream, not published by a peer. */
export function isStoredMessage(headers: MsgHdrs | undefined): boolean {
  if (!headers) return false;
  return STORED_MESSAGE_HEADERS.some((h) => headers.has(h));
}

/**
 * Why a message that came to a request-reply endpoint is not a request: it has no reply subject
 * (a JetStream answer or acknowledgement sent there has none, and every caller of ours asks for a
 * reply), or JetStream handed it out from a stream. `undefined` when it is a request.
 */
export function notARequest(msg: Pick<Msg, 'reply' | 'headers'>): string | undefined {
  if (!msg.reply) return 'no reply subject';
  if (isStoredMessage(msg.headers)) return 'delivered by JetStream from a stream';
  return undefined;
}

/**
 * The JSON body of a notice (a message published without a reply: a cancel, a started notice, a
 * progress notice), or undefined when it is not JSON or JetStream handed it out from a stream.
 */
export function noticeBody(msg: Pick<Msg, 'headers' | 'json'>): unknown {
  if (isStoredMessage(msg.headers)) return undefined;
  try {
    return msg.json();
  } catch {
    return undefined;
  }
}
