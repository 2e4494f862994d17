import path from 'node:path';
import { embeddedSuperuserPasswordFile } from './postgres.js';

/**
 * What in a data dir is secret: the nats-server's directory (its token, the roles' passwords, its
 * JetStream store), the embedded PostgreSQL clusters (their files hold every row and the login
 * hashes) and the superuser's password file. A program of someone else's that this process runs
 * (a stdio MCP server) gets these hidden (see the connectors' StdioSandbox); `files`, where the
 * filesystem server works, stays.
 */
export function dataDirSecrets(dataDir: string): string[] {
  const root = path.resolve(dataDir);
  const password = embeddedSuperuserPasswordFile(path.join(root, 'postgres'));
  return [
    path.join(root, 'nats'),
    path.join(root, 'postgres'),
    path.join(root, 'postgres-debian'),
    password,
    `${password}.next`,
  ];
}
