import { randomBytes } from 'node:crypto';
/** Output helpers: `--json` prints the API's answer as JSON; otherwise short human lines. */
export function printJson(value: unknown): void {
  process.stdout.write(`${terminalSafe(JSON.stringify(value, null, 2))}\n`);
}

/**
 * One line: a newline or tab in it (a name, an error, a tool's description from the server) is
 * written as `\n` or `\t`, so no value can print a line of its own that looks like this CLI's
 * (a forged `✔ step succeeded`). Text made of several lines on purpose goes through printBlock.
 */
export function printLine(line = ''): void {
  process.stdout.write(`${terminalSafe(oneLine(line))}\n`);
}

/** Several lines this CLI laid out itself (a table, indented JSON: values in them are one line each already). */
export function printBlock(text: string): void {
  process.stdout.write(`${terminalSafe(text)}\n`);
}

/** East Asian wide and pictographic (emoji) code points: two columns on a terminal (counted so when unsure: cutting early is safe). */
const WIDE =
  /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{20000}-\u{3fffd}]|\p{Extended_Pictographic}/u;

/**
 * `line` cut to `width` columns (a wide character counts two, a control character the six of its
 * escape), with `…` where it was cut.
 */
export function cutToWidth(line: string, width: number): string {
  let cols = 0;
  let out = '';
  for (const ch of line) {
    const w = TERMINAL_CONTROLS.test(ch) ? 6 : WIDE.test(ch) ? 2 : 1;
    if (cols + w > width - 1) return `${out}…`;
    cols += w;
    out += ch;
  }
  return out;
}

/** `text` on one line: newlines and tabs written as `\n` and `\t`. */
export const oneLine = (text: string): string => text.replace(/\n/g, '\\n').replace(/\t/g, '\\t');

/**
 * Characters a terminal acts on rather than shows: C0 controls but newline and tab (ESC starts
 * sequences that set the window title, clear the screen, move the cursor, erase a line; CR
 * overwrites it), DEL, C1 controls (U+009B is a CSI on some terminals) and the bidirectional
 * overrides (they reorder what follows). Names, errors and results come from the server and
 * from the MCP servers behind it, which we do not control.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const TERMINAL_CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const CONTROLS = new RegExp(TERMINAL_CONTROLS.source, 'g');
/**
 * How `color` marks its own colour sequences until terminalSafe writes them: a random word per
 * process, which text from the server cannot know. (Keeping any ESC[32m found in a line let a
 * server's name or error pose as this CLI's green ✔ or red error.)
 */
const OURS = `~sy${randomBytes(9).toString('hex')}~`;
const OUR_COLOUR = new RegExp(`${OURS}(0|2|31|32|33)m`, 'g');
/**
 * `text` with every control character written as its `\uNNNN` escape instead of acted on, then
 * this CLI's own colours (see `color`) written as colours. The escape is also JSON's: JSON text
 * stays the same JSON value.
 */
export function terminalSafe(text: string): string {
  return text
    .replace(CONTROLS, (m) => `\\u${m.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replace(OUR_COLOUR, '\u001b[$1m');
}

/** A plain text table, columns padded to their widest cell. */
export function table(
  rows: readonly (readonly (string | number | null | undefined)[])[],
  header: readonly string[],
): string {
  // A cell is one line: a value's newline or tab would forge a row or a column.
  const all = [header, ...rows].map((r) => r.map((c) => (c === null || c === undefined ? '-' : oneLine(String(c)))));
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** Colours only on a terminal, and never with NO_COLOR. */
const color = (code: number) => (s: string) =>
  process.stdout.isTTY && !process.env.NO_COLOR ? `${OURS}${code}m${s}${OURS}0m` : s;
export const green = color(32);
export const red = color(31);
export const yellow = color(33);
export const dim = color(2);
