import { AppError } from '@switchyard/platform';

/**
 * The seed's database endpoint takes `{"query": "... :customer_id ...", "params": {"customer_id": 7}}`;
 * the database MCP server takes positional `$1..$n` parameters only (never string-built SQL).
 * This rewrites each `:name` placeholder to `$n` and returns the values in order. It skips
 * string literals, quoted identifiers, comments, dollar-quoted bodies and `::` casts, so a
 * `:word` inside any of those is left alone. Values are never spliced into the SQL.
 */
export function namedToPositional(
  sql: string,
  params: Readonly<Record<string, unknown>>,
): { sql: string; params: unknown[] } {
  const order = new Map<string, number>();
  let out = '';
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    const next = sql[i + 1];
    // 1. Regions where a colon means nothing: copy them through untouched.
    if (c === "'" || c === '"') {
      const end = closingQuote(sql, i, c);
      out += sql.slice(i, end);
      i = end;
      continue;
    }
    if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end === -1 ? n : end;
      out += sql.slice(i, stop);
      i = stop;
      continue;
    }
    if (c === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2);
      const stop = end === -1 ? n : end + 2;
      out += sql.slice(i, stop);
      i = stop;
      continue;
    }
    if (c === '$') {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        const stop = end === -1 ? n : end + tag[0].length;
        out += sql.slice(i, stop);
        i = stop;
        continue;
      }
    }
    // 2. `::type` casts stay as they are.
    if (c === ':' && next === ':') {
      out += '::';
      i += 2;
      continue;
    }
    // 3. A `:name` placeholder becomes `$n` (same name, same number).
    if (c === ':' && next !== undefined && /[A-Za-z_]/.test(next)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i + 1))!;
      const name = m[0];
      if (!Object.prototype.hasOwnProperty.call(params, name)) {
        throw new AppError('validation', `the query uses :${name} but params has no "${name}"`, {
          errors: [{ path: `params.${name}`, message: 'missing parameter' }],
        });
      }
      if (!order.has(name)) order.set(name, order.size + 1);
      out += `$${order.get(name)}`;
      i += 1 + name.length;
      continue;
    }
    out += c;
    i++;
  }
  const unused = Object.keys(params).filter((k) => !order.has(k));
  if (unused.length > 0) {
    throw new AppError('validation', `params not used by the query: ${unused.join(', ')}`, {
      errors: unused.map((k) => ({ path: `params.${k}`, message: 'not used by the query' })),
    });
  }
  return { sql: out, params: [...order.keys()].map((k) => params[k]) };
}

/** Index just past the quote that closes the one at `start` (a doubled quote is an escaped one). */
function closingQuote(sql: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < sql.length) {
    if (sql[i] === quote) {
      if (sql[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return sql.length;
}
