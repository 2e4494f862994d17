#!/usr/bin/env node
/**
 * API keys from the command line (uses DATABASE_URL, and EVENTSTORE_URL when the event
 * store is EventStoreDB). The same commands as the admin API, with actor `cli:<os user>`.
 *
 *   node apps/gateway/dist/security/cli.js create --role admin --name ops   prints the key once
 *   node apps/gateway/dist/security/cli.js list [--all]
 *   node apps/gateway/dist/security/cli.js revoke <id>
 *   node apps/gateway/dist/security/cli.js generate                          a key for SWITCHYARD_ADMIN_KEY (not stored)
 */
import { realpathSync } from 'node:fs';
import { userInfo } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { pino } from 'pino';
import { createPgPool, newId, parseConfig } from '@switchyard/platform';
import { createEventStore } from '@switchyard/event-store';
import { keyNameSchema } from './api-key.decider.js';
import { ApiKeyService } from './api-keys.js';
import { generateKey } from './keys.js';
import { roleSchema } from './roles.js';

const usage = `usage: cli.js create --role viewer|operator|admin --name <name>
       cli.js list [--all]
       cli.js revoke <id>
       cli.js generate`;

const envSchema = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  EVENTSTORE_URL: z.string().optional(),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('warn'),
});

export async function main(
  argv: string[],
  out: (s: string) => void = (s) => void process.stdout.write(s),
): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      role: { type: 'string' },
      name: { type: 'string' },
      all: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    out(usage + '\n');
    return command ? 0 : 2;
  }
  if (command === 'generate') {
    out(generateKey().key + '\n');
    return 0;
  }
  const env = parseConfig(process.env, envSchema);
  // Logs go to stderr: stdout carries only the answer (the key), for scripts.
  const logger = pino({ name: 'apikeys-cli', level: env.LOG_LEVEL }, pino.destination(2));
  const pool = createPgPool({ connectionString: env.DATABASE_URL, max: 2 }, { name: 'apikeys-cli', logger });
  const store = createEventStore({
    pool,
    logger,
    ...(env.EVENTSTORE_URL ? { eventstoreUrl: env.EVENTSTORE_URL } : {}),
  });
  const ctx = { actor: `cli:${userInfo().username}`, correlationId: newId() };
  try {
    await store.init();
    const keys = new ApiKeyService(store, pool, logger);
    await keys.init();
    switch (command) {
      case 'create': {
        const role = roleSchema.safeParse(values.role);
        const name = keyNameSchema.safeParse(values.name);
        if (!role.success || !name.success) {
          process.stderr.write(`--role must be viewer, operator or admin and --name is required\n${usage}\n`);
          return 2;
        }
        const created = await keys.create({ role: role.data, name: name.data }, ctx);
        out(`${created.key}\n`);
        process.stderr.write(
          `created ${created.role} key ${created.id} (${created.name}); the key above is shown only now\n`,
        );
        return 0;
      }
      case 'list': {
        for (const k of await keys.list({ includeRevoked: values.all === true })) {
          out(
            `${k.id}\t${k.role}\t${k.prefix}…\t${k.name}\t${k.createdAt}\t${k.revokedAt ? `revoked ${k.revokedAt}` : 'active'}\n`,
          );
        }
        return 0;
      }
      case 'revoke': {
        const id = rest[0];
        if (!id) {
          process.stderr.write(`${usage}\n`);
          return 2;
        }
        const k = await keys.revoke(id, ctx);
        out(`revoked ${k.id} at ${k.revokedAt}\n`);
        return 0;
      }
      default:
        process.stderr.write(`unknown command ${command}\n${usage}\n`);
        return 2;
    }
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    await store.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
  }
}

// Run only as a program, not when imported by a test.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
