/** A small reader of the repository's Dockerfile and .dockerignore for the deployment specs (not a spec itself). */
import { cpSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

export const root = path.resolve(import.meta.dirname, '..', '..', '..');

export interface Instruction {
  readonly keyword: string;
  /** The arguments as written (continuations joined). */
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly name?: string;
  readonly from: string;
  readonly instructions: readonly Instruction[];
}

/** Split a Dockerfile into stages of instructions: comments dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Stage[] {
  const stages: { name?: string; from: string; instructions: Instruction[] }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      line = line.replace(/\\\s*$/, ' ');
      i++;
      if (!/^\s*#/.test(lines[i]!)) line += lines[i]!.trim();
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile line ${start + 1} is not an instruction: ${line}`);
    const keyword = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    if (keyword === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!f) throw new Error(`Dockerfile line ${start + 1}: cannot read FROM ${args}`);
      stages.push({ from: f[1]!, ...(f[2] ? { name: f[2] } : {}), instructions: [] });
      continue;
    }
    if (!stages.length) throw new Error(`Dockerfile line ${start + 1}: ${keyword} before FROM`);
    stages.at(-1)!.instructions.push({ keyword, args, line: start + 1 });
  }
  return stages;
}

export function readDockerfile(): Stage[] {
  return parseDockerfile(readFileSync(path.join(root, 'Dockerfile'), 'utf8'));
}

/** The arguments of an instruction in exec form (`["a", "b"]`) or shell words. */
export function words(args: string): string[] {
  if (args.startsWith('[')) return JSON.parse(args) as string[];
  return args.split(/\s+/).filter(Boolean);
}

/** .dockerignore as a predicate on context-relative paths (`**`, `*`, `?`; a match excludes what is below it). */
export function dockerIgnore(contextDir: string): (rel: string) => boolean {
  const file = path.join(contextDir, '.dockerignore');
  const patterns = existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'))
    : [];
  if (patterns.some((p) => p.startsWith('!')))
    throw new Error('.dockerignore exceptions (!) are not understood by this reader');
  const regexes = patterns.map((p) => {
    const clean = p.replace(/^\/+/, '').replace(/\/+$/, '');
    let re = '';
    for (let i = 0; i < clean.length; i++) {
      const c = clean[i]!;
      if (c === '*' && clean[i + 1] === '*') {
        re += clean[i + 2] === '/' ? '(?:.*/)?' : '.*';
        i += clean[i + 2] === '/' ? 2 : 1;
      } else if (c === '*') re += '[^/]*';
      else if (c === '?') re += '[^/]';
      else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return new RegExp(`^${re}(?:/.*)?$`);
  });
  return (rel) => regexes.some((r) => r.test(rel));
}

/**
 * Run one COPY of a build stage against a directory standing for the image's WORKDIR: the
 * sources from the build context (the repository) minus .dockerignore, as Docker copies them
 * (a directory's contents into the destination; files into a destination directory).
 */
export function applyCopy(args: string, contextDir: string, workdir: string, ignored: (rel: string) => boolean): void {
  const parts = words(args);
  if (parts.some((p) => p.startsWith('--')))
    throw new Error(`COPY ${args}: flags are not supported in the build stage by this reader`);
  const dest = parts.pop()!;
  if (parts.length === 0) throw new Error(`COPY ${args}: no source`);
  const target = path.resolve(workdir, dest);
  if (!target.startsWith(workdir)) throw new Error(`COPY ${args}: destination outside WORKDIR`);
  const intoDir = parts.length > 1 || dest.endsWith('/');
  for (const src of parts) {
    if (/[*?[]/.test(src)) throw new Error(`COPY ${args}: wildcards are not supported by this reader`);
    const from = path.join(contextDir, src);
    if (ignored(path.relative(contextDir, from))) throw new Error(`COPY ${src}: excluded by .dockerignore`);
    if (!existsSync(from)) throw new Error(`COPY ${src}: not in the build context`);
    const to = statSync(from).isDirectory() || !intoDir ? target : path.join(target, path.basename(src));
    mkdirSync(path.dirname(to), { recursive: true });
    cpSync(from, to, {
      recursive: true,
      filter: (p) => !ignored(path.relative(contextDir, p)),
    });
  }
}
