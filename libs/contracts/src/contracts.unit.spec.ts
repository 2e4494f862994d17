import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { AppError } from '@switchyard/platform';
import {
  codeOfStatus,
  errorEnvelopeSchema,
  eventEnvelopeSchema,
  eventFilter,
  eventSubject,
  EVENTS_SUBJECT_WILDCARD,
  filesystemGlobRefusal,
  fromErrorEnvelope,
  globRefusal,
  parseEventEnvelope,
  parseEventSubject,
  serviceSubject,
  subjectToken,
  toErrorEnvelope,
  toEventEnvelope,
  trimmedText,
} from './index.js';

describe('subjects', () => {
  it('builds the event subject from the stream category and type', () => {
    assert.equal(eventSubject('workflow-123', 'WorkflowStarted'), 'switchyard.events.workflow.WorkflowStarted');
    assert.equal(eventSubject('nocategory', 'X'), 'switchyard.events.nocategory.X');
    assert.equal(eventSubject('task-9', 'TaskDone', 'test_1.events'), 'test_1.events.task.TaskDone');
  });

  it('sanitises tokens that NATS would misread', () => {
    assert.equal(subjectToken('a.b*c>d e\tf'), 'a_b_c_d_e_f');
    assert.equal(subjectToken(''), '_');
    assert.equal(eventSubject('my.cat-1', 'v1.Thing Happened'), 'switchyard.events.my_cat.v1_Thing_Happened');
    for (const s of [eventSubject('*-1', '>'), eventSubject(' - ', '')]) {
      assert.equal(s.split('.').length, 4, s);
      assert.doesNotMatch(s, /[*> ]/);
    }
  });

  it('builds filters and parses subjects back', () => {
    assert.equal(eventFilter(), EVENTS_SUBJECT_WILDCARD);
    assert.equal(eventFilter({ category: 'workflow' }), 'switchyard.events.workflow.*');
    assert.equal(eventFilter({ type: 'TaskFailed' }), 'switchyard.events.*.TaskFailed');
    assert.deepEqual(parseEventSubject('switchyard.events.workflow.WorkflowStarted'), {
      category: 'workflow',
      type: 'WorkflowStarted',
    });
    assert.equal(parseEventSubject('switchyard.svc.x.v1.y'), undefined);
  });

  it('versions service subjects by major version', () => {
    assert.equal(serviceSubject('agents', 'run'), 'switchyard.svc.agents.v1.run');
    assert.equal(serviceSubject('mcp.fetch', 'call tool', 2), 'switchyard.svc.mcp_fetch.v2.call_tool');
    assert.throws(() => serviceSubject('a', 'b', 1.5), RangeError);
  });
});

describe('event envelope', () => {
  const recorded = {
    id: 'e1',
    streamId: 'workflow-1',
    type: 'WorkflowStarted',
    data: { n: 1 },
    metadata: { correlationId: 'c1', timestamp: '2026-01-01T00:00:00.000Z', extra: 'kept' },
    revision: 0,
    position: 7,
    recordedAt: new Date('2026-01-01T00:00:01.000Z'),
  };

  it('round-trips through JSON', () => {
    const env = toEventEnvelope(recorded);
    assert.equal(env.recordedAt, '2026-01-01T00:00:01.000Z');
    const back = parseEventEnvelope(new TextEncoder().encode(JSON.stringify(env)));
    assert.deepEqual(back, env);
    assert.equal(back.metadata.extra, 'kept');
  });

  it('rejects an envelope without a correlation id or with a bad time', () => {
    const env = toEventEnvelope(recorded);
    assert.equal(
      eventEnvelopeSchema.safeParse({ ...env, metadata: { timestamp: env.metadata.timestamp } }).success,
      false,
    );
    assert.equal(eventEnvelopeSchema.safeParse({ ...env, recordedAt: 'yesterday' }).success, false);
    assert.equal(eventEnvelopeSchema.safeParse({ ...env, position: -1 }).success, false);
  });
});

describe('error envelope', () => {
  it('carries an AppError across and back', () => {
    const e = new AppError('not_found', 'no such workflow', { id: 'w1' });
    const env = errorEnvelopeSchema.parse(JSON.parse(JSON.stringify(toErrorEnvelope(e))));
    const back = fromErrorEnvelope(env);
    assert.equal(back.code, 'not_found');
    assert.equal(back.status, 404);
    assert.deepEqual(back.details, { id: 'w1' });
    assert.equal(back.retryable, false);
  });

  it('hides the message of unexpected errors', () => {
    assert.deepEqual(toErrorEnvelope(new Error('password=hunter2')), {
      code: 'internal',
      message: 'internal error',
      details: {},
      retryable: false,
    });
  });

  it('maps statuses to codes, unknown ones to a sane default', () => {
    assert.equal(codeOfStatus(503), 'unavailable');
    assert.equal(codeOfStatus(412), 'conflict');
    assert.equal(codeOfStatus(418), 'validation');
    assert.equal(codeOfStatus(599), 'internal');
  });
});

describe('trimmedText', () => {
  it('refuses blank text and says so in its JSON Schema pattern, which agrees with the trimmed length', () => {
    for (const min of [1, 2, 3]) {
      const schema = trimmedText(min, 10);
      const pattern = new RegExp((z.toJSONSchema(schema) as { pattern: string }).pattern);
      for (const s of ['', ' ', '   ', 'a', ' a ', 'ab', ' a b ', 'abc', '\tabc\n', 'a  ', '  a c  ']) {
        const trimmedLength = s.trim().length;
        assert.equal(schema.safeParse(s).success, trimmedLength >= min, `${JSON.stringify(s)} with min ${min}`);
        assert.equal(pattern.test(s), trimmedLength >= min, `pattern for ${JSON.stringify(s)} with min ${min}`);
      }
    }
    assert.equal(trimmedText(1, 10).parse('  name  '), 'name');
    assert.equal(trimmedText(1, 3).safeParse(' abcd ').success, false);
  });
});

describe('silence matchers: regexes bounded by their compiled size, one by one and together', () => {
  it('refuses a regex too large once compiled, and regexes past the budget together, naming each matcher', async () => {
    const { silenceMatchersSchema } = await import('./monitor.js');
    const huge = 'a{1000}'.repeat(141);
    const one = silenceMatchersSchema.safeParse([{ name: 'service', value: huge, isRegex: true }]);
    assert.equal(one.success, false);
    assert.deepEqual(one.error.issues[0]!.path, [0, 'value']);
    assert.match(one.error.issues[0]!.message, /too large once compiled/);
    const big = 'a{999}b{999}c{999}d{999}';
    const many = silenceMatchersSchema.safeParse(
      Array.from({ length: 14 }, (_, i) => ({ name: `l${i}`, value: big, isRegex: true })),
    );
    assert.equal(many.success, false);
    assert.deepEqual(
      many.error.issues.map((i) => i.path[0]),
      [12, 13],
      'the first 12 fit the budget of 50,000',
    );
    assert.match(many.error.issues[0]!.message, /too large together/);
    // A ')' that closes the anchoring group: what is measured is what RE2 compiles.
    const escaping = silenceMatchersSchema.safeParse([
      { name: 'service', value: 'a'.repeat(985) + '){1000}(?:b', isRegex: true },
    ]);
    assert.equal(escaping.success, false);
    assert.match(escaping.error.issues[0]!.message, /too large once compiled/);
    assert.equal(silenceMatchersSchema.safeParse([{ name: 'service', value: 'db-.*', isRegex: true }]).success, true);
    assert.equal(silenceMatchersSchema.safeParse([{ name: 'service', value: '(', isRegex: true }]).success, false);
  });
});

describe('filesystem globs', () => {
  it('refuses extended globs, overlong patterns and pattern bombs; takes plain globs', () => {
    for (const ok of [
      '*.txt',
      '**/*.md',
      'src/**/test/*.spec.ts',
      'report-?.csv',
      '[ab]*.json',
      '{a,b}/*.txt',
      'notes',
    ])
      assert.equal(globRefusal(ok), undefined, ok);
    for (const bad of [
      '+(a|aa)b',
      '*(x)',
      '@(a|b)',
      '!(secret)',
      '?(x)y',
      // braces that put an extended glob together after expansion
      '{+,+}(a|aa){+,+}(a|aa){+,+}(a|aa)b',
      // runs of wildcards that backtrack over a long name
      `${'*?'.repeat(16)}Z`,
      '*a*b*c*d*e',
      // ranges and expansions rebuilt for every file
      '{1..99999}',
      '{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}',
      '{a,{b,c}}',
      '**/**/**/**/**/x',
      'x'.repeat(300),
    ])
      assert.ok(globRefusal(bad), bad);
    assert.match(
      filesystemGlobRefusal({ pattern: '*.txt', excludePatterns: ['ok', '!(x)'] }) ?? '',
      /^excludePatterns\[1\]/,
    );
    assert.equal(filesystemGlobRefusal({ path: '/tmp', pattern: '*.log' }), undefined);
  });
});
