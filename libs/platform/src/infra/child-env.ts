/**
 * The environment a server binary we start (PostgreSQL, nats-server) gets from ours: where
 * programs and libraries are, the home and user, the locale and time zone. Nothing else: our
 * environment holds credentials (SWITCHYARD_ADMIN_KEY, NATS_TOKEN, MCP_AUTH_TOKEN, GITHUB and
 * LLM tokens, connection strings), and a child's environment is readable by its user in /proc,
 * and in PostgreSQL's case by its superuser through pg_read_file('/proc/self/environ').
 */
const PASSED = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR', 'LD_LIBRARY_PATH']);

export function serverChildEnv(from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(from)) if (v !== undefined && (PASSED.has(k) || k.startsWith('LC_'))) env[k] = v;
  return env;
}
