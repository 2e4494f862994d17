import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { AppError } from '@switchyard/platform';

const require = createRequire(import.meta.url);

/**
 * Absolute path of an installed package's bin script, so stdio servers start as
 * `node <bin>` with no `npx` (no registry look-up, no download at run time).
 * `bin` picks one entry when the package declares several (default: the first).
 * Throws AppError('unavailable') naming the package when it is not installed.
 */
export function resolvePackageBin(pkg: string, bin?: string, from: string = process.cwd()): string {
  const manifestPath = findManifest(pkg, from);
  if (!manifestPath) {
    throw new AppError('unavailable', `package ${pkg} is not installed (npm install ${pkg} at the repo root)`, {
      package: pkg,
    });
  }
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { bin?: string | Record<string, string> };
  const entry =
    typeof manifest.bin === 'string'
      ? manifest.bin
      : manifest.bin
        ? bin
          ? manifest.bin[bin]
          : Object.values(manifest.bin)[0]
        : undefined;
  if (!entry)
    throw new AppError('unavailable', `package ${pkg} declares no bin${bin ? ` named ${bin}` : ''}`, { package: pkg });
  return path.resolve(path.dirname(manifestPath), entry);
}

function findManifest(pkg: string, from: string): string | undefined {
  try {
    return require.resolve(`${pkg}/package.json`);
  } catch {
    // A package with an `exports` map that hides package.json: walk up node_modules folders instead.
    for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
      const candidate = path.join(dir, 'node_modules', pkg, 'package.json');
      if (existsSync(candidate)) return candidate;
      if (path.dirname(dir) === dir) return undefined;
    }
  }
}
