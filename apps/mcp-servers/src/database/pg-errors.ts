import { AppError, isConnectionError, type ErrorCode } from '@switchyard/platform';

/**
 * PostgreSQL errors -> coded AppErrors, so the gateway answers every one with a problem
 * document of a deliberate status and never a 500. By SQLSTATE class (the first two
 * characters), with a few codes of their own:
 *
 * | SQLSTATE | code | HTTP |
 * |---|---|---|
 * | 25006 read_only_sql_transaction, 42501 insufficient_privilege, 0L, 0P, 28 (as a statement error) | forbidden | 403 |
 * | 22 data exception, 42 syntax/undefined object (but 42501), 0A, 0B, 0F, 0Z, 20, 21, 26, 2F, 34, 38, 39, 3F, 54, P0 | validation | 400 |
 * | 23 integrity constraint, 40 transaction rollback (40001 serialization, 40P01 deadlock: retryable), 09, 24, 25, 27, 2B, 2D, 3B, 44, 55 | illegal_state | 409 |
 * | 57014 query_canceled (the statement_timeout) | timeout | 504 |
 * | 08 connection, 57 operator intervention, 53 resources, 55P03 lock timeout, 58 system, 72, F0, HV, XX, 3D, 40003, and any other class | unavailable | 503 |
 *
 * 57014 is a timeout (504), like every other timeout of the system (REQUEST_TIMEOUT_MS, a
 * connector's call timeout). Errors without a SQLSTATE that come from the connection
 * (refused, reset, terminated) are `unavailable` too.
 */
const byClass: Record<string, ErrorCode> = {
  '0A': 'validation', // feature not supported
  '0B': 'validation', // invalid transaction initiation
  '0F': 'validation', // locator exception
  '0L': 'forbidden', // invalid grantor
  '0P': 'forbidden', // invalid role specification
  '0Z': 'validation', // diagnostics exception
  '08': 'unavailable', // connection exception
  '09': 'illegal_state', // triggered action exception
  '20': 'validation', // case not found
  '21': 'validation', // cardinality violation
  '22': 'validation', // data exception
  '23': 'illegal_state', // integrity constraint violation
  '24': 'illegal_state', // invalid cursor state
  '25': 'illegal_state', // invalid transaction state
  '26': 'validation', // invalid SQL statement name
  '27': 'illegal_state', // triggered data change violation
  '28': 'forbidden', // invalid authorization specification
  '2B': 'illegal_state', // dependent privilege descriptors still exist
  '2D': 'illegal_state', // invalid transaction termination
  '2F': 'validation', // SQL routine exception
  '34': 'validation', // invalid cursor name
  '38': 'validation', // external routine exception
  '39': 'validation', // external routine invocation exception
  '3B': 'illegal_state', // savepoint exception
  '3D': 'unavailable', // invalid catalog name (the configured database is missing)
  '3F': 'validation', // invalid schema name
  '40': 'illegal_state', // transaction rollback
  '42': 'validation', // syntax error or access rule violation
  '44': 'illegal_state', // WITH CHECK OPTION violation
  '53': 'unavailable', // insufficient resources
  '54': 'validation', // program limit exceeded (statement too complex)
  '55': 'illegal_state', // object not in prerequisite state
  '57': 'unavailable', // operator intervention
  '58': 'unavailable', // system error
  '72': 'unavailable', // snapshot failure
  F0: 'unavailable', // configuration file error
  HV: 'unavailable', // foreign data wrapper error
  P0: 'validation', // PL/pgSQL error (RAISE)
  XX: 'unavailable', // internal error
};

const bySqlstate: Record<string, { code: ErrorCode; retryable?: boolean; prefix?: string }> = {
  '25006': { code: 'forbidden', prefix: 'writes are not allowed: this database server is read-only' },
  '42501': { code: 'forbidden' },
  '57014': { code: 'timeout', retryable: false, prefix: 'statement cancelled' },
  '40001': { code: 'illegal_state', retryable: true },
  '40P01': { code: 'illegal_state', retryable: true },
  '40003': { code: 'unavailable' },
  '55P03': { code: 'unavailable', retryable: true },
};

/** The code a SQLSTATE maps to (see the table above). */
export function codeForSqlstate(sqlstate: string): ErrorCode {
  return bySqlstate[sqlstate]?.code ?? byClass[sqlstate.slice(0, 2)] ?? 'unavailable';
}

/** Postgres error -> coded AppError with the server's own words kept; undefined for other errors. */
export function mapPgError(e: unknown): AppError | undefined {
  const err = e as { code?: string; message?: string; position?: string; detail?: string; hint?: string };
  if (typeof err?.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code)) {
    const details = { sqlstate: err.code, position: err.position, detail: err.detail, hint: err.hint };
    const special = bySqlstate[err.code];
    const code = codeForSqlstate(err.code);
    const message = special?.prefix
      ? `${special.prefix} (${err.message})`
      : err.message || `database error ${err.code}`;
    const retryable = special?.retryable ?? code === 'unavailable';
    return new AppError(code, message, details, retryable);
  }
  if (isConnectionError(e)) {
    if (typeof err?.code === 'string')
      return new AppError('unavailable', `database unreachable: ${err.message ?? err.code}`, { errno: err.code }, true);
    return new AppError('unavailable', `database connection lost: ${err?.message ?? String(e)}`, {}, true);
  }
  return undefined;
}
