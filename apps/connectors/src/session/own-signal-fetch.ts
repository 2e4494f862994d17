/** Where a request's own signal keeps its controller (so the controller lives as long as undici holds the signal). */
const CONTROLLER = Symbol('switchyard.ownSignalController');

/**
 * A fetch for the SDK's Streamable HTTP client transport that gives every request its own
 * AbortSignal, aborted when the transport's signal is. Why: the transport hands each POST the same
 * long-lived signal, and undici adds an abort listener to it per request that it drops only when
 * the request is garbage-collected; thousands pile up between collections, every new request
 * scans them (getEventListeners) and Node warns (MaxListenersExceededWarning). With this, the
 * transport's signal carries one listener, however many requests run.
 */
export function fetchWithOwnSignals(base: typeof fetch = (input, init) => fetch(input, init)): typeof fetch {
  const followers = new WeakMap<AbortSignal, { refs: Set<WeakRef<AbortController>>; pruneAt: number }>();
  return (input, init) => {
    const outer = init?.signal;
    if (!outer || outer.aborted) return base(input, init);
    let f = followers.get(outer);
    if (!f) {
      const created = { refs: new Set<WeakRef<AbortController>>(), pruneAt: 256 };
      outer.addEventListener(
        'abort',
        () => {
          for (const r of created.refs) r.deref()?.abort(outer.reason);
          created.refs.clear();
        },
        { once: true },
      );
      followers.set(outer, created);
      f = created;
    }
    // Requests that ended and were collected leave empty refs: drop them now and then (the
    // threshold doubles with what stays, so pruning costs O(1) per request on average).
    if (f.refs.size >= f.pruneAt) {
      for (const r of f.refs) if (r.deref() === undefined) f.refs.delete(r);
      f.pruneAt = Math.max(256, f.refs.size * 2);
    }
    const own = new AbortController();
    Object.defineProperty(own.signal, CONTROLLER, { value: own });
    f.refs.add(new WeakRef(own));
    return base(input, { ...init, signal: own.signal });
  };
}
