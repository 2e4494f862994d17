/** Output helpers: `--json` prints the API's answer as JSON; otherwise short human lines. */
export function printJson(value: unknown): void {
  process.stdout.write(`${terminalSafe(JSON.stringify(value, null, 2))}\n`);
}

export function printLine(line = ''): void {
  process.stdout.write(`${terminalSafe(line)}\n`);
}

/**
 * Characters a terminal acts on rather than shows: C0 controls but newline and tab (ESC starts
 * sequences that set the window title, clear the screen, move the cursor, erase a line; CR
 * overwrites it), DEL, C1 controls (U+009B is a CSI on some terminals) and the bidirectional
 * overrides (they reorder what follows). Names, errors and results come from the server and
 * from the MCP servers behind it, which we do not control.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const TERMINAL_CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
/** The colour sequences this CLI writes itself (see `color`), and every other control character. */
const OURS_OR_CONTROL = new RegExp(`\u001b\\[(?:0|2|31|32|33)m|${TERMINAL_CONTROLS.source}`, 'g');
/**
 * `text` with every control character written as its `\uNNNN` escape instead of acted on, and this
 * CLI's own colours kept. The escape is also JSON's: JSON text stays the same JSON value.
 */
export function terminalSafe(text: string): string {
  return text.replace(OURS_OR_CONTROL, (m) =>
    m.length > 1 ? m : `\\u${m.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** A plain text table, columns padded to their widest cell. */
export function table(
  rows: readonly (readonly (string | number | null | undefined)[])[],
  header: readonly string[],
): string {
  const all = [header, ...rows].map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** Colours only on a terminal, and never with NO_COLOR. */
const color = (code: number) => (s: string) =>
  process.stdout.isTTY && !process.env.NO_COLOR ? `\u001b[${code}m${s}\u001b[0m` : s;
export const green = color(32);
export const red = color(31);
export const yellow = color(33);
export const dim = color(2);
