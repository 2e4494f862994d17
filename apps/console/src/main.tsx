import { render, type ComponentType } from 'preact';
import { useEffect, useLayoutEffect, useState } from 'preact/hooks';
import './style.css';
import { ApiError, liveState, prefetch, restore, signIn, signOut, startLive, stopLive, useCell, who } from './api';
import { route, navigate, Link } from './router';
import { Overview } from './pages/overview';
import { ErrorNote } from './ui';
import { firstPageUrl, NO_FILTERS } from './exec-url';

/**
 * A page loaded on first use: the overview (the first page most sessions see) is in the main
 * chunk, the others (with dagre, uPlot and the schema forms) are chunks of their own, so the
 * overview does not wait for code it does not draw. They load in the background once the
 * overview is up, so moving to another page seldom waits either.
 */
function lazyPage<P extends object>(
  load: () => Promise<ComponentType<P>>,
): { Page: (p: P) => any; preload: () => Promise<unknown> } {
  let C: ComponentType<P> | null = null;
  let loading: Promise<unknown> | null = null;
  // A failed load (the gateway restarting, say) is forgotten, so the next visit asks again.
  const preload = () =>
    (loading ??= load().then(
      (c) => void (C = c),
      (e) => {
        loading = null;
        throw e;
      },
    ));
  function Page(props: P) {
    const [error, setError] = useState<unknown>(null);
    const [, setLoaded] = useState(false);
    // Once per mount (a failed load is tried again on the next visit, not in a loop).
    useLayoutEffect(() => {
      if (!C) preload().then(() => setLoaded(true), setError);
    }, []);
    if (C) return <C {...props} />;
    return error ? <ErrorNote error={error} /> : <p aria-busy="true">Loading…</p>;
  }
  return { Page, preload };
}
const Mcp = lazyPage(() => import('./pages/mcp').then((m) => m.McpPage));
const Agents = lazyPage(() => import('./pages/agents').then((m) => m.AgentsPage));
const Workflows = lazyPage(() => import('./pages/workflows').then((m) => m.WorkflowsPage));
const Execution = lazyPage(() => import('./pages/workflows').then((m) => m.ExecutionPage));
const Designer = lazyPage(() => import('./pages/designer').then((m) => m.DesignerPage));
const System = lazyPage(() => import('./pages/system').then((m) => m.SystemPage));
const Events = lazyPage(() => import('./pages/events').then((m) => m.EventsPage));
const LAZY = [Mcp, Agents, Workflows, Execution, Designer, System, Events];

const NAV: [string, string][] = [
  ['/ui/', 'Overview'],
  ['/ui/mcp', 'MCP servers'],
  ['/ui/agents', 'Agents'],
  ['/ui/workflows', 'Workflows'],
  ['/ui/designer', 'Designer'],
  ['/ui/system', 'System'],
  ['/ui/events', 'Events'],
];

function SignIn() {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main class="signin">
      <h1>Switchyard console</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            await signIn(key);
          } catch (err) {
            setError(
              err instanceof ApiError && err.status === 401
                ? 'The gateway does not accept this key.'
                : (err as Error).message,
            );
          } finally {
            setBusy(false);
          }
        }}
      >
        <label for="apikey">API key</label>
        <input
          id="apikey"
          name="apikey"
          type="password"
          autoComplete="off"
          placeholder="sy_…"
          value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
          required
        />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}
        <p class="muted">
          The key is kept in this tab's session storage only. Create one with{' '}
          <code>node apps/gateway/dist/security/cli.js create --role operator --name me</code>.
        </p>
      </form>
    </main>
  );
}

function Page({ path }: { path: string }) {
  const m = /^\/ui\/workflows\/executions\/([^/]+)$/.exec(path);
  if (m) return <Execution.Page id={decodeURIComponent(m[1]!)} />;
  switch (path.replace(/\/+$/, '') || '/ui') {
    case '/ui':
      return <Overview />;
    case '/ui/mcp':
      return <Mcp.Page />;
    case '/ui/agents':
      return <Agents.Page />;
    case '/ui/workflows':
      return <Workflows.Page />;
    case '/ui/designer':
      return <Designer.Page />;
    case '/ui/system':
      return <System.Page />;
    case '/ui/events':
      return <Events.Page />;
    default:
      return (
        <section>
          <h1>Not found</h1>
          <p>
            No page at <code>{path}</code>. <Link href="/ui/">Overview</Link>
          </p>
        </section>
      );
  }
}

function App() {
  const w = useCell(who);
  const path = useCell(route);
  const live = useCell(liveState);
  const [ready, setReady] = useState(false);
  useEffect(() => {
    void restore().finally(() => setReady(true));
  }, []);
  useEffect(() => {
    if (w) startLive();
    else stopLive();
    if (!w) return;
    // The other pages' code, once this one has had its turn.
    const t = setTimeout(() => {
      for (const l of LAZY) l.preload().catch(() => undefined);
    }, 1500);
    return () => clearTimeout(t);
  }, [w]);
  if (!ready)
    return (
      <main aria-busy="true">
        <p>Loading…</p>
      </main>
    );
  if (!w) return <SignIn />;
  const current = path.replace(/\/+$/, '') || '/ui';
  return (
    <div class="layout">
      <header>
        <span class="brand">Switchyard</span>
        <nav aria-label="Pages">
          {NAV.map(([href, label]) => {
            const h = href.replace(/\/+$/, '');
            const active = current === h || (h !== '/ui' && current.startsWith(`${h}/`));
            return (
              <Link href={href} aria-current={active ? 'page' : undefined} class={active ? 'active' : ''}>
                {label}
              </Link>
            );
          })}
        </nav>
        <span class="who" data-testid="who">
          <span class={`live ${live}`} title={`event stream ${live}`}>
            ● {live}
          </span>{' '}
          {w.name ?? w.id ?? 'auth off'} ({w.role})
          <button
            type="button"
            class="link"
            onClick={() => {
              signOut();
              navigate('/ui/');
            }}
          >
            Sign out
          </button>
        </span>
      </header>
      <main>
        <Page path={path} />
      </main>
    </div>
  );
}

// With a key in this tab's session, the sign-in check, the current page's code and (on the
// overview and the workflows page) its first calls go out side by side rather than one after the other.
if (sessionStorage.getItem('switchyard.apiKey')) {
  const p = location.pathname.replace(/\/+$/, '') || '/ui';
  if (p === '/ui')
    [
      '/api/v1/integration/status',
      '/api/v1/workflows/executions?status=running&limit=20',
      '/api/v1/workflows/executions?limit=10',
    ].forEach(prefetch);
  else if (p === '/ui/workflows') {
    void Workflows.preload().catch(() => undefined);
    ['/api/v1/workflows/definitions', firstPageUrl(NO_FILTERS)].forEach(prefetch);
  } else if (p.startsWith('/ui/workflows/executions/')) void Execution.preload().catch(() => undefined);
}
render(<App />, document.getElementById('app')!);
