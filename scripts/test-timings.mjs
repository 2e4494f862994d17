// A test reporter for Node's runner: the wall time of each spec file, from the runner starting its
// process to the file's end (imports, hooks and tests together: what a lane spends on it), slowest
// first, with the time its top-level tests took beside it, and their sums. scripts/test-files.mjs
// writes it beside the spec reporter; run-tests.mjs prints the slowest files at the end, so a run
// says where the suite's minutes go.
import path from 'node:path';

export default async function* testTimings(source) {
  const perFile = new Map();
  const entry = (file) => {
    let e = perFile.get(file);
    if (!e) perFile.set(file, (e = { testsMs: 0, startedAt: undefined, wallMs: undefined }));
    return e;
  };
  for await (const event of source) {
    const { data } = event;
    if (data?.nesting !== 0 || !data.file) continue;
    const file = path.relative(process.cwd(), data.file);
    // The runner reports each file as a test named by its path: dequeued when its process starts,
    // complete when the process has ended.
    const isFile = data.name === file || data.name === data.file;
    if (isFile && event.type === 'test:dequeue') entry(file).startedAt = performance.now();
    else if (isFile && event.type === 'test:complete') {
      const e = entry(file);
      if (e.startedAt !== undefined) e.wallMs = performance.now() - e.startedAt;
    } else if (!isFile && (event.type === 'test:pass' || event.type === 'test:fail'))
      entry(file).testsMs += data.details?.duration_ms ?? 0;
  }
  let wallTotal = 0;
  let testsTotal = 0;
  const rows = [...perFile].map(([file, e]) => ({ file, wallMs: e.wallMs ?? e.testsMs, testsMs: e.testsMs }));
  for (const { file, wallMs, testsMs } of rows.sort((a, b) => b.wallMs - a.wallMs)) {
    wallTotal += wallMs;
    testsTotal += testsMs;
    yield `${(wallMs / 1000).toFixed(1).padStart(8)} s  ${file}  (tests ${(testsMs / 1000).toFixed(1)} s)\n`;
  }
  yield `${(wallTotal / 1000).toFixed(1).padStart(8)} s  all files (their sum; files run side by side; tests ${(testsTotal / 1000).toFixed(1)} s)\n`;
}
