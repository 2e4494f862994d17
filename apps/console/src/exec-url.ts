/** The executions list's filters and its first page's URL (shared by the list and the page-load prefetch). */
export interface ExecFilters {
  readonly status: string;
  readonly template: string;
  readonly since: string;
}

export const NO_FILTERS: ExecFilters = { status: '', template: '', since: '' };

/** Rows a page of the list holds. */
export const PAGE_SIZE = 20;

/** The first page's URL for these filters. */
export function firstPageUrl(f: ExecFilters): string {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (f.status) q.set('status', f.status);
  if (f.template) q.set('template', f.template);
  // datetime-local is the browser's local time; the API takes ISO-8601.
  if (f.since && !Number.isNaN(Date.parse(f.since))) q.set('started_after', new Date(f.since).toISOString());
  return `/api/v1/workflows/executions?${q}`;
}
