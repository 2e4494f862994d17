import { useEffect, useState } from 'preact/hooks';
import { allDefinitions, api, can, json } from '../api';
import { Dag } from '../dag';
import { ErrorNote } from '../ui';

const EXAMPLE = {
  id: 'my_workflow',
  version: 1,
  name: 'My workflow',
  description: 'Count customers, then analyse revenue',
  input: { type: 'object', properties: { timeframe: { type: 'string', default: '30d' } } },
  steps: [
    { id: 'count', uses: 'mcp:database/query', with: { sql: 'select count(*) as n from business.customers' } },
    { id: 'analyze', uses: 'agent:revenue_analysis', needs: ['count'], with: { timeframe: '${{ input.timeframe }}' } },
  ],
};

interface Problem {
  readonly path: string;
  readonly message: string;
  readonly code?: string;
}

export function DesignerPage() {
  const [text, setText] = useState(json(EXAMPLE));
  const [parseError, setParseError] = useState<string | null>(null);
  const [problems, setProblems] = useState<Problem[] | null>(null);
  const [parsed, setParsed] = useState<any>(EXAMPLE);
  const [defs, setDefs] = useState<any[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [registered, setRegistered] = useState<any>(null);
  const [registerError, setRegisterError] = useState<unknown>(null);
  // YAML is optional: its parser is loaded the first time someone switches to it.
  const [yamlLib, setYamlLib] = useState<typeof import('yaml') | null>(null);
  const format = yamlLib ? 'yaml' : 'json';
  const parseText = (t: string): unknown => (yamlLib ? yamlLib.parse(t) : JSON.parse(t));
  const show = (v: unknown): string => (yamlLib ? yamlLib.stringify(v) : json(v));
  useEffect(() => {
    allDefinitions().then(setDefs, setError);
  }, []);
  // Live validation by the server's own validator, a moment after the last keystroke.
  useEffect(() => {
    let body: any;
    try {
      body = parseText(text);
      setParseError(null);
      setParsed(body);
    } catch (e) {
      setParseError((e as Error).message);
      setProblems(null);
      return;
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      setParseError('a definition is a JSON object');
      return;
    }
    const t = setTimeout(() => {
      api('POST', '/api/v1/workflows/definitions/validate', body).then((r) => setProblems(r.errors), setError);
    }, 400);
    return () => clearTimeout(t);
  }, [text, yamlLib]);
  const steps = Array.isArray(parsed?.steps)
    ? parsed.steps
        .filter((s: any) => s && typeof s.id === 'string')
        .map((s: any) => ({
          id: s.id,
          needs: Array.isArray(s.needs) ? s.needs.filter((x: unknown) => typeof x === 'string') : [],
          uses: s.uses,
        }))
    : [];
  return (
    <section>
      <h1>Designer</h1>
      <ErrorNote error={error} />
      <div class="field">
        <label for="load-def">start from</label>
        <select
          id="load-def"
          onChange={(e) => {
            const id = (e.target as HTMLSelectElement).value;
            const d = defs.find((x) => x.id === id);
            if (d) {
              const { source: _s, created_at: _c, ...def } = d;
              setText(show({ ...def, version: def.version + 1 }));
            } else setText(show(EXAMPLE));
            setRegistered(null);
          }}
        >
          <option value="">example</option>
          {defs.map((d) => (
            <option value={d.id}>
              {d.id} v{d.version} (as v{d.version + 1})
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="format">format</label>
        <select
          id="format"
          value={format}
          onChange={async (e) => {
            const want = (e.target as HTMLSelectElement).value;
            if (want === format || parseError) return;
            const value = parseText(text);
            if (want === 'yaml') {
              const lib = await import('yaml');
              setYamlLib(lib);
              setText(lib.stringify(value));
            } else {
              setYamlLib(null);
              setText(json(value));
            }
          }}
        >
          <option value="json">JSON</option>
          <option value="yaml">YAML</option>
        </select>
      </div>
      <div class="split">
        <div>
          <label for="definition">definition ({format === 'yaml' ? 'YAML' : 'JSON'})</label>
          <textarea
            id="definition"
            class="code editor"
            spellcheck={false}
            rows={28}
            value={text}
            aria-describedby="validation"
            onInput={(e) => {
              setText((e.target as HTMLTextAreaElement).value);
              setRegistered(null);
              setRegisterError(null);
            }}
          />
          <div id="validation" data-testid="validation" aria-live="polite">
            {parseError ? (
              <p class="error">
                {format === 'yaml' ? 'YAML' : 'JSON'}: {parseError}
              </p>
            ) : problems === null ? (
              <p class="muted">validating…</p>
            ) : problems.length === 0 ? (
              <p class="ok">valid</p>
            ) : (
              <ul class="problems">
                {problems.map((p) => (
                  <li class="error">
                    <code>{p.path}</code>: {p.message}
                  </li>
                ))}
              </ul>
            )}
          </div>
          {can('admin') ? (
            <button
              type="button"
              disabled={!!parseError}
              onClick={async () => {
                setRegisterError(null);
                setRegistered(null);
                try {
                  setRegistered(await api('POST', '/api/v1/workflows/definitions', parseText(text)));
                } catch (e) {
                  setRegisterError(e);
                }
              }}
            >
              Register as new version
            </button>
          ) : (
            <p class="muted">Registering needs an admin key.</p>
          )}
          <ErrorNote error={registerError} />
          {registered ? (
            <p class="ok" role="status">
              Registered {registered.definition.id} v{registered.definition.version}
              {registered.created ? '' : ' (it existed already)'}
            </p>
          ) : null}
        </div>
        <div>
          <h2>Preview</h2>
          <Dag steps={steps} label="definition preview" />
        </div>
      </div>
    </section>
  );
}
