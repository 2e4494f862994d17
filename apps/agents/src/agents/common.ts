import type pg from 'pg';
import { AppError, isPassingDatabaseFailure } from '@switchyard/platform';

/** Throws AppError('timeout') when the caller gave up (usually its deadline passed); checked between queries. */
export function checkAborted(signal: AbortSignal): void {
  if (signal.aborted)
    throw new AppError('timeout', 'task aborted by caller', { reason: String(signal.reason ?? '') }, true);
}

/** `details.reason` of a refusal for want of the business data: the deployment's fault, not the caller's (isCallerError). */
export const BUSINESS_DATA_MISSING = 'business_data_missing';

/**
 * The data's own "today": the last order date. Analyses are anchored here, not on the wall
 * clock, so the same data gives the same answer on any day.
 */
export async function dataAsOf(pool: pg.Pool): Promise<string> {
  const r = await pool
    .query<{ d: string | null }>(`select max(order_date)::text as d from business.orders`)
    .catch((err: unknown) => {
      // Only a missing table or schema means the data was never loaded; a database that is down or
      // out of disk is a passing failure, for another attempt to retry.
      const code = (err as { code?: unknown } | null)?.code;
      if (code === '42P01' || code === '3F000')
        throw new AppError('illegal_state', 'business data is not loaded (run the demo-data loader)', {
          cause: String(err),
          reason: BUSINESS_DATA_MISSING,
        });
      if (isPassingDatabaseFailure(err))
        throw new AppError(
          'unavailable',
          'the business database is unavailable right now',
          { cause: String(err) },
          true,
        );
      throw err;
    });
  const d = r.rows[0]?.d;
  if (!d)
    throw new AppError('illegal_state', 'business.orders is empty (run the demo-data loader)', {
      reason: BUSINESS_DATA_MISSING,
    });
  return d;
}

export interface CustomerRow {
  readonly id: number;
  readonly name: string;
  readonly email: string;
  readonly segment: string;
  readonly region: string;
  readonly signupDate: string;
}

export async function getCustomer(pool: pg.Pool, id: number): Promise<CustomerRow> {
  const r = await pool.query<CustomerRow>(
    `select id, name, email, segment, region, signup_date::text as "signupDate" from business.customers where id = $1`,
    [id],
  );
  // The id goes in the details, not the message: a viewer reads the message of a task whose context it may not see.
  if (!r.rows[0]) throw new AppError('not_found', 'customer not found', { customerId: id });
  return r.rows[0];
}
