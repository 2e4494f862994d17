import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeciderSpecification } from './decider-spec.js';

// A toy counter: Add n (n > 0) -> Added n; Reset -> Reset (only when not zero).
type C = { type: 'Add'; n: number } | { type: 'Reset' };
type E = { type: 'Added'; n: number } | { type: 'WasReset' };
const counter = {
  initialState: 0,
  decide(c: C, s: number): E[] {
    if (c.type === 'Add') {
      if (c.n <= 0) throw new RangeError('n must be positive');
      return [{ type: 'Added', n: c.n }];
    }
    return s === 0 ? [] : [{ type: 'WasReset' }];
  },
  evolve(s: number, e: E): number {
    return e.type === 'Added' ? s + e.n : 0;
  },
};
const spec = DeciderSpecification.for(counter);

describe('DeciderSpecification', () => {
  it('then: folds the given events, decides, compares events (or runs a check with the state after)', () => {
    assert.equal(spec.given([{ type: 'Added', n: 2 }]).state, 2);
    spec
      .given([])
      .when({ type: 'Add', n: 1 })
      .then([{ type: 'Added', n: 1 }]);
    spec
      .given([{ type: 'Added', n: 2 }])
      .when({ type: 'Add', n: 3 })
      .then((events, after) => {
        assert.equal(events.length, 1);
        assert.equal(after, 5);
      });
    assert.throws(
      () =>
        spec
          .given([])
          .when({ type: 'Add', n: 1 })
          .then([{ type: 'Added', n: 2 }]),
      assert.AssertionError,
    );
  });

  it('thenThrows: passes on a matching error, fails on none or a different one', () => {
    const e = spec
      .given([])
      .when({ type: 'Add', n: 0 })
      .thenThrows<RangeError>((x) => x instanceof RangeError);
    assert.match(e.message, /positive/);
    assert.throws(() => spec.given([]).when({ type: 'Add', n: 1 }).thenThrows(), /expected decide to throw/);
    assert.throws(
      () =>
        spec
          .given([])
          .when({ type: 'Add', n: 0 })
          .thenThrows((x) => x instanceof TypeError),
      /does not match/,
    );
    assert.throws(() => spec.given([]).when({ type: 'Add', n: 0 }).then([]), /decide threw/);
  });

  it('thenNothingHappened: passes on no events, fails otherwise', () => {
    spec.given([]).when({ type: 'Reset' }).thenNothingHappened();
    assert.throws(
      () =>
        spec
          .given([{ type: 'Added', n: 1 }])
          .when({ type: 'Reset' })
          .thenNothingHappened(),
      assert.AssertionError,
    );
  });
});
