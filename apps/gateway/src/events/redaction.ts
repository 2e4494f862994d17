import { isAdminTool, namesAdminTool } from '@switchyard/contracts';
import { WORKFLOW_EXECUTION_STREAM_PREFIX } from '@switchyard/domain';
import type { EventStore } from '@switchyard/event-store';
import { errorCodes, urlOrigin } from '@switchyard/platform';
import { currentRequestContext } from '../http/context.js';
import { roleSatisfies, roleSchema } from '../security/roles.js';
import type { EventJson } from './schemas.js';

/** What a viewer sees in place of a tool result, a step output or another payload that may hold secrets. */
export const REDACTED_PAYLOAD = '[redacted: operator role needed]';

/**
 * The fields of each event type that carry what tools, steps and agents were given or
 * answered: rows of a database, fetched pages, files, credentials a tool echoed. Viewers
 * read the log for what happened, not for the data; operators (who could run the same
 * calls) and admins see them whole. A payload's recorded size goes with it (the length of a
 * one-field input is the length of the secret in it).
 */
export const PAYLOAD_FIELDS: Readonly<Record<string, readonly string[]>> = {
  McpToolCalled: ['arguments'],
  McpToolSucceeded: ['result'],
  McpToolFailed: ['result'],
  WorkflowStarted: ['input'],
  StepScheduled: ['input', 'inputChars'],
  StepExpanded: ['items'],
  StepSucceeded: ['output', 'outputChars'],
  CompensationStarted: ['input', 'inputChars'],
  CompensationSucceeded: ['output'],
  WorkflowCompleted: ['outputs'],
  StepOutputCopied: ['output'],
  SignalReceived: ['payload'],
  TaskSubmitted: ['context'],
  TaskCompleted: ['result'],
  // What a schedule will send when it fires: a webhook's payload, a workflow's input, an e-mail.
  ScheduleCreated: ['target'],
};

/**
 * Fields that hold a URL whose path or query can itself be the credential (a Slack or Discord
 * webhook URL is its own secret; many receivers take a token in the query). A viewer sees where
 * it points (scheme, host and port), not the rest.
 */
export const URL_FIELDS: Readonly<Record<string, readonly string[]>> = {
  WebhookRegistered: ['url'],
  WebhookUpdated: ['url'],
  ExternalAgentRegistered: ['url', 'a2a_card_url'],
};

/** `https://hooks.example.com/[redacted: ...]` for a URL (never its user info, path or query); REDACTED_PAYLOAD for anything else. */
export function redactUrl(value: unknown): unknown {
  if (typeof value !== 'string') return value === null || value === undefined ? value : REDACTED_PAYLOAD;
  return urlOrigin(value, REDACTED_PAYLOAD);
}

/**
 * An error text as a viewer reads it: what kind of failure it was, without the values it names.
 * An error quotes what it was given or found (PostgreSQL quotes the offending value, its details
 * give `Key (email)=(...)`, a check violation lists the failing row), and it names values without
 * quotes too (`column c.secret_col does not exist`, an agent's `customer 987654321 not found`),
 * so beyond the quoted values, `=(…)` and whatever follows a line's first `: `, every word that
 * is not a plain lowercase word is masked: numbers, identifiers (`_`, `.`, digits, capitals
 * inside a line), addresses, paths. A line's first word (`ENOENT`, `TypeError`, a `[code]`) stays.
 * What is left can still be a plain lowercase word of an input; the values an error is about
 * belong in its details, which a viewer gets redacted (maskErrorTexts).
 */
export function maskQuotedValues(text: string): string {
  return (
    text
      .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
      .replace(/(^|[\s(:=,[])'(?:[^'\\]|\\.)*'/g, "$1'…'")
      .replace(/=\([^)]*\)/g, '=(…)')
      // A check or not-null violation's detail lists the whole row, unquoted.
      .replace(/Failing row contains \(.*\)/g, 'Failing row contains (…)')
      // What follows the first ": " of a line is most often the value the error is about, quoted
      // or not (`date field value out of range: 2020-01-360` told a viewer a row's number; a value
      // holding quotes of its own defeats the quote rule): cut.
      .split('\n')
      .map((line) => {
        const cut = line.indexOf(': ');
        return maskWords(cut < 0 ? line : `${line.slice(0, cut + 2)}…`);
      })
      .join('\n')
  );
}

/** A plain word of an error's wording (`exist`, `e-mail`, `server's`); anything else in a line may be a value. */
const PLAIN_WORD = /^[a-z]{1,24}(?:['’-][a-z]{1,24})*$/;
/**
 * What names an error at a line's start: `ENOENT`, `TypeError`, `Cannot`, a code (`not_found`,
 * `[validation]`), or the service it is about, as the monitor's probes name them (`mcp:analytics`,
 * `agent:data_analyst`, `component:relay`; `postgres`, `nats` are plain words): a health verdict's
 * reason names its service first.
 */
const isLeadWord = (core: string, token: string): boolean =>
  /^[A-Z][A-Za-z]{0,39}$/.test(core) ||
  Object.hasOwn(errorCodes, core) ||
  /^\[[a-z][a-z_]{0,39}\]$/.test(token) ||
  /^(?:mcp|agent|component):[a-z0-9][a-z0-9_.-]{0,62}$/.test(core);
/** A word and what wraps it: opening brackets or quotes, the word, closing ones and punctuation. */
const WRAPPED = /^([([{"'“]*)(.*?)([)\]}"'”.,;:!?]*)$/s;

/**
 * One line with every word that is not a plain word masked (see maskQuotedValues), but the words
 * that name the error at its start; a run of masked words reads as one `…`.
 */
function maskWords(line: string): string {
  let lead = true;
  return line
    .replace(/\S+/g, (token) => {
      const [, open = '', core = '', close = ''] = WRAPPED.exec(token) ?? [];
      const keep =
        (lead && isLeadWord(core, token)) || core === '' || /^[…"'()=]+$/.test(core) || PLAIN_WORD.test(core);
      // A `[code]` prefix leaves the next word at the start too.
      lead = lead && keep && token.startsWith('[');
      return keep ? token : `${open}…${close}`;
    })
    .replace(/…(?:\s+…)+/g, '…');
}

/**
 * Keys whose value is an error or says why something failed: a text, an object (its message, its
 * details), or a list of reasons. Every string under one is masked.
 */
const ERROR_KEYS = new Set([
  'error',
  'error_message',
  'last_error',
  'lastError',
  'health_error',
  'failure',
  'reason',
  'reasons',
]);

/**
 * Keys under an error whose value names the error, not the input (its code, the step it is of,
 * when it happened): kept when they look like such a name or time, masked as text otherwise.
 */
const ERROR_NAME_KEYS = new Set(['code', 'error_code', 'stepId', 'step_id', 'status', 'state', 'severity']);
const ERROR_TIME_KEYS = new Set(['at', 'since', 'failed_at', 'failedAt', 'started_at', 'ended_at']);
const NAME_LIKE = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;
const TIME_LIKE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

/**
 * `v` with every error text in it masked: every string under one of ERROR_KEYS (an error's message,
 * a server's health error, the reasons of a verdict) by maskQuotedValues, wherever it sits, but an
 * error's code, step and time; and every value under an error's `details` (the values it is about:
 * an agent's `customerId`, a number as much as a text) replaced by REDACTED_PAYLOAD, its keys kept.
 * The same object back where nothing changed (most answers have no error); plain JSON only (a
 * Buffer, a stream or a Date goes as it is); depth-bounded.
 */
export function maskErrorTexts<T>(v: T): T {
  return masked(v, false, 0) as T;
}

/**
 * `v` with its error texts masked; `inError`: `v` sits under an error key, so its strings are;
 * `inDetails`: under an error's details, so every scalar goes; `key`: the key `v` sits under.
 */
function masked(v: unknown, inError: boolean, depth: number, inDetails = false, key = ''): unknown {
  if (inDetails && v !== null && typeof v !== 'object') return REDACTED_PAYLOAD;
  if (typeof v === 'string') {
    if (!inError) return v;
    if (ERROR_NAME_KEYS.has(key) && NAME_LIKE.test(v)) return v;
    if (ERROR_TIME_KEYS.has(key) && TIME_LIKE.test(v)) return v;
    return maskQuotedValues(v);
  }
  if (depth > 32 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    const items = v.map((x) => masked(x, inError, depth + 1, inDetails, key));
    return items.some((x, i) => x !== v[i]) ? items : v;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return v;
  let out: Record<string, unknown> | undefined;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const y = masked(x, inError || ERROR_KEYS.has(k), depth + 1, inDetails || (inError && k === 'details'), k);
    if (y !== x) (out ??= { ...(v as Record<string, unknown>) })[k] = y;
  }
  return out ?? v;
}

/** A definition, as registered or as an execution started it, reads as on the definitions route. */
const withDefinitionRedacted = (data: Record<string, unknown>): void => {
  if ('definition' in data) data['definition'] = definitionArgumentsRedacted(data['definition']);
};

/**
 * What a viewer reads reshaped in an event's data, by type, beyond its payload, URL and error
 * fields: definitions as the definitions route shows them; a batch's doings, not the operator's
 * search text nor the executions' error texts.
 */
const RESHAPERS = new Map<string, (data: Record<string, unknown>) => void>([
  ['WorkflowStarted', withDefinitionRedacted],
  ['DefinitionRegistered', withDefinitionRedacted],
  [
    'BatchStarted',
    (data) => {
      if (isRecord(data['filter']) && 'error_contains' in data['filter'])
        data['filter'] = { ...data['filter'], error_contains: REDACTED_PAYLOAD };
    },
  ],
  [
    'BatchItemFailed',
    (data) => {
      if (isRecord(data['error'])) data['error'] = { ...data['error'], message: REDACTED_PAYLOAD };
    },
  ],
]);

/**
 * The event as a viewer sees it: its payload fields replaced by REDACTED_PAYLOAD, its URL fields
 * cut to their origin, the values its error texts quote masked, reshaped by RESHAPERS (a copy).
 */
export function redactEventPayloads<E extends Pick<EventJson, 'type' | 'data'>>(e: E): E {
  if (!e.data || typeof e.data !== 'object' || Array.isArray(e.data)) return e;
  const fields = PAYLOAD_FIELDS[e.type];
  const urls = URL_FIELDS[e.type];
  const reshape = RESHAPERS.get(e.type);
  const masked = maskErrorTexts(e.data as Record<string, unknown>);
  if (!fields && !urls && !reshape && masked === e.data) return e;
  const data = { ...masked };
  for (const f of fields ?? []) if (f in data) data[f] = REDACTED_PAYLOAD;
  for (const f of urls ?? []) if (f in data) data[f] = redactUrl(data[f]);
  reshape?.(data);
  return { ...e, data };
}

/**
 * A definition as a viewer sees it in an execution's start: its shape (steps, what each runs,
 * dependencies, conditions) whole; each step's arguments (`with`), item list (`for_each.items`,
 * which may be a literal list) and a wait step's `on_timeout.default_output`, the outputs mapping,
 * and the input schema's defaults and allowed values replaced. A workflow sent with its definition inline (POST /agents/workflow) carries its
 * arguments as literals: URLs with their keys, SQL naming the rows it is about.
 */
export function definitionArgumentsRedacted(definition: unknown): unknown {
  if (!isRecord(definition)) return definition;
  const d = definition;
  return {
    ...d,
    ...('outputs' in d ? { outputs: redactIfSet(d['outputs']) } : {}),
    ...('input' in d ? { input: schemaValuesRedacted(d['input'], 0) } : {}),
    ...(Array.isArray(d['steps'])
      ? {
          steps: (d['steps'] as unknown[]).map((s) => {
            if (!isRecord(s)) return s;
            const forEach = s['for_each'];
            const wait = s['wait'];
            const onTimeout = isRecord(wait) ? wait['on_timeout'] : undefined;
            return {
              ...s,
              ...('with' in s ? { with: redactIfSet(s['with']) } : {}),
              ...(isRecord(forEach) ? { for_each: { ...forEach, items: redactIfSet(forEach['items']) } } : {}),
              // A wait step's default output is the step's output when it times out, redacted everywhere else.
              ...(isRecord(wait) && isRecord(onTimeout) && 'default_output' in onTimeout
                ? {
                    wait: {
                      ...wait,
                      on_timeout: { ...onTimeout, default_output: redactIfSet(onTimeout['default_output']) },
                    },
                  }
                : {}),
            };
          }),
        }
      : {}),
  };
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** An input schema as a viewer sees it: its `default` and `enum` values replaced, at every level. */
export const inputSchemaRedacted = (schema: unknown): unknown => schemaValuesRedacted(schema, 0);

/** An input schema with its `default` and `enum` values replaced, at every level (depth-bounded). */
function schemaValuesRedacted(node: unknown, depth: number): unknown {
  if (!isRecord(node) || depth > 32) return node;
  const out: Record<string, unknown> = { ...node };
  if ('default' in out) out['default'] = redactIfSet(out['default']);
  if ('enum' in out) out['enum'] = redactIfSet(out['enum']);
  if (isRecord(out['properties']))
    out['properties'] = Object.fromEntries(
      Object.entries(out['properties']).map(([k, v]) => [k, schemaValuesRedacted(v, depth + 1)]),
    );
  if ('items' in out) out['items'] = schemaValuesRedacted(out['items'], depth + 1);
  return out;
}

/**
 * Whether the caller of the request being handled only gets redacted payloads: a key
 * below operator. Without a key (auth disabled) nothing is redacted: the gateway is open then.
 */
export function callerSeesRedactedPayloads(): boolean {
  return redactsPayloadsFor(currentRequestContext()?.apiKey?.role);
}

/** Whether a key of `role` gets redacted payloads (below operator; no key at all: auth is off, nothing is redacted). */
export function redactsPayloadsFor(role: unknown): boolean {
  if (role === undefined) return false;
  const parsed = roleSchema.safeParse(role);
  return !parsed.success || !roleSatisfies(parsed.data, 'operator');
}

/** `events` as the current caller may see them (see eventsShownToCaller for the admin tools' payloads). */
export function eventsForCaller(events: readonly EventJson[], redact = callerSeesRedactedPayloads()): EventJson[] {
  return redact ? events.map(redactEventPayloads) : [...events];
}

/**
 * Whether a key of `role` reads what admin-only tools (ADMIN_TOOLS: the development mailbox, the
 * queued deliveries) were given and answered, wherever a call of one is recorded or shown: an
 * admin; no key at all: auth is off, nothing is redacted.
 */
export function seesAdminToolPayloadsFor(role: unknown): boolean {
  return role === undefined || role === 'admin';
}

/** Whether the caller of the request being handled reads admin tools' payloads (seesAdminToolPayloadsFor). */
export function callerSeesAdminToolPayloads(): boolean {
  return seesAdminToolPayloadsFor(currentRequestContext()?.apiKey?.role);
}

/**
 * Whether an event records a call of an admin tool: the connectors' McpTool* events (server and
 * tool), the gateway's own records of a `/mcp` call (its `target`), a step or compensation that
 * runs one (its `uses`).
 */
export function eventNamesAdminTool(e: Pick<EventJson, 'type' | 'data'>): boolean {
  const d = e.data;
  if (!isRecord(d)) return false;
  switch (e.type) {
    case 'McpToolCalled':
    case 'McpToolSucceeded':
    case 'McpToolFailed':
      return (
        isAdminTool(d['server'], d['tool']) ||
        ((d['kind'] === undefined || d['kind'] === 'upstream') && namesAdminTool(d['target'])) ||
        // The gateway's outcome records from before they named their target: the client's `<server>__<tool>`.
        (d['server'] === undefined &&
          d['target'] === undefined &&
          typeof d['tool'] === 'string' &&
          namesAdminTool(d['tool'].replace('__', '/')))
      );
    case 'StepScheduled':
    case 'CompensationStarted':
      return namesAdminTool(d['uses']);
    default:
      return false;
  }
}

/** Whether a workflow definition (as an execution recorded it) has a step or compensation that calls an admin tool. */
export function definitionCallsAdminTool(definition: unknown): boolean {
  return callsAdminTool(isRecord(definition) ? definition['steps'] : undefined, 0);
}

function callsAdminTool(node: unknown, depth: number): boolean {
  if (depth > 16 || node === null || typeof node !== 'object') return false;
  if (Array.isArray(node)) return node.some((x) => callsAdminTool(x, depth + 1));
  return Object.entries(node).some(([k, v]) => (k === 'uses' ? namesAdminTool(v) : callsAdminTool(v, depth + 1)));
}

/** Executions whose definition calls an admin tool or not, per store (a definition never changes once started); bounded. */
const adminExecutionsKnown = new WeakMap<EventStore, Map<string, boolean>>();
const ADMIN_EXECUTIONS_KNOWN = 10_000;

/**
 * Whether the execution of a `workflow_execution-<id>` stream calls an admin tool, from its first
 * event (WorkflowStarted, which carries the definition it runs, compensations included); cached.
 * Its whole record (input, outputs, every step's) then reads for anyone but an admin as a viewer
 * reads it: a step's output flows into later steps' inputs and into the execution's output.
 */
export async function executionStreamCallsAdminTool(store: EventStore, streamId: string): Promise<boolean> {
  if (!streamId.startsWith(WORKFLOW_EXECUTION_STREAM_PREFIX)) return false;
  let known = adminExecutionsKnown.get(store);
  if (!known) adminExecutionsKnown.set(store, (known = new Map()));
  const hit = known.get(streamId);
  if (hit !== undefined) return hit;
  const [first] = await store.readStream(streamId, { maxCount: 1 });
  const calls =
    first?.type === 'WorkflowStarted' && isRecord(first.data) && definitionCallsAdminTool(first.data['definition']);
  // Not cached before its stream has a first event.
  if (first) {
    if (known.size >= ADMIN_EXECUTIONS_KNOWN) known.delete(known.keys().next().value as string);
    known.set(streamId, calls);
  }
  return calls;
}

/**
 * Whether `e` shows as a viewer sees it to a caller who reads payloads (`redact` false) but not an
 * admin tool's (`adminTools` false): an event of an admin tool's call, or of an execution that calls
 * one; and an event that keeps a URL whole (URL_FIELDS): the automation server and the dispatcher
 * need it whole to deliver, while `list_webhooks` masks its credentials for other operators, so the
 * log must not be the way around that.
 */
export async function hidesAdminToolPayloads(
  store: EventStore,
  e: Pick<EventJson, 'type' | 'data' | 'streamId'>,
): Promise<boolean> {
  return URL_FIELDS[e.type] !== undefined || eventNamesAdminTool(e) || executionStreamCallsAdminTool(store, e.streamId);
}

/**
 * `events` as the current caller may see them: a viewer's payloads redacted (eventsForCaller);
 * for an operator, those of admin tools' calls and of executions that call one too.
 */
export async function eventsShownToCaller(
  store: EventStore,
  events: readonly EventJson[],
  redact = callerSeesRedactedPayloads(),
  adminTools = callerSeesAdminToolPayloads(),
): Promise<EventJson[]> {
  if (redact || adminTools) return eventsForCaller(events, redact);
  return Promise.all(events.map(async (e) => ((await hidesAdminToolPayloads(store, e)) ? redactEventPayloads(e) : e)));
}

const redactIfSet = (v: unknown): unknown => (v === null || v === undefined ? v : REDACTED_PAYLOAD);

/**
 * An execution's detail as a viewer sees it: input, output and every step's inputs and
 * outputs replaced (status, timings, attempts and errors stay, with the values errors quote
 * masked). Others get it as it is.
 */
export function executionDetailForCaller<T extends Record<string, unknown>>(
  d: T,
  redact = callerSeesRedactedPayloads(),
): T {
  if (!redact) return d;
  d = maskErrorTexts(d);
  const steps = Array.isArray(d['steps'])
    ? (d['steps'] as Record<string, unknown>[]).map((s) => ({
        ...s,
        output: redactIfSet(s['output']),
        ...(Array.isArray(s['attempt_history'])
          ? {
              attempt_history: (s['attempt_history'] as Record<string, unknown>[]).map((a) => ({
                ...a,
                input: redactIfSet(a['input']),
                output: redactIfSet(a['output']),
              })),
            }
          : {}),
      }))
    : d['steps'];
  return { ...executionSummaryForCaller(d, true), steps };
}

/** An execution as the list shows it, as a viewer sees it: its input and output replaced. Others get it as it is. */
export function executionSummaryForCaller<T extends object>(d: T, redact = callerSeesRedactedPayloads()): T {
  if (!redact) return d;
  d = maskErrorTexts(d);
  const fields = d as Record<string, unknown>;
  return {
    ...d,
    ...('input' in fields ? { input: redactIfSet(fields['input']) } : {}),
    ...('output' in fields ? { output: redactIfSet(fields['output']) } : {}),
  };
}

/** A task's view as a viewer sees it: the agent's result replaced. */
export function taskViewForCaller<T extends { result?: unknown }>(v: T, redact = callerSeesRedactedPayloads()): T {
  if (!redact) return v;
  const masked = maskErrorTexts(v);
  return masked.result !== undefined ? { ...masked, result: REDACTED_PAYLOAD } : masked;
}
