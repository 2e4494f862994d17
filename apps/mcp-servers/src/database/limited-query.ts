import pg from 'pg';

/** What a row-capped statement gave back. */
export interface LimitedOutcome {
  readonly rows: Record<string, unknown>[];
  readonly fields: { name: string; dataTypeID: number }[];
  /** The command tag's verb (`SELECT`, `INSERT`, ...); null when there was none (an empty statement, or more rows than read). */
  readonly command: string | null;
  readonly rowCount: number | null;
  /** The statement had more rows than were read (the portal was suspended and closed). */
  readonly more: boolean;
}

/** The pg wire connection as a submittable sees it (pg-protocol's message writers). */
interface WireConnection {
  parse(msg: { text: string }, more?: boolean): void;
  bind(msg: { portal: string; values: (string | null)[] }, more?: boolean): void;
  describe(msg: { type: 'P'; name: string }, more?: boolean): void;
  execute(msg: { portal: string; rows: number }, more?: boolean): void;
  close(msg: { type: 'P'; name: string }, more?: boolean): void;
  sync(): void;
  sendCopyFail(message: string): void;
}

interface ResultBuilder {
  rows: Record<string, unknown>[];
  fields: { name: string; dataTypeID: number }[];
  command: string | null;
  rowCount: number | null;
  addFields(fields: unknown[]): void;
  parseRow(fields: unknown[]): Record<string, unknown>;
  addCommandComplete(msg: unknown): void;
}

// pg exports its row builder (type parsing as in client.query) at run time, not in its types.
const Result = (pg as unknown as { Result: new () => ResultBuilder }).Result;

/**
 * One statement over the extended protocol with at most `maxRows` rows read, in ONE round
 * trip: Parse, Bind, Describe, Execute(maxRows), Close, Sync go out in a single write and the
 * answer ends with ReadyForQuery. Like a cursor it never lets more than `maxRows` rows leave
 * the server, and like a plain query it accepts exactly one statement (the extended protocol
 * refuses `a; b`). pg-cursor needs three round trips for the same (describe, read, close).
 * It runs in the implicit transaction Sync ends: the session's settings
 * (default_transaction_read_only, statement_timeout) govern it.
 * Submitted with `client.query(q)`; `q.done` settles when the server is ready again.
 */
export class LimitedQuery {
  readonly done: Promise<LimitedOutcome>;
  private resolve!: (o: LimitedOutcome) => void;
  private reject!: (e: unknown) => void;
  private readonly result = new Result();
  private more = false;
  private failed = false;
  /** pg's client sets this for callback-style queries; unused here. */
  callback: undefined;

  constructor(
    private readonly text: string,
    private readonly values: readonly (string | number | boolean | null)[],
    private readonly maxRows: number,
  ) {
    this.done = new Promise<LimitedOutcome>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Handled by whoever awaits `done`; never an unhandled rejection if nobody does.
    this.done.catch(() => undefined);
  }

  submit(connection: WireConnection): void {
    connection.parse({ text: this.text }, true);
    connection.bind({ portal: '', values: this.values.map((v) => (v === null ? null : String(v))) }, true);
    connection.describe({ type: 'P', name: '' }, true);
    connection.execute({ portal: '', rows: this.maxRows }, true);
    connection.close({ type: 'P', name: '' }, true);
    connection.sync();
  }

  handleRowDescription(msg: { fields: unknown[] }): void {
    this.result.addFields(msg.fields);
  }

  handleDataRow(msg: { fields: unknown[] }): void {
    this.result.rows.push(this.result.parseRow(msg.fields));
  }

  handlePortalSuspended(): void {
    this.more = true;
  }

  handleCommandComplete(msg: unknown): void {
    this.result.addCommandComplete(msg);
  }

  handleEmptyQuery(): void {
    // An empty statement: no rows, no command; ReadyForQuery follows the pipelined Sync.
  }

  handleCopyInResponse(connection: WireConnection): void {
    // The guard refuses COPY; should one get here, end it at once.
    connection.sendCopyFail('COPY is not supported');
  }

  handleCopyData(): void {}

  /** The pipelined Sync makes the server answer ReadyForQuery after an error: nothing to send. */
  handleError(err: unknown): void {
    this.failed = true;
    this.reject(err);
  }

  handleReadyForQuery(): void {
    if (this.failed) return;
    const r = this.result;
    this.resolve({
      rows: r.rows,
      fields: r.fields ?? [],
      command: r.command ?? null,
      rowCount: r.rowCount ?? null,
      more: this.more,
    });
  }
}
