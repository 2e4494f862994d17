import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { CliError, EXIT } from './errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:10000';

/** The saved login: `{ url, key }`. */
export const savedConfigSchema = z.object({ url: z.url().optional(), key: z.string().min(1).optional() }).strict();
export type SavedConfig = z.infer<typeof savedConfigSchema>;

/** `$XDG_CONFIG_HOME/switchyard/config.json`, else `~/.config/switchyard/config.json`. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME)
      ? env.XDG_CONFIG_HOME
      : path.join(env.HOME ?? os.homedir(), '.config');
  return path.join(base, 'switchyard', 'config.json');
}

export function readSavedConfig(file = configPath()): SavedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError(`${file} is not JSON; fix it or run \`switchyard login\` again`, EXIT.usage);
  }
  const parsed = savedConfigSchema.safeParse(json);
  if (!parsed.success)
    throw new CliError(
      `${file}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
      EXIT.usage,
    );
  return parsed.data;
}

/**
 * Writes the login with mode 0600 in a 0700 directory: it holds an API key. A new file beside it
 * is renamed over it: a rename replaces a symlink there instead of writing the key through it to
 * wherever it points, and a reader never sees half a file.
 */
export function writeSavedConfig(config: SavedConfig, file = configPath()): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const temp = path.join(dir, `.config.json.${randomBytes(6).toString('hex')}.tmp`);
  try {
    // 'wx': a fresh file of ours, never one planted under that name.
    writeFileSync(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(temp, 0o600); // exactly 0600, whatever the umask
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}

export interface Connection {
  readonly url: string;
  readonly key?: string;
  /** Where each value came from, for `doctor`. */
  readonly source: { url: 'flag' | 'env' | 'config' | 'default'; key: 'flag' | 'env' | 'config' | 'none' };
  /** The gateway the saved key is for, when it is not sent (the URL is another one's). */
  readonly savedKeyFor?: string;
  /** The largest answer (or event stream message) read, in bytes: SWITCHYARD_MAX_ANSWER_MB. */
  readonly maxAnswerBytes?: number;
}

/**
 * A key as HTTP can carry it: printable ASCII without spaces (the gateway's are `sy_<id>_<secret>`).
 * Surrounding whitespace (a file's final newline, CRLF) is trimmed first; what is left inside
 * (`SWITCHYARD_KEY="$(cat file)"` of a file with a second line) is refused without showing the
 * key: only its `sy_<id>` part, which names it and is no secret.
 */
function checkedKey(key: string, from: string): string {
  const trimmed = key.trim();
  if (/^[\x21-\x7e]+$/.test(trimmed)) return trimmed;
  const id = /^sy_[0-9a-f]{16}_/.exec(trimmed)?.[0];
  throw new CliError(
    `the API key from ${from}${id ? ` (${id}…)` : ''} has a line break, a space, a control character or a ` +
      'character outside ASCII in it; not used (a file with more than one line?)',
    EXIT.usage,
  );
}

/** SWITCHYARD_MAX_ANSWER_MB: a whole number of MiB, 1 or more. */
function maxAnswerBytes(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.SWITCHYARD_MAX_ANSWER_MB;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new CliError(`SWITCHYARD_MAX_ANSWER_MB must be a whole number of MiB, 1 or more, got ${v}`, EXIT.usage);
  return n * 1024 * 1024;
}

/** The key read from stdin (`--key -`): its first line, so `printf '%s\n' "$KEY" |` and a file both work. */
function keyFromStdin(read: () => string): string {
  const key = (read().split(/\r?\n/)[0] ?? '').trim();
  if (!key) throw new CliError('--key -: nothing on stdin (pipe the key in, e.g. < keyfile)', EXIT.usage);
  return key;
}

const LOOPBACK_HOSTS = new Set(['localhost', '[::1]']);

/** A URL whose requests go over the network unencrypted: http to a host that is not this machine. */
export function cleartextOverNetwork(url: string): boolean {
  const u = new URL(url);
  if (u.protocol !== 'http:') return false;
  const host = u.hostname.toLowerCase();
  return !(LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host));
}

/**
 * Precedence: `--url`/`--key`, then SWITCHYARD_URL / SWITCHYARD_KEY, then the config file, then
 * the default URL. `--key -` reads the key from stdin (a key on the command line is visible to
 * every local user in the process list). A key is not sent unencrypted to another machine
 * (http to a host that is not loopback) unless `--allow-http` or SWITCHYARD_ALLOW_HTTP=1 says so.
 */
export function resolveConnection(
  flags: { url?: string; key?: string; allowHttp?: boolean },
  env: NodeJS.ProcessEnv = process.env,
  file = configPath(env),
  readStdin: () => string = () => readFileSync(0, 'utf8'),
): Connection {
  const saved = readSavedConfig(file);
  const pick = <T extends string>(flag: T | undefined, envValue: string | undefined, savedValue: string | undefined) =>
    flag
      ? ({ value: flag, from: 'flag' } as const)
      : envValue
        ? ({ value: envValue, from: 'env' } as const)
        : savedValue
          ? ({ value: savedValue, from: 'config' } as const)
          : undefined;
  const url = pick(flags.url, env.SWITCHYARD_URL, saved.url);
  const key = pick(flags.key, env.SWITCHYARD_KEY, saved.key);
  const base = (url?.value ?? DEFAULT_URL).replace(/\/+$/, '');
  if (!z.url().safeParse(base).success || !/^https?:\/\//.test(base))
    throw new CliError(`not an http(s) URL: ${base}`, EXIT.usage);
  // A saved key goes only to the gateway it was saved for: a URL from a flag or the environment
  // (a stray .env, another user's port on this machine) gets no key, as if none were saved (so
  // `login --url` to another gateway still asks for its key).
  const savedElsewhere =
    key?.from === 'config' &&
    url?.from !== 'config' &&
    originOf((saved.url ?? DEFAULT_URL).replace(/\/+$/, '')) !== originOf(base);
  const given = savedElsewhere ? undefined : key;
  const rawKey = given?.from === 'flag' && given.value === '-' ? keyFromStdin(readStdin) : given?.value;
  const keyValue =
    rawKey === undefined
      ? undefined
      : checkedKey(
          rawKey,
          given?.from === 'flag'
            ? flags.key === '-'
              ? 'stdin'
              : '--key'
            : given?.from === 'env'
              ? 'SWITCHYARD_KEY'
              : file,
        );
  const maxAnswer = maxAnswerBytes(env);
  if (keyValue && cleartextOverNetwork(base) && !flags.allowHttp && env.SWITCHYARD_ALLOW_HTTP !== '1')
    throw new CliError(
      `refusing to send the API key unencrypted to ${base}: use https://, or --allow-http ` +
        '(SWITCHYARD_ALLOW_HTTP=1) on a network you trust',
      EXIT.usage,
    );
  return {
    url: base,
    ...(keyValue ? { key: keyValue } : {}),
    source: { url: url?.from ?? 'default', key: given?.from ?? 'none' },
    ...(savedElsewhere ? { savedKeyFor: originOf(saved.url ?? DEFAULT_URL) } : {}),
    ...(maxAnswer ? { maxAnswerBytes: maxAnswer } : {}),
  };
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}
