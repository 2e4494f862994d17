/**
 * NATS header names used across the system. Values are strings; keep the
 * names here so producers and consumers cannot drift apart.
 */
export const headerNames = {
  /** The workflow execution, task or request a message belongs to. */
  correlationId: 'Switchyard-Correlation-Id',
  /** Id of the message or event that caused this one. */
  causationId: 'Switchyard-Causation-Id',
  /** Event metadata carried as headers so consumers can filter without parsing the body. */
  eventId: 'Switchyard-Event-Id',
  eventType: 'Switchyard-Event-Type',
  streamId: 'Switchyard-Stream-Id',
  /** Global position of the event in the store's $all; lets the relay resume from the stream tail. */
  position: 'Switchyard-Position',
  /** JetStream's de-duplication id (set to the event id). */
  natsMsgId: 'Nats-Msg-Id',
  /** Set by the NATS services API on error replies. */
  serviceError: 'Nats-Service-Error',
  serviceErrorCode: 'Nats-Service-Error-Code',
} as const;
