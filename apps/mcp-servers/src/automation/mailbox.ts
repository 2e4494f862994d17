import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import { z } from 'zod';
import { SMTPServer, type SMTPServerDataStream } from 'smtp-server';
import { simpleParser, type AddressObject } from 'mailparser';
import type { Logger } from '@switchyard/platform';
import { migrateAutomation } from './schema.js';

/** Environment of the embedded development mailbox (the launcher starts it when SMTP_URL is unset). */
export const mailboxConfigSchema = z.object({
  /** 0 (the default) lets the system pick a free port; the launcher hands the URL to the automation server. */
  MAILBOX_SMTP_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  MAILBOX_SMTP_HOST: z.string().min(1).default('127.0.0.1'),
  /** A bigger message is refused with 552 (SMTP SIZE extension). */
  MAILBOX_MAX_MESSAGE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(50 * 1024 * 1024)
    .default(1024 * 1024),
  /** Only the newest N messages are kept. */
  MAILBOX_MAX_MESSAGES: z.coerce.number().int().min(1).max(1_000_000).default(1000),
});
export type MailboxConfig = z.infer<typeof mailboxConfigSchema>;

export interface MailboxOptions {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  readonly host?: string;
  /** 0 = a free port. */
  readonly port?: number;
  readonly maxMessageBytes?: number;
  readonly maxMessages?: number;
  /** The SMTP login; generated when not given (never logged). */
  readonly user?: string;
  readonly password?: string;
}

export interface RunningMailbox {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** `smtp://user:password@host:port`: what SMTP_URL of the automation server is set to. */
  readonly smtpUrl: string;
  close(): Promise<void>;
}

/** An SMTP reply error: smtp-server answers with `responseCode` and the message. */
const smtpError = (code: number, message: string): Error => Object.assign(new Error(message), { responseCode: code });

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

const addresses = (a: AddressObject | AddressObject[] | undefined): string[] =>
  (a === undefined ? [] : Array.isArray(a) ? a : [a])
    .flatMap((o) => o.value.map((v) => v.address ?? '').filter(Boolean))
    .map((x) => x.toLowerCase());

/**
 * A real SMTP server for development and tests: it accepts mail only from a client that logs in
 * with its credential (AUTH PLAIN/LOGIN; no TLS, so bind it to loopback), parses each message
 * and keeps it in automation.mailbox, newest `maxMessages` only. Nothing is relayed anywhere.
 */
export async function startMailbox(opts: MailboxOptions): Promise<RunningMailbox> {
  const host = opts.host ?? '127.0.0.1';
  const maxBytes = opts.maxMessageBytes ?? 1024 * 1024;
  const maxMessages = opts.maxMessages ?? 1000;
  const user = opts.user ?? 'switchyard';
  const password = opts.password ?? randomBytes(24).toString('base64url');
  const log = opts.logger.child({ component: 'mailbox' });
  await migrateAutomation(opts.pool);

  const store = async (raw: Buffer, envelope: { from: string; to: string[] }): Promise<number> => {
    const parsed = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true });
    const r = await opts.pool.query<{ id: string }>(
      `INSERT INTO automation.mailbox (message_id, mail_from, rcpt_to, header_to, cc, subject, text_body, html_body, size_bytes, received_at)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,now()) RETURNING id`,
      [
        parsed.messageId ?? null,
        envelope.from,
        envelope.to,
        addresses(parsed.to),
        addresses(parsed.cc),
        parsed.subject ?? '',
        // The MIME body ends in a line break the sender did not write.
        parsed.text === undefined ? null : parsed.text.replace(/\r?\n$/, ''),
        typeof parsed.html === 'string' ? parsed.html : null,
        raw.length,
      ],
    );
    // The cap: everything older than the newest N goes.
    await opts.pool.query(
      `DELETE FROM automation.mailbox WHERE id <= (SELECT id FROM automation.mailbox ORDER BY id DESC OFFSET $1 LIMIT 1)`,
      [maxMessages],
    );
    return Number(r.rows[0]!.id);
  };

  const server = new SMTPServer({
    name: 'switchyard-mailbox',
    banner: 'Switchyard development mailbox',
    authMethods: ['PLAIN', 'LOGIN'],
    // Plain-text AUTH on a loopback listener; there is no certificate to offer.
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    size: maxBytes,
    maxClients: 50,
    logger: false,
    onAuth(auth, _session, cb) {
      const okUser = timingSafeEqual(digest(auth.username ?? ''), digest(user));
      const okPassword = timingSafeEqual(digest(auth.password ?? ''), digest(password));
      if (okUser && okPassword) return cb(null, { user });
      log.warn({ user: auth.username }, 'mailbox login refused');
      return cb(smtpError(535, 'Authentication failed'));
    },
    onData(stream: SMTPServerDataStream, session, cb) {
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        // Past the cap the rest is read and dropped (the client is still sending it).
        if (size <= maxBytes) chunks.push(c);
      });
      stream.on('error', (e) => cb(e));
      stream.on('end', () => {
        if (stream.sizeExceeded || size > maxBytes) {
          log.warn({ size, maxBytes }, 'mailbox refused a message over the size cap');
          return cb(smtpError(552, `message exceeds the mailbox limit of ${maxBytes} bytes`));
        }
        const envelope = {
          from: (session.envelope.mailFrom ? session.envelope.mailFrom.address : '').toLowerCase(),
          to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
        };
        store(Buffer.concat(chunks), envelope).then(
          (id) => {
            log.info({ id, from: envelope.from, recipients: envelope.to.length, size }, 'mailbox received a message');
            cb(null, `queued as ${id}`);
          },
          (e: unknown) => {
            // 451: a transient local error, the client may try again.
            log.error({ err: e }, 'mailbox could not store a message');
            cb(smtpError(451, 'could not store the message, try again later'));
          },
        );
      });
    },
  });
  server.on('error', (e) => log.error({ err: e }, 'mailbox SMTP server error'));

  await new Promise<void>((resolve, reject) => {
    const fail = (e: Error): void => reject(e);
    server.server.once('error', fail);
    server.listen(opts.port ?? 0, host, () => {
      server.server.off('error', fail);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  log.info({ host, port, user, maxBytes, maxMessages }, 'development mailbox listening (SMTP, login required)');
  return {
    host,
    port,
    user,
    smtpUrl: `smtp://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${hostInUrl}:${port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** One stored message as listed. */
export interface MailboxMessage {
  readonly id: string;
  readonly message_id: string | null;
  readonly from: string;
  /** The envelope recipients (to and cc). */
  readonly recipients: string[];
  readonly to: string[];
  readonly cc: string[];
  readonly subject: string;
  readonly text: string | null;
  readonly html: string | null;
  readonly size_bytes: number;
  readonly received_at: string;
}

export const mailboxQuerySchema = z.object({
  to: z.string().min(1).max(320).optional().describe('only messages with this recipient (envelope to or cc)'),
  limit: z.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .regex(/^[0-9]{1,19}$/, 'a next_cursor of an earlier page')
    .optional()
    .describe('next_cursor of the previous page'),
});

/** Newest first, keyset-paged on the id: `next_cursor` is set when older messages remain. */
export async function listMailbox(
  pool: pg.Pool,
  q: z.infer<typeof mailboxQuerySchema>,
): Promise<{ messages: MailboxMessage[]; next_cursor: string | null }> {
  const r = await pool.query(
    // ORDER BY names the table's id: the output column `id` is text and would sort as text.
    `SELECT id::text AS id, message_id, mail_from, rcpt_to, header_to, cc, subject, text_body, html_body, size_bytes, received_at
       FROM automation.mailbox
      WHERE ($1::text IS NULL OR lower($1::text) = ANY(rcpt_to)) AND ($2::bigint IS NULL OR id < $2::bigint)
      ORDER BY automation.mailbox.id DESC LIMIT $3`,
    [q.to ?? null, q.cursor ?? null, q.limit + 1],
  );
  const rows = r.rows.slice(0, q.limit);
  return {
    messages: rows.map((m) => ({
      id: m.id,
      message_id: m.message_id,
      from: m.mail_from,
      recipients: m.rcpt_to,
      to: m.header_to,
      cc: m.cc,
      subject: m.subject,
      text: m.text_body,
      html: m.html_body,
      size_bytes: m.size_bytes,
      received_at: new Date(m.received_at).toISOString(),
    })),
    next_cursor: r.rows.length > q.limit ? rows[rows.length - 1]!.id : null,
  };
}
