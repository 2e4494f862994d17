/**
 * The URL the gateway reads the replica with: with the component roles, its own role's login at
 * the replica's host, port and database; without them, DATABASE_READ_URL as given.
 */
export function replicaLogin(componentUrl: string, readUrl: string, roles: boolean): string {
  if (!roles) return readUrl;
  const u = new URL(componentUrl);
  const r = new URL(readUrl);
  u.hostname = r.hostname;
  u.port = r.port;
  u.pathname = r.pathname;
  return u.toString();
}
