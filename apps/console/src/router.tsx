/** Client routing under /ui with the History API (the gateway answers index.html for any /ui path). */
import type { AnchorHTMLAttributes, ComponentChildren } from 'preact';
import { signal, onEvent, type EventJson } from './api';
import { useLayoutEffect, useRef } from 'preact/hooks';

export const route = signal(location.pathname);
window.addEventListener('popstate', () => (route.value = location.pathname));

export function navigate(href: string): void {
  if (href === location.pathname + location.search) return;
  history.pushState(null, '', href);
  route.value = location.pathname;
  window.scrollTo(0, 0);
}

export function Link({
  href,
  children,
  ...rest
}: { href: string; children: ComponentChildren } & AnchorHTMLAttributes<HTMLAnchorElement>) {
  return (
    <a
      href={href}
      {...rest}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}

/**
 * Run `load` now, then again (at most every `minGapMs`) whenever a live event passes `filter`,
 * and every `pollMs` as a safety net. The first load starts as the component is drawn, not a
 * frame later after the paint (a layout effect; the load itself is async, so nothing waits on it).
 */
export function useLive(
  load: () => void | Promise<void>,
  filter: (e: EventJson) => boolean,
  deps: unknown[],
  minGapMs = 700,
  pollMs = 15_000,
): void {
  const loadRef = useRef(load);
  loadRef.current = load;
  const filterRef = useRef(filter);
  filterRef.current = filter;
  useLayoutEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    let last = 0;
    const run = () => {
      timer = null;
      last = Date.now();
      void loadRef.current();
    };
    run();
    const off = onEvent((e) => {
      if (!filterRef.current(e) || timer) return;
      timer = setTimeout(run, Math.max(0, minGapMs - (Date.now() - last)));
    });
    const poll = setInterval(run, pollMs);
    return () => {
      off();
      clearInterval(poll);
      if (timer) clearTimeout(timer);
    };
    // The caller's deps decide when to resubscribe (like a hook's dependency list).
  }, deps);
}
