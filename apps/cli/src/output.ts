/** Output helpers: `--json` prints the API's answer as JSON; otherwise short human lines. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLine(line = ''): void {
  process.stdout.write(`${line}\n`);
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
