/**
 * Budgets for what an MCP server sends that the connectors did not ask for. Each request a server
 * sends (`sampling/createMessage`, `elicitation/create`, `roots/list`: none offered, the client
 * declares no capabilities; `ping`) is answered, and over Streamable HTTP each answer is a POST of
 * its own: a server sending them in a loop had the process open a connection per request, up to
 * its open-file limit, and everything else in the process starved.
 */

/** Requests one server may send in any one second; one more drops its connection. */
export const MAX_SERVER_REQUESTS_PER_SECOND = 20;

/**
 * Messages that answer nothing asked (progress of no call, a response to no request) one server
 * may send in any one second: each costs an error handler call, none a connection.
 */
export const MAX_STRAY_MESSAGES_PER_SECOND = 100;

const WINDOW_MS = 1_000;

interface Seen {
  readonly at: number;
  readonly what: string;
}

/**
 * Counts one connection's unasked messages over the last second. Past a budget it calls `onTrip`
 * once, with a reason that names what was sent, and refuses everything after (the connection is
 * being dropped: nothing more is answered on it).
 */
export class UnaskedTraffic {
  private readonly requests: Seen[] = [];
  private readonly strays: Seen[] = [];
  private why: string | undefined;

  constructor(
    private readonly onTrip: (reason: string) => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Why the budget tripped, once it has. */
  get tripped(): string | undefined {
    return this.why;
  }

  /** A request from the server: true while it may be answered. */
  request(method: string): boolean {
    return this.count(
      this.requests,
      method,
      MAX_SERVER_REQUESTS_PER_SECOND,
      (n, list) =>
        `the server sent ${n} requests in 1 s, more than ${MAX_SERVER_REQUESTS_PER_SECOND} (the connectors offer none but ping): ${list}`,
    );
  }

  /** A message that answers nothing asked: true while under the budget. */
  stray(what: string): boolean {
    return this.count(
      this.strays,
      what,
      MAX_STRAY_MESSAGES_PER_SECOND,
      (n, list) =>
        `the server sent ${n} messages in 1 s that answer nothing the connectors asked, more than ${MAX_STRAY_MESSAGES_PER_SECOND}: ${list}`,
    );
  }

  private count(seen: Seen[], what: string, max: number, reason: (n: number, list: string) => string): boolean {
    if (this.why !== undefined) return false;
    const now = this.now();
    seen.push({ at: now, what });
    while (seen.length > 0 && seen[0]!.at <= now - WINDOW_MS) seen.shift();
    if (seen.length <= max) return true;
    const by = new Map<string, number>();
    for (const s of seen) by.set(s.what, (by.get(s.what) ?? 0) + 1);
    const list = [...by]
      .slice(0, 5)
      .map(([w, n]) => `${printable(w)} ${n}`)
      .join(', ');
    this.why = reason(seen.length, by.size > 5 ? `${list}, ...` : list);
    this.onTrip(this.why);
    return false;
  }
}

/** A method name as the server chose it, short and without control characters, fit for a log line and an event. */
function printable(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 60 ? `${clean.slice(0, 60)}...` : clean;
}
