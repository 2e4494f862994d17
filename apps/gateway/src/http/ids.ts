import { z } from 'zod';
import { ALERT_RULE_ID_PATTERN } from '@switchyard/contracts';

/**
 * What each kind of id the API takes looks like, in paths, queries and bodies. An id is a
 * name, not a document: each is bounded and plain, so a 900 KB "id" is a 400 naming the
 * field instead of a row, a log line and an event carrying it.
 */
export const ID_PATTERNS = {
  /** Workflow definitions and templates (as the definition schema has them). */
  definition: /^[a-z][a-z0-9_-]{0,62}$/,
  /** MCP servers of the registry. */
  server: /^[a-z0-9][a-z0-9_-]{0,99}$/,
  /** MCP tools (camelCase and dotted names exist). */
  tool: /^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$/,
  /** Analytics metrics, as the analytics server names them. */
  metric: /^[A-Za-z_:][A-Za-z0-9_:.-]{0,127}$/,
  /** Tasks: a UUID, or 32 hex for a keyed submission. */
  task: /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/,
  /** Alert rules: the grammar the rule contract checks on PUT. */
  rule: ALERT_RULE_ID_PATTERN,
  /** Agents (built-in and external). */
  agent: /^[A-Za-z0-9_-]{1,64}$/,
  /** Webhook names or ids, event names. */
  name: /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/,
  /** Idempotency keys: printable ASCII. */
  idempotencyKey: /^[\x21-\x7e]{1,200}$/,
} as const;

export type IdKind = keyof typeof ID_PATTERNS;

const described: Record<IdKind, string> = {
  definition: 'a definition id: lowercase letter, then lowercase letters, digits, _ or - (max 63)',
  server: 'a server name: lowercase letters, digits, _ or - (max 100)',
  tool: 'a tool name: letters, digits, _ . : / - (max 128)',
  metric: 'a metric name like workflow.duration_ms (max 128)',
  task: 'a task id: letters, digits, _ . : - (max 128)',
  rule: 'a rule id: a letter or digit, then letters, digits, _ . - (max 128)',
  agent: 'an agent name: letters, digits, _ or - (max 64)',
  name: 'a name: letters, digits, _ . : - (max 128)',
  idempotencyKey: 'printable ASCII without spaces (max 200)',
};

/** A string schema for an id of `kind`: 400 with the shape in the message when it does not fit. */
export const idOf = (kind: IdKind) => z.string().regex(ID_PATTERNS[kind], described[kind]);
