import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { z } from 'zod';
import nodemailer from 'nodemailer';
import { ExponentialBackoff, handleWhen, retry } from 'cockatiel';
import { AppError, isAppError, newId, withTransaction, type Logger } from '@switchyard/platform';
import { keyScopeOf, storedKey } from '../common/idempotency.js';

/**
 * A mailbox address. Deliberately loose (a local part, `@`, a domain without a dot is fine):
 * `support@localhost` is a valid development address; the SMTP server has the last word.
 */
export const mailAddressSchema = z
  .string()
  .min(3)
  .max(320)
  .regex(/^[^\s@<>(),;:"\\[\]]+@[^\s@<>(),;:"\\[\]]+$/, 'an e-mail address like name@example.com');

/** Limits of one message: recipients per field, header line, body parts. */
export const mailLimits = { recipients: 50, subjectChars: 998, bodyChars: 512 * 1024 } as const;

const recipients = z.union([mailAddressSchema, z.array(mailAddressSchema).min(1).max(mailLimits.recipients)]);

/** The message part of `send_email` (and of a schedule's `email` target). Text and/or html: checked by `assertBody`. */
export const emailMessageShape = {
  to: recipients.describe(`recipient address, or a list of up to ${mailLimits.recipients}`),
  cc: recipients.optional().describe('carbon-copy address(es)'),
  subject: z
    .string()
    .min(1)
    .max(mailLimits.subjectChars)
    .regex(/^[^\r\n]*$/, 'one line'),
  text: z.string().max(mailLimits.bodyChars).optional().describe('plain-text body'),
  html: z.string().max(mailLimits.bodyChars).optional().describe('HTML body'),
};
export const emailMessageSchema = z.object(emailMessageShape);
export type EmailMessage = z.infer<typeof emailMessageSchema>;

/** `smtp://user:pass@host:587` (STARTTLS when offered) or `smtps://...:465` (TLS from the start). */
export const smtpUrlSchema = z
  .string()
  .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
  .refine(
    (s) => URL.canParse(s) && new URL(s).hostname.length > 0,
    'must be a URL with a host, e.g. smtp://user:pass@mail.example.com:587',
  );

export function assertBody(m: { text?: string | undefined; html?: string | undefined }): void {
  if (m.text === undefined && m.html === undefined)
    throw new AppError('validation', 'an e-mail needs text, html or both', { fields: ['text', 'html'] });
}

const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** What a send returned; a repeat of an idempotency key returns the first send's result. */
export interface MailResult {
  readonly message_id: string;
  readonly accepted: string[];
  readonly rejected: string[];
  readonly response: string;
  readonly idempotency_key: string | null;
  /** True when this call sent nothing: the key had been sent already (or is being sent by this process). */
  readonly deduplicated: boolean;
}

export interface OutgoingMail {
  readonly from: string;
  readonly to: string[];
  readonly cc: string[];
  readonly subject: string;
  readonly text?: string;
  readonly html?: string;
  readonly messageId: string;
}

/** Where mail goes out: an SMTP server in production, anything with the same shape in a unit test. */
export interface MailTransport {
  send(mail: OutgoingMail): Promise<{ messageId: string; accepted: string[]; rejected: string[]; response: string }>;
  close(): void;
}

/** A nodemailer SMTP transport for `SMTP_URL`, with bounded connect/greeting/socket waits. */
export function smtpTransport(url: string, timeoutMs = 15_000): MailTransport {
  const t = nodemailer.createTransport({
    url,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs * 2,
  });
  return {
    async send(m) {
      const info = await t.sendMail({
        from: m.from,
        to: m.to,
        ...(m.cc.length ? { cc: m.cc } : {}),
        subject: m.subject,
        text: m.text,
        html: m.html,
        messageId: m.messageId,
      });
      const addr = (a: unknown): string =>
        typeof a === 'string' ? a : String((a as { address?: string }).address ?? a);
      return {
        messageId: info.messageId,
        accepted: (info.accepted ?? []).map(addr),
        rejected: (info.rejected ?? []).map(addr),
        response: String(info.response ?? ''),
      };
    },
    close: () => t.close(),
  };
}

/**
 * Map a transport failure: 4xx replies and network errors can pass on a retry (`unavailable`,
 * retryable); a 5xx reply (address refused, message too big, bad credentials) will not.
 */
export function mailError(e: unknown): AppError {
  if (isAppError(e)) return e;
  const err = e as { code?: string; responseCode?: number; message?: string };
  const message = `SMTP send failed: ${err.message ?? String(e)}`;
  const details = {
    ...(err.code ? { smtp_code: err.code } : {}),
    ...(err.responseCode ? { response_code: err.responseCode } : {}),
  };
  if (typeof err.responseCode === 'number' && err.responseCode >= 500) {
    return new AppError(err.code === 'EAUTH' ? 'unavailable' : 'tool_error', message, details, false);
  }
  return new AppError('unavailable', message, details, true);
}

/** JSON with sorted keys, so equal messages fingerprint equally whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** What an idempotency key stands for: sha256 of the recipients, subject and bodies. */
export function mailFingerprint(m: EmailMessage): string {
  return createHash('sha256')
    .update(canonical({ to: list(m.to), cc: list(m.cc), subject: m.subject, text: m.text, html: m.html }))
    .digest('hex');
}

/** The Message-ID of a keyed mail: the same for every send of the key, so a receiver can drop a resent copy. */
export function keyedMessageId(key: string): string {
  return `<${createHash('sha256').update(key).digest('hex').slice(0, 32)}@switchyard.idempotency>`;
}

/** The liveness connection of the automation service: its backend pid marks the sends this process owns. */
export interface SendOwner {
  pid(): Promise<number>;
  readonly pids: readonly number[];
}

export interface MailerDeps {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  readonly transport: MailTransport;
  /** The From address of every mail. */
  readonly from: string;
  readonly owner: SendOwner;
  /** pg_stat_activity application_name of the owner connection. */
  readonly ownerApplicationName: string;
  readonly now: () => Date;
  /** Attempts after the first on a retryable failure (default 2, 200 ms doubling to 2 s). */
  readonly retries?: number;
  /** How long a call waits for another process's send of the same key (default 90 s). */
  readonly waitForOwnerMs?: number;
}

type Claim =
  { kind: 'send' } | { kind: 'absent' } | { kind: 'sent'; result: MailResult } | { kind: 'wait'; ownerPid: number };

/**
 * Sends mail over a transport. With an idempotency key the key is honoured durably in
 * automation.mail_sends, exactly like keyed webhook deliveries: once a send of the key was
 * accepted by the SMTP server it is never sent again (by this process or any other), later
 * calls get the first result; only a send that failed, or whose sender died mid-send, is sent
 * again. A key reused for a different message is refused.
 */
export class Mailer {
  private readonly inFlight = new Map<string, { fingerprint: string; result: Promise<MailResult> }>();
  private readonly log: Logger;

  constructor(private readonly deps: MailerDeps) {
    this.log = deps.logger.child({ component: 'mailer' });
  }

  /** Keys this process is sending now (moved to a new owner pid when the liveness connection is re-made). */
  inFlightKeys(): string[] {
    return [...this.inFlight.keys()];
  }

  /**
   * `scope`: the person the call is for (`_meta.actor`); their key is theirs alone (see
   * common/idempotency.ts). The stored key, and the Message-ID derived from it, are scoped.
   */
  async send(
    m: EmailMessage & {
      idempotencyKey?: string | undefined;
      correlationId?: string | undefined;
      scope?: string | undefined;
    },
  ): Promise<MailResult> {
    assertBody(m);
    const given = m.idempotencyKey;
    if (given === undefined) return this.deliver(m, `<${newId()}@switchyard>`, null, undefined);
    const key = await storedKey(this.deps.pool, 'automation.mail_sends', 'idempotency_key', m.scope, given);
    const fingerprint = mailFingerprint(m);
    const running = this.inFlight.get(key);
    if (running) {
      if (running.fingerprint !== fingerprint) throw keyReused(given);
      return { ...(await running.result), deduplicated: true };
    }
    // Registered before the first await, so a concurrent call in this process always joins it.
    const result = this.sendKeyed(m, { key, given, scope: keyScopeOf(m.scope) }, fingerprint);
    this.inFlight.set(key, { fingerprint, result });
    try {
      return await result;
    } finally {
      this.inFlight.delete(key);
    }
  }

  private async sendKeyed(
    m: EmailMessage & { correlationId?: string | undefined },
    k: { key: string; given: string; scope: string },
    fingerprint: string,
  ): Promise<MailResult> {
    const { key, given } = k;
    const log = this.log.child({ correlationId: m.correlationId ?? key, idempotencyKey: key });
    const deadline = Date.now() + (this.deps.waitForOwnerMs ?? 90_000);
    let waiting = false;
    for (;;) {
      const claim = await this.claim(k, fingerprint, log);
      if (claim.kind === 'sent') {
        log.info({ messageId: claim.result.message_id }, 'mail with this key was already sent; not sent again');
        return { ...claim.result, deduplicated: true };
      }
      if (claim.kind === 'send') break;
      if (claim.kind === 'absent') continue;
      if (Date.now() >= deadline) {
        throw new AppError(
          'timeout',
          `mail "${given}" is still being sent by another process`,
          { idempotency_key: given, owner_pid: claim.ownerPid },
          true,
        );
      }
      if (!waiting) log.info({ ownerPid: claim.ownerPid }, 'waiting for the live sender of this mail');
      waiting = true;
      await sleep(100);
    }
    try {
      const result = await this.deliver(m, keyedMessageId(key), given, () => this.countSend(key));
      await this.finish(key, 'sent', result, log);
      return result;
    } catch (e) {
      const err = mailError(e);
      await this.finish(key, 'failed', { error: err.toJSON() }, log);
      throw err;
    }
  }

  /** Send now, retrying transient failures with backoff. */
  private async deliver(
    m: EmailMessage & { correlationId?: string | undefined },
    messageId: string,
    key: string | null,
    beforeAttempt: (() => Promise<void>) | undefined,
  ): Promise<MailResult> {
    const log = this.log.child({ correlationId: m.correlationId ?? key ?? messageId, messageId });
    const policy = retry(
      handleWhen((e) => mailError(e).retryable),
      { maxAttempts: this.deps.retries ?? 2, backoff: new ExponentialBackoff({ initialDelay: 200, maxDelay: 2000 }) },
    );
    const sub = policy.onRetry((ev) =>
      log.warn(
        { attempt: ev.attempt, delayMs: ev.delay, err: 'error' in ev ? ev.error.message : undefined },
        'mail send failed, retrying',
      ),
    );
    try {
      const info = await policy.execute(async () => {
        await beforeAttempt?.();
        return this.deps.transport.send({
          from: this.deps.from,
          to: list(m.to),
          cc: list(m.cc),
          subject: m.subject,
          ...(m.text !== undefined ? { text: m.text } : {}),
          ...(m.html !== undefined ? { html: m.html } : {}),
          messageId,
        });
      });
      log.info({ accepted: info.accepted.length, rejected: info.rejected.length }, 'mail sent');
      return {
        message_id: info.messageId || messageId,
        accepted: info.accepted,
        rejected: info.rejected,
        response: info.response.slice(0, 500),
        idempotency_key: key,
        deduplicated: false,
      };
    } catch (e) {
      throw mailError(e);
    } finally {
      sub.dispose();
    }
  }

  private async countSend(key: string): Promise<void> {
    await this.deps.pool.query(`UPDATE automation.mail_sends SET sends = sends + 1 WHERE idempotency_key = $1`, [key]);
  }

  private async finish(key: string, status: 'sent' | 'failed', result: unknown, log: Logger): Promise<void> {
    try {
      const r =
        status === 'sent'
          ? await this.deps.pool.query(
              `UPDATE automation.mail_sends SET status = 'sent', result = $2, finished_at = $3 WHERE idempotency_key = $1 AND status <> 'sent'`,
              [key, JSON.stringify(result), this.deps.now()],
            )
          : // Only while this process still owns the send: a failure must not release a send another process took over.
            await this.deps.pool.query(
              `UPDATE automation.mail_sends SET status = 'failed', result = $2, finished_at = $3 WHERE idempotency_key = $1 AND status = 'sending' AND owner_pid = ANY($4)`,
              [key, JSON.stringify(result), this.deps.now(), [...this.deps.owner.pids]],
            );
      if (r.rowCount === 0)
        log.warn({ status }, 'mail outcome not recorded: another sender had already finished or taken over this key');
    } catch (e) {
      // The mail went out (or not); the caller gets its outcome. A later call with the key may send it again.
      log.error({ err: e, status }, 'could not record the mail outcome');
    }
  }

  /** Send this key (new, failed before, or its sender is dead), return the recorded result, or wait for a live sender. */
  private async claim(
    { key, given, scope }: { key: string; given: string; scope: string },
    fingerprint: string,
    log: Logger,
  ): Promise<Claim> {
    const myPid = await this.deps.owner.pid();
    const now = this.deps.now();
    const inserted = await this.deps.pool.query(
      `INSERT INTO automation.mail_sends (idempotency_key, request_fingerprint, status, owner_pid, started_at, key_scope)
       VALUES ($1, $2, 'sending', $3, $4, $5) ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key`,
      [key, fingerprint, myPid, now, scope],
    );
    if (inserted.rowCount === 1) return { kind: 'send' };
    return withTransaction(this.deps.pool, async (c) => {
      const r = await c.query(
        `SELECT s.request_fingerprint, s.status, s.owner_pid, s.result,
                EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = s.owner_pid AND a.application_name = $2) AS owner_alive
           FROM automation.mail_sends s WHERE s.idempotency_key = $1 FOR UPDATE OF s`,
        [key, this.deps.ownerApplicationName],
      );
      const row = r.rows[0] as
        | {
            request_fingerprint: string;
            status: 'sending' | 'sent' | 'failed';
            owner_pid: number | null;
            result: MailResult | null;
            owner_alive: boolean;
          }
        | undefined;
      if (!row) return { kind: 'absent' } as const;
      if (row.request_fingerprint !== fingerprint) throw keyReused(given);
      if (row.status === 'sent') return { kind: 'sent', result: row.result! } as const;
      if (row.status === 'sending' && row.owner_alive && row.owner_pid !== myPid)
        return { kind: 'wait', ownerPid: row.owner_pid! } as const;
      // Failed before, a dead owner, or this very process left it 'sending' (its bookkeeping failed).
      const taken = await c.query(
        `UPDATE automation.mail_sends SET status = 'sending', owner_pid = $2, result = NULL, started_at = $3, finished_at = NULL
          WHERE idempotency_key = $1 AND status <> 'sent' AND owner_pid IS NOT DISTINCT FROM $4`,
        [key, myPid, now, row.owner_pid],
      );
      if (taken.rowCount !== 1) return { kind: 'wait', ownerPid: row.owner_pid ?? 0 } as const;
      log.info(
        { previousOwnerPid: row.owner_pid, previousStatus: row.status },
        'sending again a mail whose last send did not go through',
      );
      return { kind: 'send' } as const;
    });
  }
}

const keyReused = (key: string): AppError =>
  new AppError(
    'illegal_state',
    `idempotency key "${key}" was already used for a different e-mail`,
    { idempotency_key: key },
    false,
  );
