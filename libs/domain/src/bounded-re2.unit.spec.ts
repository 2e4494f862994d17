import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedRe2Cache, MAX_PROGRAM_SIZE, Re2Budget, re2ProgramSizeEstimate, re2SizeProblem } from './bounded-re2.js';
import { compileInputPattern, inputPatternProblems } from './workflow/definition/input.js';
import { evaluateExpression, withExpressionBudget } from './workflow/definition/expressions.js';

/** 9.7 KB of text, 1.39 million instructions once compiled (5 s and 1 GB to compile). */
const HUGE = 'a{1000}'.repeat(1390);

describe('bounded RE2: a pattern too large once compiled is refused before compiling', () => {
  it('estimates counted repetition as RE2 unrolls it, nested repetition multiplied', () => {
    assert.ok(re2ProgramSizeEstimate('^[A-Z]{2}-\\d{4}$') < 50);
    assert.ok(re2ProgramSizeEstimate('^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$') < 100);
    assert.equal(re2ProgramSizeEstimate('a{1000}'), 1000);
    assert.equal(re2ProgramSizeEstimate('(a{100}){100}'), 10_000);
    assert.equal(re2ProgramSizeEstimate('(?:a{10}|b{10}){10}'), 210);
    assert.equal(re2ProgramSizeEstimate('a{3,}'), 4);
    assert.ok(re2ProgramSizeEstimate(HUGE) > 1_000_000);
    assert.ok(re2ProgramSizeEstimate('((((a{10}){10}){10}){10}){10}') > MAX_PROGRAM_SIZE);
    // A class, \p{..} or . is one instruction (RE2 compiles a class to one): common Unicode patterns stay small.
    assert.ok(re2ProgramSizeEstimate('[\\p{L}\\p{N}_-]{1,64}') <= 64);
    assert.ok(re2ProgramSizeEstimate("^\\p{L}[\\p{L}\\p{M}' -]{0,99}$") < 200);
    // \Q...\E is literal: a ')' inside does not close a group (else the {1000} after was missed).
    assert.equal(re2ProgramSizeEstimate('\\Q)(\\E'), 2);
    assert.ok(re2ProgramSizeEstimate('(?:' + 'a'.repeat(1000) + '\\Q)\\E){1000}') > 1_000_000);
    // Nesting deeper than RE2 takes: too large, without recursing through it.
    assert.equal(re2ProgramSizeEstimate('('.repeat(20_000)), Number.POSITIVE_INFINITY);
    assert.match(re2SizeProblem('('.repeat(20_000)) ?? '', /nested deeper than 1000/);
    // Not repetition: a literal brace, flags, named groups, classes holding ']' and escapes.
    assert.equal(re2ProgramSizeEstimate('a{x}'), 4);
    assert.ok(re2ProgramSizeEstimate('(?i)(?P<n>[]a\\]]+)(?:x|y)*') < 20);
  });

  it('the estimate is an upper bound where it matters: every pattern it admits compiles, and typical ones are admitted', () => {
    const cache = new BoundedRe2Cache();
    for (const p of [
      'a{999}b{999}c{999}d{999}',
      'x{1000}',
      '[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}',
      '(?i)^(foo|bar){1,20}$',
    ]) {
      assert.equal(re2SizeProblem(p), undefined, p);
      assert.notEqual(typeof cache.compile(p), 'string', `${p} compiles`);
    }
    assert.match(re2SizeProblem(HUGE) ?? '', /too large once compiled \(about \d+ instructions; at most 10000/);
  });

  it('the cache answers the compiled pattern, RE2 syntax errors, and size refusals, without compiling the last', () => {
    const cache = new BoundedRe2Cache();
    const ok = cache.compile('^a+$');
    assert.ok(typeof ok !== 'string' && ok.matches('aaa'));
    assert.equal(typeof cache.compile('(a'), 'string');
    const started = process.hrtime.bigint();
    const refused = cache.compile(HUGE);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(typeof refused, 'string');
    assert.match(refused as string, /too large once compiled/);
    // Not a timing assertion on the machine: a compile would take seconds, the refusal reads the text once.
    assert.ok(ms < 1_000, `refused without compiling (${ms.toFixed(1)} ms)`);
  });

  it('the cache evicts the least recently used: a working set under its budget stays compiled while others pass through', () => {
    const cache = new BoundedRe2Cache();
    // About 300,000 instructions: 30 patterns of 10,000, under the cache's 400,000.
    const working = Array.from({ length: 30 }, (_, i) => `x${i}${'a{999}'.repeat(10)}`);
    const first = working.map((p) => cache.compile(p));
    for (let round = 0; round < 5; round++) {
      // Others pass through: 5 patterns of 10,000 each round, so that the rounds together go past
      // the budget (emptying the whole cache then recompiled the working set on its next use).
      for (let j = 0; j < 5; j++) cache.compile(`y${round}_${j}${'b{999}'.repeat(10)}`);
      // The working set is used every round, so it is never the least recently used.
      working.forEach((p, i) =>
        assert.equal(cache.compile(p), first[i], `round ${round}: ${p} is the same compiled pattern`),
      );
    }
    // Past the budget, what was not used since goes: 60 new patterns of 10,000 push out everything older.
    const old = cache.compile('old{10}');
    for (let j = 0; j < 60; j++) cache.compile(`z${j}${'c{999}'.repeat(10)}`);
    assert.notEqual(cache.compile('old{10}'), old, 'compiled again: it had been evicted');
    assert.notEqual(cache.compile(working[0]!), first[0], 'so had the working set, unused meanwhile');
  });

  it('a budget shared by patterns: refuses one too large alone without charging it, then those past the sum', () => {
    const budget = new Re2Budget(2_500, 'over budget');
    assert.equal(budget.charge('a{1000}'), undefined);
    assert.match(budget.charge(HUGE) ?? '', /too large once compiled/, 'too large alone, not charged');
    assert.equal(budget.charge('b{1000}'), undefined, '2,000 of 2,500');
    assert.equal(budget.charge('c{1000}'), 'over budget');
    assert.equal(budget.charge('d'), 'over budget', 'once past, every later pattern');
  });

  it('input schemas: one huge pattern, and many patterns together past the budget, are schema problems', () => {
    assert.match(String(compileInputPattern(HUGE)), /too large once compiled/);
    const many = {
      type: 'object' as const,
      properties: Object.fromEntries(
        Array.from({ length: 20 }, (_, i) => [
          `p${i}`,
          { type: 'string' as const, pattern: 'a{999}b{999}c{999}d{999}' },
        ]),
      ),
    };
    const problems = inputPatternProblems(many);
    assert.equal(problems.length, 8, 'the first 12 (48,000) fit, the last 8 do not');
    assert.match(problems[0]!.message, /too large together once compiled/);
    assert.equal(
      inputPatternProblems({ type: 'object', properties: { a: { type: 'string', pattern: '^a+$' } } }).length,
      0,
    );
  });

  it('CEL matches(): a pattern too large once compiled is an expression error, not seconds of compiling', () => {
    assert.throws(
      () =>
        withExpressionBudget(() =>
          evaluateExpression('input.s.matches(input.p)', { input: { s: 'aaa', p: HUGE }, steps: {} }),
        ),
      /too large once compiled/,
    );
    assert.equal(
      withExpressionBudget(() =>
        evaluateExpression('input.s.matches(input.p)', { input: { s: 'aaa', p: '^a+$' }, steps: {} }),
      ),
      true,
    );
  });
});
