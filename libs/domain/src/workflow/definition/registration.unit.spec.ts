import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeciderSpecification } from '@switchyard/testing';
import { DomainError, type CommandMetadata } from '../../decider.js';
import {
  canonicalJson,
  checkBuiltinTemplate,
  definitionDecider,
  firstJsonDifference,
  sameJson,
  type DefinitionCommand,
  type DefinitionEvent,
  type DefinitionSource,
} from './registration.js';
import { workflowDefinitionSchema, type WorkflowDefinition } from './schema.js';

const spec = DeciderSpecification.for(definitionDecider);
const isCode = (code: string) => (e: unknown) => e instanceof DomainError && e.code === code;
const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-02T00:00:00.000Z';
const meta = (timestamp = T0, actor = 'apikey:admin'): CommandMetadata => ({
  timestamp,
  actor,
  correlationId: 'corr-d',
});

const def = (version: number, tool = 'query'): WorkflowDefinition =>
  workflowDefinitionSchema.parse({
    id: 'flow',
    version,
    name: 'Flow',
    steps: [{ id: 'a', uses: `mcp:database/${tool}` }],
  });

const register = (d: WorkflowDefinition, source: DefinitionSource = 'user', at = T0): DefinitionCommand => ({
  type: 'RegisterDefinition',
  data: { definition: d, source },
  metadata: meta(at),
});
const del = (at = T1): DefinitionCommand => ({
  type: 'DeleteDefinition',
  data: { definitionId: 'flow', reason: 'obsolete' },
  metadata: meta(at),
});

const registered = (d: WorkflowDefinition, source: DefinitionSource = 'user', at = T0): DefinitionEvent => ({
  type: 'DefinitionRegistered',
  data: { definitionId: d.id, version: d.version, definition: d, source, registeredAt: at, actor: 'apikey:admin' },
  metadata: meta(at),
});
const deleted = (versions: number[], at = T1): DefinitionEvent => ({
  type: 'DefinitionDeleted',
  data: { definitionId: 'flow', versions, reason: 'obsolete', deletedAt: at, actor: 'apikey:admin' },
  metadata: meta(at),
});

describe('Definition: none', () => {
  it('RegisterDefinition records the version with its source, time and actor', () => {
    spec
      .given([])
      .when(register(def(1)))
      .then([registered(def(1))]);
    spec
      .given([])
      .when(register(def(3), 'builtin'))
      .then([registered(def(3), 'builtin')]);
  });
  it('DeleteDefinition of an unknown id: 404', () => {
    spec.given([]).when(del()).thenThrows(isCode('not_found'));
  });
});

describe('Definition: active', () => {
  it('a newer version is recorded (the update)', () => {
    spec
      .given([registered(def(1))])
      .when(register(def(2, 'other'), 'user', T1))
      .then([registered(def(2, 'other'), 'user', T1)]);
  });
  it('the same version with the same content records nothing (idempotent), also for an older version', () => {
    spec
      .given([registered(def(1))])
      .when(register(def(1)))
      .thenNothingHappened();
    spec
      .given([registered(def(1)), registered(def(2, 'other'))])
      .when(register(def(1)))
      .thenNothingHappened();
  });
  it('an existing version with other content, or a version older than the latest: 409 naming the latest', () => {
    const e = spec
      .given([registered(def(2))])
      .when(register(def(2, 'other')))
      .thenThrows<DomainError>(isCode('illegal_state'));
    assert.deepEqual(e.details, { id: 'flow', version: 2, latest: 2 });
    spec
      .given([registered(def(2))])
      .when(register(def(1)))
      .thenThrows(isCode('illegal_state'));
  });
  it('a built-in seed adds a missing version (even an older one) and records nothing for one present', () => {
    spec
      .given([registered(def(2))])
      .when(register(def(1), 'builtin'))
      .then([registered(def(1), 'builtin')]);
    spec
      .given([registered(def(1), 'builtin')])
      .when(register(def(1, 'other'), 'builtin'))
      .thenNothingHappened();
  });
  it('DeleteDefinition deletes every version', () => {
    spec
      .given([registered(def(1)), registered(def(2))])
      .when(del())
      .then([deleted([1, 2])]);
  });
  it('a built-in template cannot be deleted: 409', () => {
    spec
      .given([registered(def(1), 'builtin'), registered(def(2))])
      .when(del())
      .thenThrows(isCode('illegal_state'));
  });
});

describe('Definition: deleted', () => {
  const history = [registered(def(1)), registered(def(2)), deleted([1, 2])];
  it('a second delete: 404', () => {
    spec.given(history).when(del()).thenThrows(isCode('not_found'));
  });
  it('registering again needs a version above the last one (so an id and version always name one content)', () => {
    spec
      .given(history)
      .when(register(def(2)))
      .thenThrows(isCode('illegal_state'));
    spec
      .given(history)
      .when(register(def(3), 'user', T1))
      .then((events, after) => {
        assert.deepEqual(events, [registered(def(3), 'user', T1)]);
        assert.equal(after.status, 'active');
        assert.deepEqual(after.status === 'active' ? Object.keys(after.versions) : [], ['3']);
      });
  });
  it('a built-in seed at or below the last version records nothing', () => {
    spec
      .given(history)
      .when(register(def(1), 'builtin'))
      .thenNothingHappened();
  });
});

describe('sameJson', () => {
  it('ignores key order and undefined members, not values', () => {
    assert.equal(sameJson({ a: 1, b: [1, { c: 2, d: 3 }] }, { b: [1, { d: 3, c: 2 }], a: 1 }), true);
    assert.equal(sameJson({ a: 1, x: undefined }, { a: 1 }), true);
    assert.equal(sameJson({ a: [1, 2] }, { a: [2, 1] }), false);
    assert.equal(sameJson({ a: null }, { a: {} }), false);
    assert.equal(sameJson([1], { 0: 1 }), false);
  });
});

describe('canonicalJson', () => {
  it('is the same text exactly when sameJson holds', () => {
    const pairs: [unknown, unknown][] = [
      [
        { a: 1, b: [1, { c: 2, d: 3 }] },
        { b: [1, { d: 3, c: 2 }], a: 1 },
      ],
      [{ a: 1, x: undefined }, { a: 1 }],
      [{ a: [1, 2] }, { a: [2, 1] }],
      [{ a: null }, { a: {} }],
      [[1], { 0: 1 }],
      [{ a: '1' }, { a: 1 }],
    ];
    for (const [a, b] of pairs) assert.equal(canonicalJson(a) === canonicalJson(b), sameJson(a, b), canonicalJson(a));
  });
});

describe('checkBuiltinTemplate: what seeding a template found, for the caller to report', () => {
  const state = (events: DefinitionEvent[]) => events.reduce(definitionDecider.evolve, definitionDecider.initialState);
  it('a missing id or version is added; the same content stored is unchanged', () => {
    assert.deepEqual(checkBuiltinTemplate(state([]), def(1)), { outcome: 'added' });
    assert.deepEqual(checkBuiltinTemplate(state([registered(def(2), 'builtin')]), def(1)), { outcome: 'added' });
    assert.deepEqual(checkBuiltinTemplate(state([registered(def(1), 'builtin')]), def(1)), { outcome: 'unchanged' });
  });
  it('other content stored under the version: stored_differs, naming the version, the stored source and where it differs', () => {
    const stored = state([registered(def(1), 'builtin')]);
    const code = def(1, 'other');
    // The decider keeps the stored content ...
    spec
      .given([registered(def(1), 'builtin')])
      .when(register(code, 'builtin'))
      .thenNothingHappened();
    // ... and the check says so.
    assert.deepEqual(checkBuiltinTemplate(stored, code), {
      outcome: 'stored_differs',
      definitionId: 'flow',
      version: 1,
      storedSource: 'builtin',
      firstDifference: 'steps[0].uses',
    });
    const added = workflowDefinitionSchema.parse({ ...def(1), steps: [{ ...def(1).steps[0], with: { x: true } }] });
    assert.equal(checkBuiltinTemplate(stored, added).outcome, 'stored_differs');
    assert.equal(
      (checkBuiltinTemplate(stored, added) as { firstDifference: string }).firstDifference,
      'steps[0].with.x',
    );
    assert.equal(
      (checkBuiltinTemplate(state([registered(def(1), 'user')]), code) as { storedSource: string }).storedSource,
      'user',
    );
  });
  it('a deleted id at or above the version: id_deleted (the template is not registered); above it: added', () => {
    const gone = state([registered(def(1)), registered(def(2)), deleted([1, 2])]);
    assert.deepEqual(checkBuiltinTemplate(gone, def(2)), {
      outcome: 'id_deleted',
      definitionId: 'flow',
      version: 2,
      lastVersion: 2,
    });
    assert.deepEqual(checkBuiltinTemplate(gone, def(3)), { outcome: 'added' });
  });
});

describe('firstJsonDifference', () => {
  it('names the first differing path, or nothing for the same value', () => {
    assert.equal(firstJsonDifference({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 }), undefined);
    assert.equal(firstJsonDifference({ a: 1, b: [1, { c: 2 }] }, { a: 1, b: [1, { c: 3 }] }), 'b[1].c');
    assert.equal(firstJsonDifference({ a: [1] }, { a: [1, 2] }), 'a[1]');
    assert.equal(firstJsonDifference({ a: 1 }, { a: 1, z: null }), 'z');
    assert.equal(firstJsonDifference(1, 2), '(root)');
  });
});
