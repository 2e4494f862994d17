/**
 * The console's only way to the system: the gateway's REST API with the operator's key.
 * The key lives in sessionStorage (gone when the tab closes); every call is checked by
 * the route's role on the server, the console only hides what the role may not do.
 */
import { useEffect, useState } from 'preact/hooks';

/** A value components can watch (a few lines instead of a state library). */
export class Cell<T> {
  private readonly subs = new Set<() => void>();
  constructor(private v: T) {}
  get value(): T {
    return this.v;
  }
  set value(v: T) {
    this.v = v;
    for (const s of this.subs) s();
  }
  subscribe(f: () => void): () => void {
    this.subs.add(f);
    return () => this.subs.delete(f);
  }
}
export function signal<T>(v: T): Cell<T> {
  return new Cell(v);
}
/** Re-render when the cell changes; its current value. */
export function useCell<T>(c: Cell<T>): T {
  const [, set] = useState(0);
  useEffect(() => c.subscribe(() => set((n) => n + 1)), [c]);
  return c.value;
}

export type Role = 'viewer' | 'operator' | 'admin';
export interface Who {
  readonly id: string | null;
  readonly name: string | null;
  readonly role: Role;
  readonly auth_enabled: boolean;
}

const KEY = 'switchyard.apiKey';
export const who = signal<Who | null>(null);

const rank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
/** Whether the signed-in key's role reaches `need`. */
export const can = (need: Role): boolean => !!who.value && rank[who.value.role] >= rank[need];

/** A problem+json answer (RFC 9457) as an error. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: {
      title?: string;
      detail?: string;
      code?: string;
      errors?: { path: string; message: string }[];
      [k: string]: unknown;
    },
  ) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
  }
}

const storedKey = (): string | null => sessionStorage.getItem(KEY);

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const k = storedKey();
  return { ...(k ? { authorization: `Bearer ${k}` } : {}), ...extra };
}

/** One JSON call; throws ApiError on a non-2xx answer. */
export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: any;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = { detail: text };
  }
  if (!res.ok) {
    if (res.status === 401 && path !== '/api/v1/auth/whoami') signOut();
    throw new ApiError(res.status, parsed ?? {});
  }
  return parsed as T;
}

const early = new Map<string, { at: number; answer: Promise<any> }>();
/**
 * Start a GET now, at page load beside the sign-in check, for the first page's first `get` of
 * the same path to take (once, within 5 s); later reads always ask the API.
 */
export function prefetch(path: string): void {
  const answer = api('GET', path);
  answer.catch(() => undefined /* the `get` that takes it reports it */);
  early.set(path, { at: Date.now(), answer });
}

export const get = <T = any>(path: string): Promise<T> => {
  const e = early.get(path);
  if (e) {
    early.delete(path);
    if (Date.now() - e.at < 5000) return e.answer;
  }
  return api<T>('GET', path);
};

/** Every workflow definition (latest version of each): the first page (as prefetched), then the rest by cursor. */
export async function allDefinitions(): Promise<any[]> {
  let page = await get('/api/v1/workflows/definitions');
  const out: any[] = [...page.definitions];
  while (page.next_cursor) {
    page = await get(`/api/v1/workflows/definitions?limit=200&cursor=${encodeURIComponent(page.next_cursor)}`);
    out.push(...page.definitions);
  }
  return out;
}

/** Check a key with the whoami route; keep it only when the gateway accepts it. */
export async function signIn(key: string): Promise<Who> {
  sessionStorage.setItem(KEY, key.trim());
  try {
    const w = await api<Who>('GET', '/api/v1/auth/whoami');
    who.value = w;
    return w;
  } catch (e) {
    sessionStorage.removeItem(KEY);
    throw e;
  }
}

/** On load: the key of this tab's session, if it is still good. */
export async function restore(): Promise<void> {
  if (!storedKey()) return;
  try {
    who.value = await api<Who>('GET', '/api/v1/auth/whoami');
  } catch {
    sessionStorage.removeItem(KEY);
  }
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
  who.value = null;
}

/** An event as the API shows it. */
export interface EventJson {
  readonly id: string;
  readonly streamId: string;
  readonly type: string;
  readonly revision: number;
  readonly position: number;
  readonly recordedAt: string;
  readonly data: any;
  readonly metadata: Record<string, any>;
}

type Listener = (e: EventJson) => void;
const listeners = new Set<Listener>();
export const liveState = signal<'connecting' | 'live' | 'down'>('connecting');
let running: AbortController | null = null;

/** Subscribe to the live event stream; returns the unsubscribe. */
export function onEvent(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

/**
 * The gateway's SSE stream, read with fetch because EventSource cannot send the
 * Authorization header. Reconnects with Last-Event-ID, so nothing is missed across drops.
 */
export function startLive(): void {
  if (running) return;
  const ctl = new AbortController();
  running = ctl;
  let last: string | undefined;
  void (async () => {
    while (!ctl.signal.aborted) {
      try {
        liveState.value = 'connecting';
        const res = await fetch('/api/v1/events/stream', {
          headers: headers({ accept: 'text/event-stream', ...(last ? { 'last-event-id': last } : {}) }),
          signal: ctl.signal,
        });
        if (!res.ok || !res.body) throw new Error(`stream: HTTP ${res.status}`);
        liveState.value = 'live';
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let data = '';
            let id: string | undefined;
            for (const line of block.split('\n')) {
              if (line.startsWith('data:')) data += (data ? '\n' : '') + line.slice(5).replace(/^ /, '');
              else if (line.startsWith('id:')) id = line.slice(3).trim();
            }
            if (!data) continue;
            if (id) last = id;
            try {
              const ev = JSON.parse(data) as EventJson;
              for (const l of listeners) l(ev);
            } catch {
              /* not an event (a comment or a malformed line): skip */
            }
          }
        }
      } catch {
        if (ctl.signal.aborted) return;
      }
      liveState.value = 'down';
      await new Promise((r) => setTimeout(r, 1500));
    }
  })();
}

export function stopLive(): void {
  running?.abort();
  running = null;
}

/** Compact display helpers. */
export const fmtMs = (ms: number | null | undefined): string =>
  ms === null || ms === undefined
    ? '–'
    : ms < 1000
      ? `${Math.round(ms)} ms`
      : ms < 60_000
        ? `${(ms / 1000).toFixed(1)} s`
        : `${(ms / 60_000).toFixed(1)} min`;
export const fmtTime = (iso: string | null | undefined): string => (iso ? new Date(iso).toLocaleTimeString() : '–');
export const fmtPct = (x: number | null | undefined, digits = 1): string =>
  x === null || x === undefined ? '–' : `${x.toFixed(digits)} %`;
export const json = (v: unknown): string => JSON.stringify(v, null, 2);
