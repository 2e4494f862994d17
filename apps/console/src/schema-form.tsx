/**
 * A small JSON-schema form: strings, numbers, integers, booleans, enums and nested objects get
 * their own controls; anything else (arrays, unions, free objects) is edited as JSON. Defaults
 * fill the first value; empty optional fields are left out of the result.
 */
import { useState } from 'preact/hooks';

export type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  description?: string;
  title?: string;
  [k: string]: unknown;
};

const typeOf = (s: Schema): string | undefined => (Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type);

/** The first value of a form: defaults where the schema has them. */
export function initialValue(schema: Schema | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, p] of Object.entries(schema?.properties ?? {})) {
    if (p.default !== undefined) out[k] = p.default;
    else if (typeOf(p) === 'object' && p.properties) out[k] = initialValue(p);
  }
  return out;
}

let seq = 0;

interface FieldProps {
  readonly name: string;
  readonly path: string;
  readonly schema: Schema;
  readonly required: boolean;
  readonly value: unknown;
  readonly onChange: (v: unknown) => void;
}

function Field({ name, path, schema, required, value, onChange }: FieldProps) {
  const [id] = useState(() => `f${++seq}`);
  const [jsonText, setJsonText] = useState(() => (value === undefined ? '' : JSON.stringify(value, null, 2)));
  const [jsonError, setJsonError] = useState<string | null>(null);
  const t = typeOf(schema);
  const label = (
    <label for={id}>
      {schema.title ?? name}
      {required ? <span aria-hidden="true"> *</span> : null}
    </label>
  );
  const help = schema.description ? <small id={`${id}-help`}>{schema.description}</small> : null;
  const described = schema.description ? { 'aria-describedby': `${id}-help` } : {};
  if (schema.enum) {
    return (
      <div class="field">
        {label}
        <select
          id={id}
          name={path}
          data-field={path}
          required={required}
          value={value === undefined ? '' : String(value)}
          {...described}
          onChange={(e) => {
            const raw = (e.target as HTMLSelectElement).value;
            onChange(raw === '' ? undefined : schema.enum!.find((x) => String(x) === raw));
          }}
        >
          {required ? null : <option value="">(none)</option>}
          {schema.enum.map((o) => (
            <option value={String(o)}>{String(o)}</option>
          ))}
        </select>
        {help}
      </div>
    );
  }
  if (t === 'boolean') {
    return (
      <div class="field check">
        <input
          id={id}
          type="checkbox"
          name={path}
          data-field={path}
          checked={value === true}
          onChange={(e) => onChange((e.target as HTMLInputElement).checked)}
          {...described}
        />
        {label}
        {help}
      </div>
    );
  }
  if (t === 'number' || t === 'integer') {
    return (
      <div class="field">
        {label}
        <input
          id={id}
          type="number"
          name={path}
          data-field={path}
          required={required}
          step={t === 'integer' ? 1 : 'any'}
          value={value === undefined ? '' : String(value)}
          {...described}
          onInput={(e) => {
            const raw = (e.target as HTMLInputElement).value;
            onChange(raw === '' ? undefined : Number(raw));
          }}
        />
        {help}
      </div>
    );
  }
  if (t === 'string') {
    const long = typeof schema.maxLength === 'number' && schema.maxLength > 500;
    const common = {
      id,
      name: path,
      'data-field': path,
      required,
      value: value === undefined ? '' : String(value),
      ...described,
    };
    const onInput = (e: Event) => {
      const raw = (e.target as HTMLInputElement).value;
      onChange(raw === '' ? undefined : raw);
    };
    return (
      <div class="field">
        {label}
        {long ? (
          <textarea rows={3} {...common} onInput={onInput} />
        ) : (
          <input type="text" {...common} onInput={onInput} />
        )}
        {help}
      </div>
    );
  }
  if (t === 'object' && schema.properties) {
    return (
      <fieldset class="field">
        <legend>{schema.title ?? name}</legend>
        {help}
        <Fields schema={schema} prefix={path} value={(value as Record<string, unknown>) ?? {}} onChange={onChange} />
      </fieldset>
    );
  }
  return (
    <div class="field">
      {label}
      <textarea
        id={id}
        rows={4}
        class="code"
        name={path}
        data-field={path}
        value={jsonText}
        {...described}
        aria-invalid={jsonError ? 'true' : 'false'}
        onInput={(e) => {
          const raw = (e.target as HTMLTextAreaElement).value;
          setJsonText(raw);
          if (raw.trim() === '') {
            setJsonError(null);
            onChange(undefined);
            return;
          }
          try {
            onChange(JSON.parse(raw));
            setJsonError(null);
          } catch (err) {
            setJsonError(`not JSON: ${(err as Error).message}`);
          }
        }}
      />
      <small>JSON{t ? ` (${t})` : ''}</small>
      {jsonError ? (
        <small class="error" role="alert">
          {jsonError}
        </small>
      ) : null}
      {help}
    </div>
  );
}

function Fields({
  schema,
  prefix,
  value,
  onChange,
}: {
  schema: Schema;
  prefix: string;
  value: Record<string, unknown>;
  onChange: (v: Record<string, unknown>) => void;
}) {
  const req = new Set(schema.required ?? []);
  return (
    <>
      {Object.entries(schema.properties ?? {}).map(([k, p]) => (
        <Field
          key={k}
          name={k}
          path={prefix ? `${prefix}.${k}` : k}
          schema={p}
          required={req.has(k)}
          value={value[k]}
          onChange={(v) => {
            const next = { ...value };
            if (v === undefined) delete next[k];
            else next[k] = v;
            onChange(next);
          }}
        />
      ))}
    </>
  );
}

/** The form of an object schema; a schema without properties is one JSON field. */
export function SchemaForm({
  schema,
  value,
  onChange,
}: {
  schema: Schema | undefined;
  value: Record<string, unknown>;
  onChange: (v: Record<string, unknown>) => void;
}) {
  if (!schema || !schema.properties) {
    return (
      <Field
        name="input (JSON object)"
        path="$json"
        schema={{}}
        required={false}
        value={value}
        onChange={(v) => onChange((v as Record<string, unknown>) ?? {})}
      />
    );
  }
  return <Fields schema={schema} prefix="" value={value} onChange={onChange} />;
}
