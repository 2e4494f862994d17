#!/usr/bin/env node
// Runs the spec files it is given, in that order, with Node's test runner (run() from node:test;
// `node --test <files>` sorts its files by path again, whatever order they were given in), two at
// a time: spec output on stdout, each file's time to the timings file (scripts/test-timings.mjs).
// Usage (from run-tests.mjs): test-files.mjs <timings file> <spec file>...
// TEST_CONCURRENCY (files at once, default 2), TEST_TIMEOUT_MS (one test or hook, default 5 min).
import { createWriteStream } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import testTimings from './test-timings.mjs';

const [timingsFile, ...files] = process.argv.slice(2);
const events = run({
  files,
  concurrency: Number(process.env.TEST_CONCURRENCY ?? 2),
  timeout: Number(process.env.TEST_TIMEOUT_MS ?? 300_000),
});
const console = new spec();
const printed = pipeline(console, process.stdout, { end: false });
const timings = new PassThrough({ objectMode: true });
const written = pipeline(Readable.from(testTimings(timings)), createWriteStream(timingsFile));
let failed = false;
for await (const event of events) {
  if (event.type === 'test:fail' && !event.data.todo) failed = true;
  console.write(event);
  timings.write(event);
}
console.end();
timings.end();
await Promise.all([printed, written]);
process.exitCode = failed ? 1 : 0;
