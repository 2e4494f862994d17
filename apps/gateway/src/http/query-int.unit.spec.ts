import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { textInt } from './query-int.js';

describe('textInt: a whole number given as text', () => {
  const revision = textInt({ min: 0, max: 2_147_483_647 });
  it('reads decimal digits (and numbers as they are)', () => {
    assert.equal(revision.parse('0'), 0);
    assert.equal(revision.parse('16'), 16);
    assert.equal(revision.parse('007'), 7);
    assert.equal(revision.parse(`${'0'.repeat(8_000)}1`), 1, 'padded with zeros: still the number');
    assert.equal(revision.parse(12), 12);
    assert.equal(textInt({ min: -1, max: 10 }).parse('-1'), -1);
  });
  it('refuses blank, hexadecimal, binary, octal, exponent and fractional text instead of reading 0 or another number', () => {
    for (const bad of ['', ' ', '\t', '0x10', '0b11', '0o7', '1e3', '1.0', '+1', ' 1', '1 ', '١٢'])
      assert.equal(revision.safeParse(bad).success, false, JSON.stringify(bad));
  });
  it('keeps its bounds', () => {
    assert.equal(revision.safeParse('-1').success, false);
    assert.equal(revision.safeParse('2147483648').success, false);
    assert.equal(revision.safeParse(1.5).success, false);
  });
});
