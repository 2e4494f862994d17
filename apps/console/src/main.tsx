import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './style.css';
import { ApiError, liveState, restore, signIn, signOut, startLive, stopLive, useCell, who } from './api';
import { route, navigate, Link } from './router';
import { Overview } from './pages/overview';
import { McpPage } from './pages/mcp';
import { AgentsPage } from './pages/agents';
import { WorkflowsPage, ExecutionPage } from './pages/workflows';
import { DesignerPage } from './pages/designer';
import { SystemPage } from './pages/system';
import { EventsPage } from './pages/events';

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
            setError(err instanceof ApiError && err.status === 401 ? 'The gateway does not accept this key.' : (err as Error).message);
          } finally {
            setBusy(false);
          }
        }}>
        <label for="apikey">API key</label>
        <input id="apikey" name="apikey" type="password" autoComplete="off" placeholder="sy_…" value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} required />
        <button type="submit" disabled={busy}>Sign in</button>
        {error ? <p class="error" role="alert">{error}</p> : null}
        <p class="muted">The key is kept in this tab's session storage only. Create one with <code>node apps/gateway/dist/security/cli.js create --role operator --name me</code>.</p>
      </form>
    </main>
  );
}

function Page({ path }: { path: string }) {
  const m = /^\/ui\/workflows\/executions\/([^/]+)$/.exec(path);
  if (m) return <ExecutionPage id={decodeURIComponent(m[1]!)} />;
  switch (path.replace(/\/+$/, '') || '/ui') {
    case '/ui':
      return <Overview />;
    case '/ui/mcp':
      return <McpPage />;
    case '/ui/agents':
      return <AgentsPage />;
    case '/ui/workflows':
      return <WorkflowsPage />;
    case '/ui/designer':
      return <DesignerPage />;
    case '/ui/system':
      return <SystemPage />;
    case '/ui/events':
      return <EventsPage />;
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
  }, [w]);
  if (!ready) return <main aria-busy="true"><p>Loading…</p></main>;
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
          <span class={`live ${live}`} title={`event stream ${live}`}>● {live}</span> {w.name ?? w.id ?? 'auth off'} ({w.role})
          <button type="button" class="link" onClick={() => { signOut(); navigate('/ui/'); }}>Sign out</button>
        </span>
      </header>
      <main>
        <Page path={path} />
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);
