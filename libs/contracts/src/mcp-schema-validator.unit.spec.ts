import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SafeMcpSchemaValidator } from './mcp-schema-validator.js';

const stringWith = (pattern: string) => ({
  type: 'object',
  properties: { s: { type: 'string', pattern } },
  required: ['s'],
});

describe('SafeMcpSchemaValidator', () => {
  it('checks results as JSON Schema does: types, required, an unanchored pattern, patternProperties, formats', () => {
    const v = new SafeMcpSchemaValidator();
    const check = v.getValidator(stringWith('b+'));
    assert.equal(check({ s: 'abbc' }).valid, true);
    const bad = check({ s: 'ac' });
    assert.equal(bad.valid, false);
    assert.match(bad.errorMessage ?? '', /must match pattern "b\+"/);
    assert.equal(check({}).valid, false);
    assert.equal(check({ s: 3 }).valid, false);
    const props = v.getValidator({ type: 'object', patternProperties: { '^n_': { type: 'number' } } });
    assert.equal(props({ n_a: 1, other: 'x' }).valid, true);
    assert.equal(props({ n_a: 'one' }).valid, false);
    const email = v.getValidator({ type: 'string', format: 'email' });
    assert.equal(email('a@example.com').valid, true);
    assert.equal(email('not an address').valid, false);
  });

  it('runs a catastrophic pattern in linear time: ^(a+)+$ against 100 a and a ! (a backtracking RegExp never ends)', () => {
    const check = new SafeMcpSchemaValidator().getValidator(stringWith('^(a+)+$'));
    assert.equal(check({ s: `${'a'.repeat(100)}!` }).valid, false);
    assert.equal(check({ s: 'a'.repeat(1_000_000) }).valid, true);
    const nested = new SafeMcpSchemaValidator().getValidator({
      type: 'object',
      patternProperties: { '^(a|a)*$': { type: 'string' } },
    });
    assert.equal(nested({ [`${'a'.repeat(100)}!`]: 1 }).valid, true);
  });

  it('checks uniqueItems as JSON Schema does, in one pass: 50,000 distinct rows (Ajv compares every pair)', () => {
    const check = new SafeMcpSchemaValidator().getValidator({
      type: 'object',
      properties: { rows: { type: 'array', uniqueItems: true } },
    });
    assert.equal(check({ rows: [1, 2, '1', { a: 1, b: 2 }, [1, 2], null, true] }).valid, true);
    // Equal as JSON values: key order does not count, nor 1 against 1.0.
    assert.equal(
      check({
        rows: [
          { a: 1, b: [2, { c: 3 }] },
          { b: [2, { c: 3 }], a: 1 },
        ],
      }).valid,
      false,
    );
    assert.equal(check({ rows: [1, 1.0] }).valid, false);
    assert.equal(
      check({
        rows: [
          [1, 2],
          [2, 1],
        ],
      }).valid,
      true,
    );
    const failed = check({ rows: ['x', 'x'] });
    assert.equal(failed.valid, false);
    assert.match(failed.errorMessage ?? '', /uniqueItems/);
    const rows = Array.from({ length: 50_000 }, (_, i) => ({ id: i, name: `row ${i}` }));
    assert.equal(check({ rows }).valid, true);
    assert.equal(check({ rows: [...rows, { name: 'row 7', id: 7 }] }).valid, false);
    const notUnique = new SafeMcpSchemaValidator().getValidator({ type: 'array', uniqueItems: false });
    assert.equal(notUnique([1, 1]).valid, true);
  });

  it('checks nothing, and says why once, for a schema it cannot use: a lookahead, too large, too deep, an unknown $ref', () => {
    const heard: string[] = [];
    const v = new SafeMcpSchemaValidator((why) => heard.push(why));
    const unusable = [
      stringWith('^(?=a)a$'),
      { type: 'object', description: 'x'.repeat(SafeMcpSchemaValidator.MAX_SCHEMA_CHARS) },
      Array.from({ length: SafeMcpSchemaValidator.MAX_SCHEMA_DEPTH + 2 }).reduce<object>(
        (inner) => ({ type: 'object', properties: { x: inner } }),
        { type: 'string' },
      ),
      { $ref: 'https://example.com/elsewhere.json' },
    ];
    for (const schema of unusable) {
      assert.deepEqual(v.getValidator(schema)({ anything: true }), {
        valid: true,
        data: { anything: true },
        errorMessage: undefined,
      });
      // Listed again (every tools/list compiles every output schema): not compiled nor reported again.
      v.getValidator(JSON.parse(JSON.stringify(schema)));
    }
    assert.equal(heard.length, 4, heard.join('\n'));
    assert.match(heard[0]!, /invalid or unsupported Perl syntax/);
    assert.match(heard[1]!, /characters of JSON, over 65536/);
    assert.match(heard[2]!, /nested deeper than 32/);
    assert.match(heard[3]!, /elsewhere/);
  });
});
