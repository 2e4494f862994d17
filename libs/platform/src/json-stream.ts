import { Readable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * A value held as the JSON text a database gave (jsonb read as text): written as it is by
 * `jsonChunks`, so a large payload is neither parsed nor serialised again on its way to a client.
 * Anything else serialising it (JSON.stringify) gets the parsed value through `toJSON`.
 */
export class JsonText {
  constructor(readonly text: string) {}
  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}

export interface JsonChunkOptions {
  /** Text gathered before a chunk is handed on (a JsonText longer than this is cut into slices of it). */
  readonly chunkChars?: number;
  /** Longest run of work, in milliseconds, before the event loop gets a turn. */
  readonly sliceMs?: number;
}

/**
 * The JSON text of `value` (what JSON.stringify gives, JsonText written verbatim) in chunks, giving
 * the event loop a turn every `sliceMs` of work. Why: JSON.stringify of a 100 MB execution detail
 * held one thread for over a second (and its conversion to bytes another 300 ms), during which the
 * gateway answered nothing, not even its liveness probe. Here the longest hold is one slice of
 * work plus one primitive (a string payload is stringified whole).
 */
export async function* jsonChunks(value: unknown, opts: JsonChunkOptions = {}): AsyncGenerator<string> {
  const chunkChars = opts.chunkChars ?? 256 * 1024;
  const sliceMs = opts.sliceMs ?? 5;
  let pending = '';
  let sliceStart = performance.now();
  // Checked after each piece of work; awaited only when due (an await per value would cost more than the value).
  const due = () => performance.now() - sliceStart >= sliceMs;
  const giveTurn = async () => {
    await nextTurn();
    sliceStart = performance.now();
  };
  // A generator cannot yield from inside a callback: the walk is iterative over an explicit stack
  // of what is left to write (text, or a value still to serialise). `resolved`: its toJSON was
  // called already (an object member's is called before it is kept or left out).
  type Work = { text: string } | { value: unknown; key: string | undefined; inArray: boolean; resolved?: boolean };
  const stack: Work[] = [{ value, key: undefined, inArray: false }];
  while (stack.length > 0) {
    const w = stack.pop()!;
    const v = 'text' in w ? undefined : w.resolved ? w.value : viaToJson(w.value, w.key ?? '');
    if ('text' in w) pending += w.text;
    else if (v instanceof JsonText) {
      // Slices of a long text, never splitting a surrogate pair (its halves alone are not UTF-8).
      let at = 0;
      while (v.text.length - at > chunkChars) {
        let end = at + chunkChars;
        const c = v.text.charCodeAt(end - 1);
        if (c >= 0xd800 && c <= 0xdbff) end += end - 1 > at ? -1 : 1;
        if (pending) yield pending;
        pending = '';
        yield v.text.slice(at, end);
        at = end;
        if (due()) await giveTurn();
      }
      pending += at === 0 ? v.text : v.text.slice(at);
    } else if (Array.isArray(v)) {
      stack.push({ text: ']' });
      for (let i = v.length - 1; i >= 0; i--) {
        stack.push({ value: v[i], key: String(i), inArray: true });
        if (i > 0) stack.push({ text: ',' });
      }
      pending += '[';
    } else if (v !== null && typeof v === 'object') {
      const entries: [string, unknown][] = [];
      for (const [k, x] of Object.entries(v)) {
        const y = viaToJson(x, k);
        if (serialises(y)) entries.push([k, y]);
      }
      stack.push({ text: '}' });
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, x] = entries[i]!;
        stack.push({ value: x, key: k, inArray: false, resolved: true });
        stack.push({ text: `${i > 0 ? ',' : ''}${JSON.stringify(k)}:` });
      }
      pending += '{';
    } else {
      // A primitive; undefined, a function or a symbol is null in an array (as JSON.stringify
      // writes it), and at the top there is nothing to write.
      const text = JSON.stringify(v) as string | undefined;
      pending += text ?? (w.inArray ? 'null' : '');
    }
    if (pending.length >= chunkChars) {
      yield pending;
      pending = '';
    }
    if (due()) await giveTurn();
  }
  if (pending) yield pending;
}

// What JSON.stringify writes for `x` under `key` when it has a toJSON (a Date); JsonText is written as its text.
const viaToJson = (x: unknown, key: string): unknown =>
  x !== null &&
  typeof x === 'object' &&
  !(x instanceof JsonText) &&
  typeof (x as { toJSON?: unknown }).toJSON === 'function'
    ? (x as { toJSON(key: string): unknown }).toJSON(key)
    : x;

// A member JSON.stringify leaves out of an object.
const serialises = (x: unknown): boolean => x !== undefined && typeof x !== 'function' && typeof x !== 'symbol';

/** `jsonChunks` as a byte stream to send (pulled as the client takes it: at most a chunk or two held). */
export function jsonStream(value: unknown, opts?: JsonChunkOptions): Readable {
  return Readable.from(jsonChunks(value, opts), { objectMode: false, highWaterMark: 64 * 1024 });
}
