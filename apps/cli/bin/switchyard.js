#!/usr/bin/env node
// The `switchyard` command: a committed, executable entry so `npx switchyard` works before and after a build.
import { existsSync } from 'node:fs';
const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  console.error('switchyard: the CLI is not built yet; run `npx tsc -b` (or `npm start` once) at the repository root');
  process.exit(1);
}
await import(main.href);
