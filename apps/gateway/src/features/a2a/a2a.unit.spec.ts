import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Message, Task } from '@a2a-js/sdk';
import { RequestMalformedError } from '@a2a-js/sdk/errors';
import { buildCard, exampleFromSchema } from './cards.js';
import { parseWorkRequest } from './message.js';
import { roleForMethod } from './peer.js';
import { taskWorkStatus } from './backends.js';
import { redactTask } from './redaction.js';

const SKILLS = ['revenue_analysis', 'customer_segmentation'];
const resolve = (n: string) => (n === 'analyze_revenue' ? 'revenue_analysis' : SKILLS.includes(n) ? n : undefined);
const msg = (parts: Message['parts'], taskId = ''): Message => ({
  messageId: 'm',
  contextId: '',
  taskId,
  role: 1,
  parts,
  metadata: undefined,
  extensions: [],
  referenceTaskIds: [],
});
const data = (value: unknown) => ({
  content: { $case: 'data' as const, value },
  mediaType: 'application/json',
  filename: '',
  metadata: undefined,
});
const text = (value: string) => ({
  content: { $case: 'text' as const, value },
  mediaType: 'text/plain',
  filename: '',
  metadata: undefined,
});
const refused = (m: Message | undefined, re: RegExp) =>
  assert.throws(
    () => parseWorkRequest(m, resolve, SKILLS),
    (e: unknown) => e instanceof RequestMalformedError && re.test((e as Error).message),
  );

describe('a2a message -> work request', () => {
  it('a data part names the skill (or an alias) and carries the input and priority', () => {
    assert.deepEqual(
      parseWorkRequest(msg([data({ task_type: 'revenue_analysis', input: { timeframe: '30d' } })]), resolve, SKILLS),
      {
        skill: 'revenue_analysis',
        input: { timeframe: '30d' },
        priority: 'normal',
      },
    );
    assert.equal(
      parseWorkRequest(msg([data({ skill: 'analyze_revenue', priority: 'high' })]), resolve, SKILLS).skill,
      'revenue_analysis',
    );
    assert.equal(
      parseWorkRequest(msg([data({ skill: 'analyze_revenue', priority: 'high' })]), resolve, SKILLS).priority,
      'high',
    );
  });

  it('a text-only message names the skill, optionally followed by a JSON object input', () => {
    assert.deepEqual(parseWorkRequest(msg([text('customer_segmentation')]), resolve, SKILLS).input, {});
    assert.deepEqual(parseWorkRequest(msg([text(' revenue_analysis {"timeframe":"12m"} ')]), resolve, SKILLS).input, {
      timeframe: '12m',
    });
  });

  it('anything else is -32602 with the reason', () => {
    refused(undefined, /message is required/);
    refused(msg([data({ task_type: 'write_poem' })]), /unknown skill "write_poem".*revenue_analysis/);
    refused(msg([data({ input: {} })]), /task_type is required/);
    refused(msg([data({ task_type: 'revenue_analysis', input: [1] })]), /input/);
    refused(msg([text('please analyse my revenue')]), /unknown skill "please"/);
    refused(msg([text('revenue_analysis {not json')]), /must be a JSON object/);
    refused(
      msg([{ content: { $case: 'url', value: 'http://x' }, mediaType: '', filename: '', metadata: undefined }]),
      /no data part and no text part/,
    );
    refused(msg([data({ task_type: 'revenue_analysis' })], 'task-1'), /takes no further messages/);
  });
});

describe('a2a roles, cards and states', () => {
  it('reads need viewer, everything else operator (A2A 1.0 and 0.3 names)', () => {
    for (const m of [
      'GetTask',
      'tasks/get',
      'tasks/resubscribe',
      'SubscribeToTask',
      'tasks/pushNotificationConfig/get',
    ])
      assert.equal(roleForMethod(m), 'viewer');
    for (const m of [
      'SendMessage',
      'message/send',
      'message/stream',
      'tasks/cancel',
      'CancelTask',
      'tasks/pushNotificationConfig/set',
      'anything',
      undefined,
    ])
      assert.equal(roleForMethod(m), 'operator');
  });

  it('a card has one skill per task type with examples, the bearer scheme, streaming and push', () => {
    const card = buildCard({
      name: 'data_analyst',
      description: 'd',
      url: 'http://h/a2a/data_analyst',
      base: 'http://h',
      skills: [
        {
          id: 'revenue_analysis',
          name: 'revenue analysis',
          description: 'r',
          tags: [],
          exampleInput: { timeframe: '30d' },
        },
      ],
    });
    assert.equal(card.skills[0]!.examples[0], '{"task_type":"revenue_analysis","input":{"timeframe":"30d"}}');
    assert.deepEqual([card.capabilities?.streaming, card.capabilities?.pushNotifications], [true, true]);
    assert.deepEqual(
      card.supportedInterfaces.map((i) => i.protocolVersion),
      ['1.0', '0.3'],
    );
    assert.equal(card.securitySchemes.bearer?.scheme?.$case, 'httpAuthSecurityScheme');
    assert.deepEqual(
      exampleFromSchema({
        properties: { a: { default: 1 }, b: { enum: ['x', 'y'] }, c: { examples: [3] }, d: { type: 'string' } },
      }),
      { a: 1, b: 'x', c: 3 },
    );
  });

  it('task statuses map onto A2A states; a timeout is a failure with its reason', () => {
    const v = {
      task_id: 't',
      task_type: 'x',
      priority: 'normal' as const,
      requested_agent: null,
      agent: null,
      instance: null,
      attempts: 1,
      max_attempts: 3,
      timeout_ms: 1000,
      failed_instances: [] as string[],
      submitted_at: '',
      assigned_at: null,
      started_at: null,
      completed_at: null,
      duration_ms: null,
      error: null,
    };
    assert.equal(taskWorkStatus({ ...v, status: 'queued' }).state, 'submitted');
    assert.equal(taskWorkStatus({ ...v, status: 'assigned' }).state, 'working');
    assert.deepEqual(taskWorkStatus({ ...v, status: 'completed', result: { a: 1 } }), {
      state: 'completed',
      result: { a: 1 },
    });
    assert.deepEqual(taskWorkStatus({ ...v, status: 'timed_out' }), {
      state: 'failed',
      error: { code: 'timeout', message: 'task timed out after 1000 ms' },
    });
    assert.equal(taskWorkStatus({ ...v, status: 'canceled' }).state, 'canceled');
  });
});

describe('a2a tasks as a viewer reads them', () => {
  it("a failure's data part keeps which error it was, not the values it quotes; metadata is redacted", () => {
    const message = {
      messageId: 'm1',
      contextId: 'c',
      taskId: 't',
      role: 2,
      parts: [
        {
          content: {
            $case: 'data',
            value: {
              error: { code: 'validation', message: 'invalid input syntax for type integer: "ceo@private.example"' },
            },
          },
          mediaType: 'application/json',
          filename: '',
          metadata: { secret: 'S3CRET' },
        },
      ],
      metadata: { client: 'S3CRET' },
      extensions: [],
      referenceTaskIds: [],
    } as unknown as Message;
    const task = {
      id: 't',
      contextId: 'c',
      status: { state: 4, message, timestamp: undefined },
      artifacts: [],
      history: [],
      metadata: undefined,
    } as unknown as Task;
    const seen = JSON.stringify(redactTask(task));
    assert.doesNotMatch(seen, /ceo@private|S3CRET/);
    assert.match(seen, /invalid input syntax for type integer: …/);
  });
});
