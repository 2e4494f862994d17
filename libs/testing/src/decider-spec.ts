/**
 * Given/when/then specifications for deciders (Emmett style):
 *
 *   const spec = DeciderSpecification.for(workflowExecutionDecider);
 *   spec.given([started]).when(recordSucceeded).then([stepSucceeded, workflowCompleted]);
 *   spec.given([]).when(cancel).thenThrows((e) => e.code === 'not_found');
 *   spec.given([started, succeeded]).when(duplicate).thenNothingHappened();
 *
 * `given` events are folded with `evolve` from `initialState`; `when` runs `decide` once.
 * Any `Decider` fits, including the ones outside libs/domain (API keys, health, alerts).
 */
import assert from 'node:assert/strict';
import type { Decider } from '@switchyard/domain';

export interface DeciderThen<E, S> {
  /** The command produced exactly these events (deep equality), or passes the given check. */
  then(expected: readonly E[] | ((events: E[], stateAfter: S) => void)): E[];
  /** The command threw, and the error satisfies the predicate (when given). */
  thenThrows<Err = unknown>(predicate?: (error: Err) => boolean): Err;
  /** The command was accepted and produced no events (idempotent / ignored). */
  thenNothingHappened(): void;
}

export interface DeciderWhen<C, E, S> {
  when(command: C): DeciderThen<E, S>;
  /** The state the given events fold into (for assertions on evolve). */
  readonly state: S;
}

export interface DeciderSpec<C, E, S> {
  given(events: readonly E[]): DeciderWhen<C, E, S>;
}

type Outcome<E> = { ok: true; events: E[] } | { ok: false; error: unknown };

export const DeciderSpecification = {
  for<C, E, S>(decider: Decider<C, E, S>): DeciderSpec<C, E, S> {
    return {
      given(given: readonly E[]): DeciderWhen<C, E, S> {
        const state = given.reduce((s, e) => decider.evolve(s, e), decider.initialState);
        return {
          state,
          when(command: C): DeciderThen<E, S> {
            // Run lazily so `thenThrows` sees the error instead of the spec crashing.
            let outcome: Outcome<E> | undefined;
            const run = (): Outcome<E> => {
              if (!outcome) {
                try {
                  outcome = { ok: true, events: decider.decide(command, state) };
                } catch (error) {
                  outcome = { ok: false, error };
                }
              }
              return outcome;
            };
            const events = (): E[] => {
              const o = run();
              if (!o.ok)
                throw new assert.AssertionError({
                  message: `decide threw instead of returning events: ${String(o.error)}`,
                  actual: o.error,
                });
              return o.events;
            };
            return {
              then(expected) {
                const produced = events();
                if (typeof expected === 'function') {
                  expected(
                    produced,
                    produced.reduce((s, e) => decider.evolve(s, e), state),
                  );
                } else {
                  assert.deepStrictEqual(produced, [...expected]);
                }
                return produced;
              },
              thenThrows<Err>(predicate?: (error: Err) => boolean): Err {
                const o = run();
                if (o.ok) {
                  throw new assert.AssertionError({
                    message: `expected decide to throw, it returned ${o.events.length} event(s)`,
                    actual: o.events,
                  });
                }
                if (predicate && !predicate(o.error as Err)) {
                  throw new assert.AssertionError({
                    message: `decide threw an error that does not match: ${String(o.error)}`,
                    actual: o.error,
                  });
                }
                return o.error as Err;
              },
              thenNothingHappened() {
                assert.deepStrictEqual(events(), []);
              },
            };
          },
        };
      },
    };
  },
};
