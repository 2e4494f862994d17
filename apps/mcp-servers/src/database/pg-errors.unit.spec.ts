import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@switchyard/platform';
import { codeForSqlstate, mapPgError } from './pg-errors.js';

/** A pg DatabaseError as the driver throws it. */
const pgError = (code: string, message = 'boom') => Object.assign(new Error(message), { code, severity: 'ERROR' });

describe('mapPgError: every SQLSTATE class has a status, none is 500', () => {
  // One representative SQLSTATE per class of PostgreSQL's appendix A, with the status it must answer.
  const cases: [string, string, number][] = [
    ['0A000', 'feature_not_supported', 400],
    ['0B000', 'invalid_transaction_initiation', 400],
    ['0F001', 'invalid_locator_specification', 400],
    ['0L000', 'invalid_grantor', 403],
    ['0P000', 'invalid_role_specification', 403],
    ['0Z002', 'stacked_diagnostics_accessed_without_active_handler', 400],
    ['08006', 'connection_failure', 503],
    ['08P01', 'protocol_violation', 503],
    ['09000', 'triggered_action_exception', 409],
    ['20000', 'case_not_found', 400],
    ['21000', 'cardinality_violation', 400],
    ['22012', 'division_by_zero', 400],
    ['22P02', 'invalid_text_representation', 400],
    ['23505', 'unique_violation', 409],
    ['23503', 'foreign_key_violation', 409],
    ['23502', 'not_null_violation', 409],
    ['24000', 'invalid_cursor_state', 409],
    ['25001', 'active_sql_transaction', 409],
    ['25006', 'read_only_sql_transaction', 403],
    ['26000', 'invalid_sql_statement_name', 400],
    ['27000', 'triggered_data_change_violation', 409],
    ['28P01', 'invalid_password', 403],
    ['2B000', 'dependent_privilege_descriptors_still_exist', 409],
    ['2D000', 'invalid_transaction_termination', 409],
    ['2F005', 'function_executed_no_return_statement', 400],
    ['34000', 'invalid_cursor_name', 400],
    ['38001', 'containing_sql_not_permitted', 400],
    ['39P01', 'trigger_protocol_violated', 400],
    ['3B001', 'invalid_savepoint_specification', 409],
    ['3D000', 'invalid_catalog_name', 503],
    ['3F000', 'invalid_schema_name', 400],
    ['40001', 'serialization_failure', 409],
    ['40P01', 'deadlock_detected', 409],
    ['40003', 'statement_completion_unknown', 503],
    ['42601', 'syntax_error', 400],
    ['42P01', 'undefined_table', 400],
    ['42703', 'undefined_column', 400],
    ['42883', 'undefined_function', 400],
    ['42501', 'insufficient_privilege', 403],
    ['44000', 'with_check_option_violation', 409],
    ['53100', 'disk_full', 503],
    ['53300', 'too_many_connections', 503],
    ['54001', 'statement_too_complex', 400],
    ['55000', 'object_not_in_prerequisite_state', 409],
    ['55P03', 'lock_not_available', 503],
    ['57014', 'query_canceled (statement_timeout)', 504],
    ['57P01', 'admin_shutdown', 503],
    ['57P03', 'cannot_connect_now', 503],
    ['58030', 'io_error', 503],
    ['72000', 'snapshot_too_old', 503],
    ['F0000', 'config_file_error', 503],
    ['HV000', 'fdw_error', 503],
    ['P0001', 'raise_exception', 400],
    ['XX000', 'internal_error', 503],
    ['XX001', 'data_corrupted', 503],
    ['ZZ999', 'a class PostgreSQL may add later', 503],
  ];
  for (const [sqlstate, name, status] of cases) {
    it(`${sqlstate} ${name} -> ${status}`, () => {
      const e = mapPgError(pgError(sqlstate, name));
      assert.ok(e instanceof AppError);
      assert.equal(e.status, status);
      assert.equal(e.details['sqlstate'], sqlstate);
      assert.notEqual(e.status, 500);
    });
  }

  it('retries only what can pass on a second try: serialization, deadlock, unavailability', () => {
    assert.equal(mapPgError(pgError('40001'))!.retryable, true);
    assert.equal(mapPgError(pgError('40P01'))!.retryable, true);
    assert.equal(mapPgError(pgError('57P01'))!.retryable, true);
    assert.equal(mapPgError(pgError('23505'))!.retryable, false);
    assert.equal(mapPgError(pgError('57014'))!.retryable, false);
    assert.equal(mapPgError(pgError('42601'))!.retryable, false);
  });

  it('keeps the server words and says what a refused write and a timeout are', () => {
    assert.match(
      mapPgError(pgError('25006', 'cannot execute DELETE in a read-only transaction'))!.message,
      /^writes are not allowed.*cannot execute DELETE/,
    );
    assert.match(
      mapPgError(pgError('57014', 'canceling statement due to statement timeout'))!.message,
      /^statement cancelled.*statement timeout/,
    );
    assert.equal(codeForSqlstate('57014'), 'timeout');
  });

  it('maps a lost or refused connection (no SQLSTATE) to unavailable, and leaves other errors alone', () => {
    assert.equal(
      mapPgError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }))!.status,
      503,
    );
    assert.equal(mapPgError(new Error('Connection terminated unexpectedly'))!.status, 503);
    assert.equal(mapPgError(new Error('something else')), undefined);
    assert.equal(mapPgError('not an error'), undefined);
  });
});
