/**
 * A page of rows cut where their sizes add up past a bound, in SQL, before any row is sent: the
 * rows of `limited` (a query that already carries its ORDER BY and LIMIT, and a `bytes` column:
 * each row's size) in `order`, up to and including the first that reaches `maxBytesParam` (a
 * query parameter such as `$6`), so a page holds at least one row whatever its size. Each row
 * carries `taken`: how many rows `limited` gave before the cut (see cutByBytes). The window runs
 * over the limited rows only, never over the table.
 */
export function byteBoundedSql(limited: string, order: string, maxBytesParam: string): string {
  return `select * from (
    select w.*, sum(w.bytes) over (order by ${order}) - w.bytes as bytes_before, count(*) over () as taken
    from (${limited}) w
  ) c where c.bytes_before < ${maxBytesParam}`;
}

/** Whether a page read with byteBoundedSql was cut by its bytes (rows of its limit left behind). */
export function cutByBytes(rows: readonly { taken?: string | number | null }[]): boolean {
  return rows.length > 0 && Number(rows[0]!.taken ?? rows.length) > rows.length;
}
