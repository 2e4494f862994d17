import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { listingSummary } from '@switchyard/contracts';
import {
  definitionCallsAdminTool,
  eventNamesAdminTool,
  eventsForCaller,
  seesAdminToolPayloadsFor,
  executionDetailForCaller,
  executionSummaryForCaller,
  maskErrorTexts,
  maskQuotedValues,
  REDACTED_PAYLOAD,
  redactEventPayloads,
  taskViewForCaller,
} from './redaction.js';
import { KEY_HASH_WITHHELD, toEventJson, type EventJson } from './schemas.js';

const event = (type: string, data: Record<string, unknown>): EventJson => ({
  id: 'e1',
  streamId: 's-1',
  type,
  revision: 0,
  position: 1,
  recordedAt: '2026-01-01T00:00:00.000Z',
  data,
  metadata: { correlationId: 'c' },
});

describe('payload redaction for viewers', () => {
  it('replaces tool arguments/results, step inputs/outputs and task contexts/results; keeps the rest', () => {
    const r = redactEventPayloads(
      event('McpToolSucceeded', {
        server: 'fetch',
        tool: 'http_request',
        result: { value: { rows: [1] }, size: 9, truncated: false },
      }),
    );
    assert.deepEqual(r.data, { server: 'fetch', tool: 'http_request', result: REDACTED_PAYLOAD });
    assert.equal(
      (
        redactEventPayloads(event('StepSucceeded', { stepId: 'a', output: { secret: 1 } })).data as Record<
          string,
          unknown
        >
      )['output'],
      REDACTED_PAYLOAD,
    );
    assert.equal(
      (
        redactEventPayloads(event('TaskSubmitted', { task_id: 't', context: { q: 1 } })).data as Record<string, unknown>
      )['context'],
      REDACTED_PAYLOAD,
    );
    const other = event('ApiKeyRevoked', { id: 'x' });
    assert.equal(redactEventPayloads(other), other);
    // A payload's recorded size goes with it: the length of a one-field input is its secret's.
    assert.deepEqual(
      redactEventPayloads(event('StepScheduled', { stepId: 'a', input: { password: 'hunter2' }, inputChars: 22 })).data,
      { stepId: 'a', input: REDACTED_PAYLOAD, inputChars: REDACTED_PAYLOAD },
    );
    assert.deepEqual(
      redactEventPayloads(event('StepSucceeded', { stepId: 'a', output: 'hunter2', outputChars: 9 })).data,
      { stepId: 'a', output: REDACTED_PAYLOAD, outputChars: REDACTED_PAYLOAD },
    );
  });

  it("hides a started workflow's step arguments and outputs mapping (inline definitions carry literals), keeps its shape", () => {
    const r = redactEventPayloads(
      event('WorkflowStarted', {
        executionId: 'x',
        input: { email: 'ceo@private.example' },
        definition: {
          id: 'adhoc',
          version: 1,
          input: {
            type: 'object',
            properties: { who: { type: 'string', default: 'S3CRET', enum: ['S3CRET', 'x'] } },
          },
          steps: [
            { id: 'get', uses: 'fetch.http_request', needs: [], with: { url: 'https://p.example/api?api_key=S3CRET' } },
            { id: 'wait', wait: { signal: 'ok', timeout_ms: 10 }, needs: ['get'] },
            {
              id: 'later',
              wait: { signal: 'ok', timeout_ms: 10, on_timeout: { default_output: { api_token: 'S3CRET' } } },
              needs: [],
            },
            { id: 'each', uses: 'x.y', needs: [], for_each: { items: "['S3CRET@a.example']", concurrency: 2 } },
          ],
          outputs: { token: 'S3CRET' },
        },
      }),
    );
    const data = r.data as { input: unknown; definition: Record<string, unknown> };
    assert.equal(data.input, REDACTED_PAYLOAD);
    assert.doesNotMatch(JSON.stringify(data), /S3CRET|ceo@private/);
    assert.deepEqual(data.definition['steps'], [
      { id: 'get', uses: 'fetch.http_request', needs: [], with: REDACTED_PAYLOAD },
      { id: 'wait', wait: { signal: 'ok', timeout_ms: 10 }, needs: ['get'] },
      {
        id: 'later',
        wait: { signal: 'ok', timeout_ms: 10, on_timeout: { default_output: REDACTED_PAYLOAD } },
        needs: [],
      },
      { id: 'each', uses: 'x.y', needs: [], for_each: { items: REDACTED_PAYLOAD, concurrency: 2 } },
    ]);
    assert.deepEqual(data.definition['input'], {
      type: 'object',
      properties: { who: { type: 'string', default: REDACTED_PAYLOAD, enum: REDACTED_PAYLOAD } },
    });
    assert.equal(data.definition['outputs'], REDACTED_PAYLOAD);
  });

  it("reads a registered definition and a batch's search and error texts as the REST routes show them to a viewer", () => {
    const registered = redactEventPayloads(
      event('DefinitionRegistered', {
        definitionId: 'd',
        version: 1,
        source: 'user',
        definition: {
          id: 'd',
          version: 1,
          input: { type: 'object', properties: { hook: { type: 'string', default: 'https://h.example/S3CRET' } } },
          steps: [{ id: 'a', uses: 'mcp:database/query', needs: [], with: { sql: "select 'S3CRET'" } }],
        },
      }),
    );
    assert.ok(!JSON.stringify(registered).includes('S3CRET'), JSON.stringify(registered));
    assert.equal((registered.data as any).definition.steps[0].uses, 'mcp:database/query');
    const started = redactEventPayloads(event('BatchStarted', { batchId: 'b', filter: { error_contains: 'S3CRET' } }));
    assert.equal((started.data as any).filter.error_contains, REDACTED_PAYLOAD);
    const failed = redactEventPayloads(
      event('BatchItemFailed', { executionId: 'e', error: { code: 'illegal_state', message: 'row S3CRET' } }),
    );
    assert.deepEqual((failed.data as any).error, { code: 'illegal_state', message: REDACTED_PAYLOAD });
  });

  it("cuts webhook and agent URLs to where they point (a webhook URL can be its own secret) and hides a schedule's target", () => {
    const hook = redactEventPayloads(
      event('WebhookRegistered', {
        id: 'w',
        name: 'slack',
        url: 'https://user:pw@hooks.slack.com:8443/services/T0/B0/XXXXSECRET?token=abc',
        events: ['order.created'],
      }),
    ).data as Record<string, unknown>;
    assert.deepEqual(hook, {
      id: 'w',
      name: 'slack',
      url: `https://hooks.slack.com:8443/${REDACTED_PAYLOAD}`,
      events: ['order.created'],
    });
    const updated = redactEventPayloads(event('WebhookUpdated', { url: 'not a url', name: 'x' })).data as Record<
      string,
      unknown
    >;
    assert.equal(updated['url'], REDACTED_PAYLOAD, 'a value that does not parse goes whole');
    const agent = redactEventPayloads(
      event('ExternalAgentRegistered', {
        name: 'peer',
        url: 'http://10.0.0.5:9000/rpc?key=k',
        a2a_card_url: 'http://10.0.0.5:9000/.well-known/agent-card.json',
        has_token: true,
      }),
    ).data as Record<string, unknown>;
    assert.equal(agent['url'], `http://10.0.0.5:9000/${REDACTED_PAYLOAD}`);
    assert.equal(agent['a2a_card_url'], `http://10.0.0.5:9000/${REDACTED_PAYLOAD}`);
    assert.equal(agent['has_token'], true);
    const plain = redactEventPayloads(event('ExternalAgentRegistered', { name: 'p', url: 'http://a:1/x' })).data;
    assert.equal('a2a_card_url' in (plain as object), false, 'a field that is not there is not added');
    const schedule = redactEventPayloads(
      event('ScheduleCreated', {
        name: 'nightly',
        cron: '0 3 * * *',
        target: { kind: 'webhook', webhook: 'slack', payload: { secret: 1 } },
      }),
    ).data as Record<string, unknown>;
    assert.deepEqual(schedule, { name: 'nightly', cron: '0 3 * * *', target: REDACTED_PAYLOAD });
    // A key's hash is served to no role (toEventJson withholds it for everyone).
    const recordedKey = toEventJson({
      id: 'e9',
      streamId: 'apikey-k1',
      type: 'ApiKeyCreated',
      revision: 0,
      position: 9,
      recordedAt: new Date(0),
      data: { id: 'k1', name: 'ci', role: 'operator', hash: 'a1b2', prefix: 'sy_0' },
      metadata: { correlationId: 'c', timestamp: new Date(0).toISOString() },
    });
    assert.deepEqual(recordedKey.data, {
      id: 'k1',
      name: 'ci',
      role: 'operator',
      hash: KEY_HASH_WITHHELD,
      prefix: 'sy_0',
    });
  });

  it('applies only when asked (the caller is a viewer); outside a request nothing is redacted', () => {
    const e = event('McpToolCalled', { arguments: { sql: 'select 1' } });
    assert.deepEqual(eventsForCaller([e], false), [e]);
    assert.deepEqual(eventsForCaller([e]), [e], 'no request context: no key, no redaction');
    assert.equal((eventsForCaller([e], true)[0]!.data as Record<string, unknown>)['arguments'], REDACTED_PAYLOAD);
  });

  it('an execution detail keeps status, timings and errors; inputs and outputs go', () => {
    const d = {
      execution_id: 'x',
      status: 'completed',
      input: { customer: 1 },
      output: { total: 2 },
      steps: [
        {
          step_id: 'a',
          status: 'succeeded',
          output: { rows: [] },
          error: null,
          attempt_history: [{ attempt: 1, input: { q: 1 }, output: null, error: null }],
        },
      ],
    };
    const r = executionDetailForCaller(d, true);
    assert.equal(r.input, REDACTED_PAYLOAD);
    assert.equal(r.output, REDACTED_PAYLOAD);
    assert.equal(r.steps[0]!.output, REDACTED_PAYLOAD);
    assert.deepEqual(r.steps[0]!.attempt_history[0], {
      attempt: 1,
      input: REDACTED_PAYLOAD,
      output: null,
      error: null,
    });
    assert.equal(r.steps[0]!.status, 'succeeded');
    assert.equal(executionDetailForCaller(d, false), d);
  });

  it("an execution in the list loses its input and output for a viewer (a running one's null output stays null)", () => {
    const done = { execution_id: 'e', status: 'completed', input: { n: 1 }, output: { v: 2 }, error: null };
    const running = { execution_id: 'r', status: 'running', input: { n: 1 }, output: null, error: null };
    assert.deepEqual(executionSummaryForCaller(done, true), {
      ...done,
      input: REDACTED_PAYLOAD,
      output: REDACTED_PAYLOAD,
    });
    assert.deepEqual(executionSummaryForCaller(running, true), { ...running, input: REDACTED_PAYLOAD });
    assert.equal(executionSummaryForCaller(done, false), done);
  });

  it('a task view loses its result for a viewer', () => {
    const done: { task_id: string; result?: unknown } = { task_id: 't', result: { x: 1 } };
    const queued: { task_id: string; result?: unknown } = { task_id: 't' };
    assert.deepEqual(taskViewForCaller(done, true), { task_id: 't', result: REDACTED_PAYLOAD });
    assert.deepEqual(taskViewForCaller(queued, true), { task_id: 't' });
  });

  it("masks the values an error text names: quoted, in PostgreSQL's details, and whatever follows the first ': '; the wording before stays", () => {
    assert.equal(
      maskQuotedValues('invalid input syntax for type integer: "billing@kestrel.example"'),
      'invalid input syntax for type integer: …',
    );
    // A value holding quotes of its own, and one not quoted at all: what follows ": " goes.
    assert.equal(
      maskQuotedValues('invalid input syntax for type integer: ""ann@example.com""'),
      'invalid input syntax for type integer: …',
    );
    assert.equal(maskQuotedValues('date field value out of range: 2020-01-360'), 'date field value out of range: …');
    // A health verdict's reason names its service first: kept; what follows its ': ' is not.
    assert.equal(
      maskQuotedValues('mcp:analytics is down (connect ECONNREFUSED 127.0.0.1:39411)'),
      'mcp:analytics is down (connect …)',
    );
    assert.equal(maskQuotedValues('component:relay is down (stopped)'), 'component:relay is down (stopped)');
    assert.equal(maskQuotedValues('customer:987654321 not found'), '… not found');
    assert.equal(maskQuotedValues('relation "secret_table" does not exist'), 'relation "…" does not exist');
    assert.equal(
      maskQuotedValues(
        'duplicate key value violates unique constraint "customers_email_key": Key (email)=(a@b.example) already exists.',
      ),
      'duplicate key value violates unique constraint "…": …',
    );
    assert.equal(maskQuotedValues("no such file 'secret plans.txt'"), "no such file '…'");
    assert.equal(
      maskQuotedValues('new row violates check constraint "c": Failing row contains (7, ann@example.com, 12).'),
      'new row violates check constraint "…": …',
    );
    assert.equal(maskQuotedValues('say "a \\"quoted\\" word" twice'), 'say "…" twice');
    // Apostrophes in words are not quotes.
    assert.equal(maskQuotedValues("the server's breaker is open"), "the server's breaker is open");
    // A number, an identifier or an address names a value, quoted or not; the wording stays.
    assert.equal(maskQuotedValues('timeout after 10000 ms'), 'timeout after … ms');
  });

  it('masks the values an error names without quotes: numbers, identifiers, addresses; keeps the words and the code that say what failed', () => {
    // An agent's error that named its context's value, and a column the redacted SQL named.
    assert.equal(maskQuotedValues('customer 987654321 not found'), 'customer … not found');
    assert.equal(
      maskQuotedValues('[validation] column c.markerrd_col does not exist'),
      '[validation] column … does not exist',
    );
    assert.equal(maskQuotedValues('secret_col does not exist'), '… does not exist', 'a value leading the line');
    assert.equal(maskQuotedValues('customer Victim Co not found'), 'customer … not found', 'names, as one …');
    assert.equal(
      maskQuotedValues('[unavailable] cannot resolve markerrm.invalid: ENOTFOUND'),
      '[unavailable] cannot resolve …: …',
    );
    assert.equal(maskQuotedValues('connect ECONNREFUSED 10.0.0.7:5432'), 'connect …');
    assert.equal(
      maskQuotedValues('upstream answered HTTP 503 from https://h.example/a?k=S3CRET'),
      'upstream answered … from …',
    );
    // What names the error at a line's start stays, and plain wording, hyphens and apostrophes.
    assert.equal(maskQuotedValues('ENOENT: no such file'), 'ENOENT: …');
    assert.equal(maskQuotedValues('not_found: customer 987654322 not found'), 'not_found: …');
    assert.equal(maskQuotedValues('Method not found'), 'Method not found');
    assert.equal(
      maskQuotedValues('[illegal_state] idempotency key "reply-1" was already used for a different e-mail'),
      '[illegal_state] idempotency key "…" was already used for a different e-mail',
    );
    assert.equal(
      maskQuotedValues('business.orders is empty (run the demo-data loader)'),
      '… is empty (run the demo-data loader)',
    );
    assert.equal(maskQuotedValues('first 42\nsecond line_7 here'), 'first …\nsecond … here', 'line by line');
  });

  it("replaces every value under an error's details (numbers too), keeps its code, step and time; a task, an event and an execution alike", () => {
    const error = {
      code: 'not_found',
      message: 'customer 987654321 not found',
      details: { subject: 'agent.x.execute', customerId: 987654321, flags: [true, 7, null], nested: { at: 'x' } },
    };
    const expected = {
      code: 'not_found',
      message: 'customer … not found',
      details: {
        subject: REDACTED_PAYLOAD,
        customerId: REDACTED_PAYLOAD,
        flags: [REDACTED_PAYLOAD, REDACTED_PAYLOAD, null],
        nested: { at: REDACTED_PAYLOAD },
      },
    };
    const task = taskViewForCaller({ task_id: 't', status: 'failed', error, result: undefined }, true);
    assert.deepEqual(task.error, expected);
    const failed = redactEventPayloads(
      event('TaskFailed', { task_id: 't', error, attempts: 1, failed_at: '2026-01-01T00:00:00.000Z' }),
    ).data as Record<string, unknown>;
    assert.deepEqual(failed['error'], expected);
    assert.equal(failed['attempts'], 1, 'numbers outside an error stay');
    assert.doesNotMatch(JSON.stringify(failed), /987654321/);
    const detail = executionDetailForCaller(
      {
        execution_id: 'x',
        status: 'failed',
        error: { error, reason: 'step "s1" failed: boom', stepId: 's1', failedAt: '2026-01-01T00:00:00.000Z' },
        steps: [{ step_id: 's1', status: 'failed', error: { ...error, at: '2026-01-01T00:00:00.000Z' } }],
      },
      true,
    );
    assert.deepEqual(detail.error, {
      error: expected,
      reason: 'step "…" failed: …',
      stepId: 's1',
      failedAt: '2026-01-01T00:00:00.000Z',
    });
    assert.deepEqual(detail.steps[0]!.error, { ...expected, at: '2026-01-01T00:00:00.000Z' });
    // A code or a time that is not one is text like any other.
    assert.deepEqual(maskErrorTexts({ error: { code: 'bad code 42', at: 'row 42' } }), {
      error: { code: 'bad code …', at: 'row …' },
    });
    // `details` outside an error is not an error's.
    const plain = { details: { n: 1 } };
    assert.equal(maskErrorTexts(plain), plain);
  });

  it('masks error texts wherever they sit in an answer: events, steps, tasks, status; nothing else', () => {
    const masked = maskErrorTexts({
      servers: [{ server: 'database', last_error: { code: 'upstream', message: 'bad "x@y"', at: 't' } }],
      steps: [{ id: 's', error: { code: 'tool_error', message: 'no "row"' }, output: 'kept "as is"' }],
      error_message: 'value "v"',
      lastError: 'at "p"',
      note: 'not an "error"',
      mcp: { servers: [{ health_error: 'bad "h"' }] },
      reasons: ['down since t: bad "r"', { severity: 'critical', message: 'x "y"' }],
      failed: { error: { code: 'upstream', message: 'm', details: { cause: 'Failing row contains (a, "b")' } } },
    });
    assert.deepEqual(masked, {
      servers: [{ server: 'database', last_error: { code: 'upstream', message: 'bad "…"', at: 't' } }],
      steps: [{ id: 's', error: { code: 'tool_error', message: 'no "…"' }, output: 'kept "as is"' }],
      error_message: 'value "…"',
      lastError: 'at "…"',
      note: 'not an "error"',
      mcp: { servers: [{ health_error: 'bad "…"' }] },
      reasons: ['down since t: …', { severity: 'critical', message: 'x "…"' }],
      failed: { error: { code: 'upstream', message: 'm', details: { cause: REDACTED_PAYLOAD } } },
    });
    const untouched = { servers: [{ server: 'db', last_error: null, tools: ['a'] }] };
    assert.equal(maskErrorTexts(untouched), untouched, 'an answer without error texts comes back as it was');
    const buffer = Buffer.from('{"error":"x \\"y\\""}');
    assert.equal(maskErrorTexts(buffer), buffer, 'only plain JSON values are walked');
    const failed = redactEventPayloads(
      event('McpToolFailed', {
        tool: 'query',
        error_message: 'invalid input syntax for type integer: "ann@example.com"',
      }),
    );
    assert.equal((failed.data as Record<string, unknown>)['error_message'], 'invalid input syntax for type integer: …');
  });
});

describe('admin-only tools: whose payloads only admins read', () => {
  it("names the events of their calls: the connectors' (server, tool), the gateway's (target), a step's or compensation's (uses)", () => {
    assert.ok(eventNamesAdminTool(event('McpToolSucceeded', { server: 'automation', tool: 'list_mailbox' })));
    assert.ok(eventNamesAdminTool(event('McpToolCalled', { server: 'automation', tool: 'queue_webhook' })));
    assert.ok(eventNamesAdminTool(event('McpToolCalled', { kind: 'upstream', target: 'automation/list_mailbox' })));
    assert.ok(
      eventNamesAdminTool(event('McpToolSucceeded', { tool: 'x', target: 'automation/list_queued_deliveries' })),
    );
    assert.ok(eventNamesAdminTool(event('StepScheduled', { stepId: 'a', uses: 'mcp:automation/list_mailbox' })));
    assert.ok(eventNamesAdminTool(event('CompensationStarted', { stepId: 'a', uses: 'mcp:automation/queue_webhook' })));
    assert.ok(eventNamesAdminTool(event('McpToolSucceeded', { call_id: 'c', tool: 'automation__list_mailbox' })));
    assert.ok(!eventNamesAdminTool(event('McpToolSucceeded', { call_id: 'c', tool: 'automation__send_email' })));
    assert.ok(!eventNamesAdminTool(event('McpToolSucceeded', { server: 'automation', tool: 'send_email' })));
    assert.ok(!eventNamesAdminTool(event('McpToolCalled', { kind: 'workflow', target: 'automation/list_mailbox' })));
    assert.ok(!eventNamesAdminTool(event('StepScheduled', { stepId: 'a', uses: 'mcp:database/query' })));
    assert.ok(!eventNamesAdminTool(event('StepSucceeded', { stepId: 'a', output: 1 })));
  });

  it('an execution calls one when a step or a compensation does', () => {
    assert.ok(definitionCallsAdminTool({ steps: [{ id: 'a', uses: 'mcp:automation/list_mailbox' }] }));
    assert.ok(
      definitionCallsAdminTool({
        steps: [{ id: 'a', uses: 'mcp:database/query', compensate: { uses: 'mcp:automation/queue_webhook' } }],
      }),
    );
    assert.ok(!definitionCallsAdminTool({ steps: [{ id: 'a', uses: 'mcp:automation/send_email' }] }));
    assert.ok(definitionCallsAdminTool({ steps: [{ id: 'a', uses: 'mcp:automation/list_queued_deliveries' }] }));
    assert.ok(!definitionCallsAdminTool({ steps: [{ id: 'a', uses: 'agent:data_analyst' }] }));
  });

  it('only an admin (or no key: auth is off) reads them', () => {
    assert.ok(seesAdminToolPayloadsFor('admin'));
    assert.ok(seesAdminToolPayloadsFor(undefined));
    assert.ok(!seesAdminToolPayloadsFor('operator'));
    assert.ok(!seesAdminToolPayloadsFor('viewer'));
  });

  it('a listing is recorded as counts and ids, from a tool result or its structured content', () => {
    const messages = [
      { id: '7', subject: 'reset', text: 'code 4242' },
      { id: '8', subject: 'hi', text: 'there' },
    ];
    const want = { summary: 'admin listing: counts and ids only', lists: { messages: { count: 2, ids: ['7', '8'] } } };
    assert.deepEqual(listingSummary({ messages, next_cursor: 'c' }), want);
    assert.deepEqual(
      listingSummary({
        content: [{ type: 'text', text: JSON.stringify({ messages }) }],
        structuredContent: { messages },
      }),
      want,
    );
    assert.deepEqual(listingSummary('text'), { summary: 'admin listing: counts and ids only', lists: {} });
  });
});
