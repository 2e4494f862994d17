import { AppError } from '@switchyard/platform';

/**
 * Vets one SQL statement for the database MCP server with PostgreSQL's own parser (libpg-query)
 * before it reaches the server. The database role (SELECT on the demo schema only) and the
 * READ ONLY transaction are the real limits; this is the layer in front of them that refuses
 * what a query tool never needs: more than one statement, DO blocks, COPY, CALL, DDL, session
 * and transaction control, SELECT INTO, writes on the read-only server, and any function
 * outside a list of pure built-ins (so pg_read_file, lo_import, dblink, set_config ... are
 * refused whatever the role may do).
 */

/** Statement kinds that would end the call's transaction or change the pooled session. */
const SESSION_KINDS = new Set([
  'TransactionStmt',
  'VariableSetStmt',
  'VariableShowStmt',
  'DiscardStmt',
  'ListenStmt',
  'UnlistenStmt',
  'PrepareStmt',
  'ExecuteStmt',
  'DeallocateStmt',
  'LoadStmt',
  'CheckPointStmt',
  'VacuumStmt',
]);

const WRITE_KINDS = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** Pure built-in functions a query may call (unqualified or in pg_catalog). Everything else is refused. */
export const SAFE_FUNCTIONS: ReadonlySet<string> = new Set([
  // aggregates
  'count',
  'sum',
  'avg',
  'min',
  'max',
  'stddev',
  'stddev_pop',
  'stddev_samp',
  'variance',
  'var_pop',
  'var_samp',
  'array_agg',
  'string_agg',
  'json_agg',
  'jsonb_agg',
  'json_object_agg',
  'jsonb_object_agg',
  'bool_and',
  'bool_or',
  'every',
  'bit_and',
  'bit_or',
  'percentile_cont',
  'percentile_disc',
  'mode',
  'corr',
  'covar_pop',
  'covar_samp',
  'regr_slope',
  'regr_intercept',
  'regr_r2',
  'regr_count',
  'regr_avgx',
  'regr_avgy',
  'any_value',
  // window functions
  'row_number',
  'rank',
  'dense_rank',
  'percent_rank',
  'cume_dist',
  'ntile',
  'lag',
  'lead',
  'first_value',
  'last_value',
  'nth_value',
  // numbers
  'abs',
  'ceil',
  'ceiling',
  'floor',
  'round',
  'trunc',
  'sqrt',
  'cbrt',
  'exp',
  'ln',
  'log',
  'log10',
  'power',
  'pow',
  'mod',
  'sign',
  'div',
  'width_bucket',
  'random',
  'pi',
  'degrees',
  'radians',
  'gcd',
  'lcm',
  'scale',
  'numeric',
  'to_number',
  'to_char',
  // text
  'lower',
  'upper',
  'initcap',
  'length',
  'char_length',
  'character_length',
  'octet_length',
  'bit_length',
  'substring',
  'substr',
  'btrim',
  'ltrim',
  'rtrim',
  'trim',
  'concat',
  'concat_ws',
  'replace',
  'split_part',
  'position',
  'strpos',
  'left',
  'right',
  'lpad',
  'rpad',
  'reverse',
  'repeat',
  'format',
  'translate',
  'ascii',
  'chr',
  'md5',
  'starts_with',
  'overlay',
  'quote_literal',
  'quote_ident',
  'quote_nullable',
  'regexp_replace',
  'regexp_match',
  'regexp_matches',
  'regexp_split_to_array',
  'regexp_split_to_table',
  'regexp_count',
  'regexp_like',
  'regexp_substr',
  'regexp_instr',
  'similar_to_escape',
  'string_to_array',
  'array_to_string',
  'encode',
  'normalize',
  'is_normalized',
  'unistr',
  'casefold',
  // dates and times
  'now',
  'clock_timestamp',
  'statement_timestamp',
  'transaction_timestamp',
  'timeofday',
  'date_trunc',
  'date_part',
  'extract',
  'date_bin',
  'age',
  'make_date',
  'make_time',
  'make_timestamp',
  'make_timestamptz',
  'make_interval',
  'justify_days',
  'justify_hours',
  'justify_interval',
  'to_date',
  'to_timestamp',
  'timezone',
  'isfinite',
  'overlaps',
  'date_add',
  'date_subtract',
  // sets, arrays, ranges
  'generate_series',
  'generate_subscripts',
  'unnest',
  'array_length',
  'array_lower',
  'array_upper',
  'array_ndims',
  'array_dims',
  'array_position',
  'array_positions',
  'array_append',
  'array_prepend',
  'array_cat',
  'array_remove',
  'array_replace',
  'array_fill',
  'cardinality',
  'trim_array',
  'array_reverse',
  'array_sort',
  'lower_inf',
  'upper_inf',
  'isempty',
  'range_merge',
  // JSON
  'to_json',
  'to_jsonb',
  'row_to_json',
  'array_to_json',
  'json_build_object',
  'jsonb_build_object',
  'json_build_array',
  'jsonb_build_array',
  'json_object',
  'jsonb_object',
  'json_array_length',
  'jsonb_array_length',
  'json_array_elements',
  'jsonb_array_elements',
  'json_array_elements_text',
  'jsonb_array_elements_text',
  'json_each',
  'jsonb_each',
  'json_each_text',
  'jsonb_each_text',
  'json_extract_path',
  'jsonb_extract_path',
  'json_extract_path_text',
  'jsonb_extract_path_text',
  'json_object_keys',
  'jsonb_object_keys',
  'json_typeof',
  'jsonb_typeof',
  'jsonb_strip_nulls',
  'json_strip_nulls',
  'jsonb_pretty',
  'jsonb_set',
  'jsonb_insert',
  'jsonb_path_query',
  'jsonb_path_query_array',
  'jsonb_path_query_first',
  'jsonb_path_exists',
  'jsonb_path_match',
  'json_populate_record',
  'jsonb_populate_record',
  'json_to_record',
  'jsonb_to_record',
  'json_to_recordset',
  'jsonb_to_recordset',
  // misc pure
  'coalesce',
  'nullif',
  'greatest',
  'least',
  'num_nonnulls',
  'num_nulls',
  'pg_typeof',
  'gen_random_uuid',
  'uuidv4',
  'uuidv7',
  // bounded by the statement timeout like any slow query
  'pg_sleep',
]);

export type StatementVerdict = { readonly kind: string; readonly writes: boolean };

/**
 * Every node of the parse tree, with its type name (`FuncCall`, `RangeVar`, ...). With a stack of
 * its own, not recursion: nested generators cost each node the depth it sits at (a sum of 3,000
 * terms took 1.5 s), and a deep tree would overflow the call stack.
 */
function* nodes(tree: unknown): Generator<[string, Record<string, unknown>]> {
  // In the order a recursive walk takes: each named node, then what it holds, key after key.
  const stack: ({ walk: unknown } | { node: [string, Record<string, unknown>] })[] = [{ walk: tree }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if ('node' in item) {
      yield item.node;
      continue;
    }
    const at = item.walk;
    if (Array.isArray(at)) {
      for (let i = at.length - 1; i >= 0; i--) stack.push({ walk: at[i] });
      continue;
    }
    if (at === null || typeof at !== 'object') continue;
    const entries = Object.entries(at as Record<string, unknown>);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [k, v] = entries[i]!;
      stack.push({ walk: v });
      if (/^[A-Z]/.test(k) && v !== null && typeof v === 'object' && !Array.isArray(v))
        stack.push({ node: [k, v as Record<string, unknown>] });
    }
  }
}

const funcName = (fc: Record<string, unknown>): string[] =>
  ((fc['funcname'] as { String?: { sval?: string } }[] | undefined) ?? []).map((p) => p.String?.sval ?? '?');

/**
 * Refuse the parse tree of a statement (AppError) unless it is exactly one statement the server
 * may run. Pure: it runs on the parser's thread (statement-vetting.ts), beside the parse.
 * `validation` (400): several statements, transaction or session control.
 * `forbidden` (403): DO, COPY, CALL, DDL and every other kind, SELECT INTO, a write on the
 * read-only server, a function outside SAFE_FUNCTIONS.
 */
export function vetTree(
  tree: { stmts?: { stmt?: Record<string, unknown> }[] },
  opts: { allowWrites: boolean },
): StatementVerdict {
  const stmts = tree.stmts ?? [];
  if (stmts.length !== 1) {
    throw new AppError(
      'validation',
      stmts.length === 0
        ? 'no statement to run'
        : `one statement per call: got ${stmts.length} (multiple commands are not accepted)`,
      { statements: stmts.length },
    );
  }
  const stmt = stmts[0]!.stmt ?? {};
  const kind = Object.keys(stmt)[0] ?? 'unknown';
  if (SESSION_KINDS.has(kind)) {
    throw new AppError(
      'validation',
      `${label(kind)} statements are not accepted: each call runs in its own transaction managed by the server`,
      { statement: kind },
    );
  }
  if (kind !== 'SelectStmt' && !WRITE_KINDS.has(kind)) {
    throw new AppError(
      'forbidden',
      `${label(kind)} statements are refused: this server runs queries${opts.allowWrites ? ' and INSERT/UPDATE/DELETE/MERGE' : ''} only`,
      { statement: kind },
    );
  }
  let writes = WRITE_KINDS.has(kind);
  for (const [type, node] of nodes(stmt)) {
    if (WRITE_KINDS.has(type)) writes = true;
    if (type === 'SelectStmt' && node['intoClause'])
      throw new AppError('forbidden', 'SELECT INTO creates a table: refused', { statement: kind });
    if (type === 'FuncCall') {
      const parts = funcName(node);
      const name = parts.join('.');
      const bare =
        parts.length === 1 ? parts[0]! : parts.length === 2 && parts[0] === 'pg_catalog' ? parts[1]! : undefined;
      if (!bare || !SAFE_FUNCTIONS.has(bare.toLowerCase())) {
        throw new AppError(
          'forbidden',
          `function ${name}() is not allowed here: only pure built-in functions may be called`,
          { function: name },
        );
      }
    }
  }
  if (writes && !opts.allowWrites) {
    throw new AppError('forbidden', 'writes are not allowed: this database server is read-only', {
      statement: kind,
      sqlstate: '25006',
    });
  }
  return { kind, writes };
}

/** `DoStmt` -> `DO`, `CopyStmt` -> `COPY`, `CreateStmt` -> `CREATE`. */
function label(kind: string): string {
  const base = kind.replace(/Stmt$/, '');
  if (base === 'Transaction') return 'transaction control (BEGIN/COMMIT/ROLLBACK/SAVEPOINT)';
  if (base === 'VariableSet') return 'SET/RESET';
  if (base === 'VariableShow') return 'SHOW';
  return base.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase();
}
