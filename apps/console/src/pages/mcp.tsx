import { useEffect, useState } from 'preact/hooks';
import { api, can, get, fmtMs } from '../api';
import { useLive } from '../router';
import { initialValue, SchemaForm, type Schema } from '../schema-form';
import { ErrorNote, Json, StatusBadge } from '../ui';

export function McpPage() {
  const [servers, setServers] = useState<any[]>([]);
  const [server, setServer] = useState<string | null>(null);
  const [tools, setTools] = useState<any[]>([]);
  const [tool, setTool] = useState<string | null>(null);
  const [args, setArgs] = useState<Record<string, unknown>>({});
  const [result, setResult] = useState<unknown>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useLive(
    async () => {
      try {
        const h = await get('/api/v1/integration/mcp/health');
        setServers(h.servers);
      } catch (e) {
        setError(e);
      }
    },
    (e) => e.streamId.startsWith('mcpserver-') && !e.type.startsWith('McpTool'),
    [],
  );
  // The form starts again when a tool is picked, in the same update as the pick: an effect ran
  // after the next paint, and on a busy machine what was typed by then was wiped.
  const pick = (next: { name: string; input_schema?: unknown } | null) => {
    if (next && next.name === tool) return; // the same tool again keeps what was typed
    setTool(next?.name ?? null);
    setArgs(initialValue(next?.input_schema as Schema));
    setResult(undefined);
  };
  useEffect(() => {
    if (!server) return;
    setTools([]);
    pick(null);
    get(`/api/v1/integration/mcp/tools/${encodeURIComponent(server)}`).then((r) => setTools(r.tools), setError);
  }, [server]);
  const selected = tools.find((t) => t.name === tool);
  return (
    <section>
      <h1>MCP servers</h1>
      <ErrorNote error={error} />
      <table>
        <thead>
          <tr>
            <th scope="col">server</th>
            <th scope="col">transport</th>
            <th scope="col">state</th>
            <th scope="col">breaker</th>
            <th scope="col">in flight</th>
            <th scope="col">probe</th>
            <th scope="col">tools</th>
          </tr>
        </thead>
        <tbody>
          {servers.map((s) => (
            <tr key={s.server} data-server={s.server} class={server === s.server ? 'selected' : ''}>
              <td>
                <button
                  type="button"
                  class="link"
                  onClick={() => setServer(s.server)}
                  aria-pressed={server === s.server}
                >
                  {s.server}
                </button>
              </td>
              <td>{s.transport}</td>
              <td>
                <StatusBadge status={s.state} />
              </td>
              <td>
                <StatusBadge status={s.breaker} />
              </td>
              <td>{s.queue?.in_flight ?? 0}</td>
              <td>{fmtMs(s.response_ms)}</td>
              <td>{s.tools?.length ?? 0}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {server ? (
        <div class="split">
          <div>
            <h2>Tools of {server}</h2>
            {tools.length === 0 ? <p class="muted">loading…</p> : null}
            <ul class="tools">
              {tools.map((t) => (
                <li>
                  <button
                    type="button"
                    class="link"
                    data-tool={t.name}
                    aria-pressed={tool === t.name}
                    onClick={() => pick(t)}
                  >
                    {t.name}
                  </button>
                  {t.description ? <small> {t.description.slice(0, 120)}</small> : null}
                </li>
              ))}
            </ul>
          </div>
          {selected ? (
            <div>
              <h2>
                Call <bdi>{server}</bdi> / <bdi>{selected.name}</bdi>
              </h2>
              {selected.description ? <p>{selected.description}</p> : null}
              <details>
                <summary>input schema</summary>
                <Json value={selected.input_schema} label="input schema" />
              </details>
              <form
                data-testid="tool-form"
                onSubmit={async (e) => {
                  e.preventDefault();
                  setBusy(true);
                  setError(null);
                  setResult(undefined);
                  try {
                    setResult(
                      await api('POST', '/api/v1/integration/mcp/call', {
                        server,
                        tool: selected.name,
                        arguments: args,
                      }),
                    );
                  } catch (err) {
                    setError(err);
                  } finally {
                    setBusy(false);
                  }
                }}
              >
                <SchemaForm schema={selected.input_schema as Schema} value={args} onChange={setArgs} />
                {can('operator') ? (
                  <button type="submit" disabled={busy}>
                    Call tool
                  </button>
                ) : (
                  <p class="muted">Calling tools needs an operator key.</p>
                )}
              </form>
              {result !== undefined ? (
                <div data-testid="tool-result">
                  <h3>Result</h3>
                  <Json value={result} label="tool result" />
                </div>
              ) : null}
            </div>
          ) : null}
        </div>
      ) : (
        <p class="muted">Pick a server to see its tools.</p>
      )}
    </section>
  );
}
