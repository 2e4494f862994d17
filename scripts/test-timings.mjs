// A test reporter for Node's runner: the time each spec file's top-level tests took, slowest
// first, and their sum. scripts/test-files.mjs writes it beside the spec reporter; run-tests.mjs prints the slowest
// files at the end, so a run says where the suite's minutes go.
import path from 'node:path';

export default async function* testTimings(source) {
  const perFile = new Map();
  for await (const event of source) {
    if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data.nesting === 0 && event.data.file) {
      const file = path.relative(process.cwd(), event.data.file);
      const entry = perFile.get(file) ?? { ms: 0, tests: 0 };
      entry.ms += event.data.details?.duration_ms ?? 0;
      entry.tests += 1;
      perFile.set(file, entry);
    }
  }
  let totalMs = 0;
  for (const [file, entry] of [...perFile].sort((a, b) => b[1].ms - a[1].ms)) {
    totalMs += entry.ms;
    yield `${(entry.ms / 1000).toFixed(1).padStart(8)} s  ${file}\n`;
  }
  yield `${(totalMs / 1000).toFixed(1).padStart(8)} s  all files (their sum; files run side by side)\n`;
}
