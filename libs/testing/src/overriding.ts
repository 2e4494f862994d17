/**
 * `target` seen through some methods of the test's own (a fault injected, or calls counted, in
 * front of a real component); every other member is the target's, its methods bound to it.
 */
export function overriding<T extends object>(target: T, overrides: Partial<T>): T {
  return new Proxy(target, {
    get(t, prop) {
      if (Object.prototype.hasOwnProperty.call(overrides, prop)) return overrides[prop as keyof T];
      const v: unknown = Reflect.get(t, prop, t);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/** `target` with the calls of `methods` counted (`calls`, by method name); everything else as it is. */
export function countingCalls<T extends object, K extends keyof T & string>(
  target: T,
  methods: readonly K[],
): { readonly target: T; readonly calls: Record<K, number> } {
  const calls = Object.fromEntries(methods.map((m) => [m, 0])) as Record<K, number>;
  const overrides: Partial<T> = {};
  for (const m of methods) {
    const original = target[m] as unknown as (...args: unknown[]) => unknown;
    (overrides as Record<string, unknown>)[m] = (...args: unknown[]) => {
      calls[m]++;
      return original.apply(target, args);
    };
  }
  return { target: overriding(target, overrides), calls };
}
