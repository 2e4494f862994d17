/**
 * The Workflows page's executions list: status, workflow and "started after" filters and keyset
 * paging over `GET /api/v1/workflows/executions` (the API's `next` link).
 *
 * A page change must draw its rows within the click's own frame or two, so:
 *  - the list is its own component: a page change re-renders the table and the pager only, not
 *    the definitions, the DAG or the start form around it;
 *  - the request starts in the click (or filter) handler, not in an effect after the next paint;
 *  - the page after the one shown is fetched as soon as a page is drawn, and visited pages are
 *    kept, so "Next page" and "Previous page" usually draw from memory without waiting on the API;
 *  - the kept pages are dropped when a workflow event arrives (the shown page is then re-read) and
 *    on the 15 s safety poll, so memory never shows a page older than the live stream knows;
 *  - an answer for a page that is no longer wanted (the user clicked on) is dropped, so a late
 *    answer never replaces newer rows.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { get } from '../api';
import { useLive } from '../router';
import { ErrorNote } from '../ui';
import { ExecTable } from './overview';
import { firstPageUrl, NO_FILTERS, type ExecFilters } from '../exec-url';

/** One page as the API answers it. */
export interface ExecPage {
  readonly items: readonly any[];
  readonly next: string | null;
}

/** Pages kept in memory at most (a long walk through the list does not grow without bound). */
const KEEP = 50;

/**
 * Pages by URL: an in-flight request is shared (a click on a page being prefetched waits for
 * that request instead of sending another), an answered one is kept until `clear`.
 */
class PageCache {
  private readonly pending = new Map<string, Promise<ExecPage>>();
  private readonly done = new Map<string, ExecPage>();
  private generation = 0;

  /** The page if it is in memory. */
  peek(url: string): ExecPage | undefined {
    return this.done.get(url);
  }

  /** The page, from memory or from the API. */
  load(url: string): Promise<ExecPage> {
    const hit = this.done.get(url);
    if (hit) return Promise.resolve(hit);
    let p = this.pending.get(url);
    if (!p) {
      const gen = this.generation;
      p = get<ExecPage>(url).then(
        (page) => {
          // An answer that started before a `clear` may predate the event that cleared it: not kept.
          if (gen === this.generation) {
            this.pending.delete(url);
            this.done.set(url, page);
            if (this.done.size > KEEP) this.done.delete(this.done.keys().next().value!);
          }
          return page;
        },
        (e) => {
          if (gen === this.generation) this.pending.delete(url);
          throw e;
        },
      );
      this.pending.set(url, p);
    }
    return p;
  }

  clear(): void {
    this.generation++;
    this.pending.clear();
    this.done.clear();
  }
}

export function ExecutionsList({ defs }: { defs: readonly { id: string }[] }) {
  const [filters, setFilters] = useState<ExecFilters>(NO_FILTERS);
  // The URLs of the pages after the first one walked to, for "Previous page".
  const [trail, setTrail] = useState<string[]>([]);
  const [shown, setShown] = useState<{ url: string; page: ExecPage } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const cache = useRef(new PageCache()).current;
  const wanted = useRef(firstPageUrl(filters));

  // The latest `show`: only its answer may draw (a slower, older request never replaces it).
  const latest = useRef(0);

  /** Draw `url`: from memory in this very render when it is there, else as soon as the API answers. */
  const show = (url: string) => {
    wanted.current = url;
    const ticket = ++latest.current;
    const hit = cache.peek(url);
    if (hit) {
      setShown({ url, page: hit });
      setError(null);
      return;
    }
    cache.load(url).then(
      (page) => {
        if (latest.current !== ticket) return;
        setShown({ url, page });
        setError(null);
      },
      (e) => latest.current === ticket && setError(e),
    );
  };

  // First load, a workflow event (at most once a second) and the safety poll: forget the kept
  // pages and re-read the one shown.
  useLive(
    () => {
      cache.clear();
      show(wanted.current);
    },
    (e) =>
      e.streamId.startsWith('workflow_execution-') && (e.type.startsWith('Workflow') || e.type === 'ExecutionCanceled'),
    [],
    1000,
  );

  // The page after the drawn one, ahead of the click.
  const next = shown?.page.next ?? null;
  useEffect(() => {
    if (next) cache.load(next).catch(() => undefined /* the click will ask again and show the error */);
  }, [next, shown]);

  const setFilter = (patch: Partial<ExecFilters>) => {
    const f = { ...filters, ...patch };
    setFilters(f);
    setTrail([]);
    show(firstPageUrl(f));
  };
  const page = shown?.page ?? { items: [], next: null };
  // Until the wanted page's answer is in, the previous rows stay and the pager waits for it.
  const loading = shown?.url !== wanted.current;
  return (
    <>
      <h2>Executions</h2>
      <ErrorNote error={error} />
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="f-status">status</label>
          <select
            id="f-status"
            value={filters.status}
            onChange={(e) => setFilter({ status: (e.target as HTMLSelectElement).value })}
          >
            <option value="">any</option>
            {['running', 'canceling', 'completed', 'failed', 'canceled'].map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-template">workflow</label>
          <select
            id="f-template"
            value={filters.template}
            onChange={(e) => setFilter({ template: (e.target as HTMLSelectElement).value })}
          >
            <option value="">any</option>
            {defs.map((d) => (
              <option value={d.id}>{d.id}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-since">started after</label>
          <input
            id="f-since"
            type="datetime-local"
            value={filters.since}
            onChange={(e) => setFilter({ since: (e.target as HTMLInputElement).value })}
          />
        </div>
      </form>
      <div aria-busy={loading}>
        <ExecTable items={page.items as any[]} />
      </div>
      <div class="pager">
        <button
          type="button"
          disabled={loading || trail.length === 0}
          onClick={() => {
            const t = trail.slice(0, -1);
            setTrail(t);
            show(t[t.length - 1] ?? firstPageUrl(filters));
          }}
        >
          Previous page
        </button>
        <span class="muted">page {trail.length + 1}</span>
        <button
          type="button"
          disabled={loading || !page.next}
          onClick={() => {
            if (!page.next) return;
            setTrail([...trail, page.next]);
            show(page.next);
          }}
        >
          Next page
        </button>
      </div>
    </>
  );
}
