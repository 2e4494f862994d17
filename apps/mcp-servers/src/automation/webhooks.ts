/**
 * Webhook registrations: commands decided by `webhookDecider` and appended to the event store;
 * `automation.webhooks` is their read model (`webhooksProjection`). Secrets are kept in
 * `automation.webhook_secrets` under a random `secret_id` the events carry, never in the log.
 */
import type pg from 'pg';
import { AppError, byteBoundedSql, isAppError, newId, type Logger } from '@switchyard/platform';
import { DEFAULT_LISTING_LIMIT, LISTING_PAGE_BYTES, nextCursor, type ListingQuery } from './caps.js';
import type { RecordedEvent } from '@switchyard/event-store';
import type { Projection } from '@switchyard/read-models';
import type { EgressGuard } from '../fetch/egress-guard.js';
import { DEFAULT_AUTOMATION_CAPS, underCap } from './caps.js';
import type { Clock } from './clock.js';
import { AUTOMATION_ACTOR, type AutomationEventLog } from './events.js';
import {
  WEBHOOK_EVENT_TYPES,
  WEBHOOK_STREAM_PREFIX,
  webhookDecider,
  webhookDeletedSchema,
  webhookRegisteredSchema,
  webhookStream,
  webhookUpdatedSchema,
  type AutomationMetadata,
  type CommandCaller,
  type WebhookCommand,
  type WebhookEvent,
} from './webhooks.decider.js';

export interface Webhook {
  readonly id: string;
  readonly name: string;
  readonly url: string;
  readonly events: string[];
  readonly created_at: string;
}

/** A registered webhook as a delivery needs it, with its secret. */
export interface WebhookTarget {
  readonly id: string;
  readonly name: string;
  readonly url: string;
  readonly secret: string;
  readonly events: string[];
}

export const WEBHOOKS_PROJECTION = 'automation-webhooks';

export const uuidLike = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

/** automation.webhooks from the webhook events (the secret itself is not in them: see webhook_secrets). */
export const webhooksProjection: Projection = {
  name: WEBHOOKS_PROJECTION,
  handles: WEBHOOK_EVENT_TYPES,
  streamPrefixes: [WEBHOOK_STREAM_PREFIX],
  // The table is created by migrateAutomation (the owner's migration phase, or the server's start).
  async setup() {},
  async apply(c: pg.PoolClient, e: RecordedEvent): Promise<void> {
    switch (e.type as WebhookEvent['type']) {
      case 'WebhookRegistered': {
        const d = webhookRegisteredSchema.parse(e.data);
        await c.query(
          `INSERT INTO automation.webhooks (id, name, url, secret_id, events, created_at, position) VALUES ($1,$2,$3,$4,$5,$6,$7)
           ON CONFLICT (id) DO UPDATE SET name = excluded.name, url = excluded.url, secret_id = excluded.secret_id, secret = NULL,
                  events = excluded.events, created_at = excluded.created_at, position = excluded.position`,
          [d.id, d.name, d.url, d.secret_id, d.events, d.registered_at, e.position],
        );
        return;
      }
      case 'WebhookUpdated': {
        const d = webhookUpdatedSchema.parse(e.data);
        await c.query(
          `UPDATE automation.webhooks SET url = $2, events = $3, secret_id = $4, secret = NULL, position = $5 WHERE id = $1`,
          [d.id, d.url, d.events, d.secret_id, e.position],
        );
        return;
      }
      case 'WebhookDeleted': {
        const d = webhookDeletedSchema.parse(e.data);
        await c.query(`DELETE FROM automation.webhooks WHERE id = $1`, [d.id]);
        return;
      }
    }
  },
  async reset(c: pg.PoolClient): Promise<void> {
    // DELETE, not TRUNCATE: the automation role has no TRUNCATE.
    await c.query(`DELETE FROM automation.webhooks`);
  },
};

export interface WebhooksDeps {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  readonly guard: EgressGuard;
  readonly clock: Clock;
  readonly events: AutomationEventLog;
  /** Most webhooks kept (AUTOMATION_MAX_WEBHOOKS). */
  readonly maxWebhooks?: number;
}

export class Webhooks {
  constructor(private readonly deps: WebhooksDeps) {}

  private async checkUrl(raw: string): Promise<string> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      // Not repeated: a webhook's URL can be its own secret, and a failed call's error is logged.
      throw new AppError('validation', 'not a valid URL');
    }
    // A URL is in the webhook's events, which operators read: a password in it would be too.
    if (url.username || url.password)
      throw new AppError(
        'validation',
        'the URL must not carry credentials (user:password@): the receiver checks the X-Switchyard-Signature made with the secret',
      );
    // Early feedback; every delivery is checked again because DNS can change.
    this.deps.guard.checkUrl(url);
    await this.deps.guard.resolveChecked(url.hostname);
    return url.toString();
  }

  private async saveSecret(webhookId: string, secret: string): Promise<string> {
    const secretId = newId();
    await this.deps.pool.query(
      `INSERT INTO automation.webhook_secrets (secret_id, webhook_id, secret, created_at) VALUES ($1,$2,$3,$4)`,
      [secretId, webhookId, secret, this.deps.clock.now()],
    );
    return secretId;
  }

  /**
   * A refusal of the decider (nothing was appended): the secret saved for the command is not
   * referenced by any event. Anything else (a timeout waiting for the projection, a lost
   * connection) may follow a successful append, so the secret stays.
   */
  private refused(err: unknown): boolean {
    return (
      isAppError(err) &&
      (err.code === 'illegal_state' ||
        err.code === 'not_found' ||
        err.code === 'validation' ||
        err.code === 'forbidden')
    );
  }

  private async dropSecret(secretId: string): Promise<void> {
    await this.deps.pool
      .query(`DELETE FROM automation.webhook_secrets WHERE secret_id = $1`, [secretId])
      .catch(() => undefined);
  }

  private command(command: WebhookCommand) {
    return this.deps.events.run(webhookStream(command.data.name), webhookDecider, command, WEBHOOKS_PROJECTION);
  }

  /** RegisterWebhook. The secret is stored first, so a registration never points to a missing secret. */
  async register(
    input: { name: string; url: string; secret: string; events: string[] },
    correlationId?: string,
    actor?: string,
  ): Promise<Webhook> {
    const url = await this.checkUrl(input.url);
    const id = newId();
    const max = this.deps.maxWebhooks ?? DEFAULT_AUTOMATION_CAPS.maxWebhooks;
    return underCap(this.deps.pool, { kind: 'webhooks', max, setting: 'AUTOMATION_MAX_WEBHOOKS' }, () =>
      this.registerChecked(id, url, input, this.deps.events.metadata(correlationId, actor), actor),
    );
  }

  private async registerChecked(
    id: string,
    url: string,
    input: { name: string; secret: string; events: string[] },
    metadata: AutomationMetadata,
    owner: string | undefined,
  ): Promise<Webhook> {
    const secretId = await this.saveSecret(id, input.secret);
    try {
      const r = await this.command({
        type: 'RegisterWebhook',
        data: { id, name: input.name, url, events: input.events, secret_id: secretId, owner },
        metadata,
      });
      const e = r.events[0] as Extract<WebhookEvent, { type: 'WebhookRegistered' }>;
      return {
        id: e.data.id,
        name: e.data.name,
        url: e.data.url,
        events: e.data.events,
        created_at: e.data.registered_at,
      };
    } catch (err) {
      if (this.refused(err)) await this.dropSecret(secretId);
      throw err;
    }
  }

  /**
   * UpdateWebhook: a new URL, event list or secret (a new secret_id); unchanged fields stay. Only
   * its owner, an admin or the system (`caller`) may.
   */
  async update(
    input: { webhook: string; url?: string | undefined; secret?: string | undefined; events?: string[] | undefined },
    correlationId?: string,
    actor?: string,
    caller?: CommandCaller,
  ): Promise<Webhook> {
    const url = input.url === undefined ? undefined : await this.checkUrl(input.url);
    const ref = await this.resolve(input.webhook);
    const secretId =
      input.secret === undefined
        ? undefined
        : await this.saveSecret(ref.id ?? (await this.idOf(ref.name)), input.secret);
    try {
      const r = await this.command({
        type: 'UpdateWebhook',
        data: {
          ...ref,
          ...(url !== undefined ? { url } : {}),
          ...(input.events !== undefined ? { events: input.events } : {}),
          ...(secretId ? { secret_id: secretId } : {}),
          caller,
        },
        metadata: this.deps.events.metadata(correlationId, actor),
      });
      if (r.state.status !== 'registered')
        throw new AppError('not_found', `no webhook named or with id "${input.webhook}"`, { webhook: input.webhook });
      if (r.events.length === 0 && secretId) await this.dropSecret(secretId);
      return {
        id: r.state.id,
        name: r.state.name,
        url: r.state.url,
        events: [...r.state.events],
        created_at: r.state.registered_at,
      };
    } catch (err) {
      if (secretId && this.refused(err)) await this.dropSecret(secretId);
      throw err;
    }
  }

  /** DeleteWebhook (its owner, an admin or the system); its secrets go with it (what was already sent stays in automation.deliveries). */
  async delete(
    refText: string,
    correlationId?: string,
    actor?: string,
    caller?: CommandCaller,
  ): Promise<{ deleted: string }> {
    const ref = await this.resolve(refText);
    const r = await this.command({
      type: 'DeleteWebhook',
      data: { ...ref, caller },
      metadata: this.deps.events.metadata(correlationId, actor),
    });
    const e = r.events[0] as Extract<WebhookEvent, { type: 'WebhookDeleted' }>;
    await this.deps.pool.query(`DELETE FROM automation.webhook_secrets WHERE webhook_id = $1`, [e.data.id]);
    return { deleted: e.data.name };
  }

  /**
   * A page of webhooks by name, after `cursor` (a name), only `webhook` (a name or id) when given.
   * The page ends at `limit` rows or once their sizes pass LISTING_PAGE_BYTES (`next_cursor`
   * then names where to go on); the secret never leaves the server after registration.
   */
  async list(q: ListingQuery & { webhook?: string | undefined } = {}): Promise<{
    webhooks: Webhook[];
    next_cursor: string | null;
  }> {
    const limit = q.limit ?? DEFAULT_LISTING_LIMIT;
    const r = await this.deps.pool.query(
      `${byteBoundedSql(
        `SELECT id, name, url, events, created_at, octet_length(url) + octet_length(events::text) + 200 AS bytes
           FROM automation.webhooks
          WHERE ($1::text IS NULL OR name > $1)
            AND ($2::text IS NULL OR name = $2 OR ($3::uuid IS NOT NULL AND id = $3::uuid))
          ORDER BY name LIMIT $4`,
        'w.name',
        '$5',
      )} ORDER BY c.name`,
      [
        q.cursor ?? null,
        q.webhook ?? null,
        q.webhook !== undefined && uuidLike.test(q.webhook) ? q.webhook : null,
        limit,
        LISTING_PAGE_BYTES,
      ],
    );
    const webhooks = r.rows.map((w) => ({
      id: w.id as string,
      name: w.name as string,
      url: w.url as string,
      events: w.events as string[],
      created_at: iso(w.created_at as Date)!,
    }));
    return {
      webhooks,
      next_cursor: nextCursor(
        r.rows,
        limit,
        webhooks.map((w) => w.name),
      ),
    };
  }

  async byRef(ref: string): Promise<WebhookTarget> {
    const r = await this.deps.pool.query(
      `SELECT w.id, w.name, w.url, coalesce(s.secret, w.secret) AS secret, w.events
         FROM automation.webhooks w LEFT JOIN automation.webhook_secrets s ON s.secret_id = w.secret_id
        WHERE w.name = $1 OR ($2::uuid IS NOT NULL AND w.id = $2::uuid)`,
      [ref, uuidLike.test(ref) ? ref : null],
    );
    if (r.rowCount === 0) throw new AppError('not_found', `no webhook named or with id "${ref}"`, { webhook: ref });
    const row = r.rows[0];
    if (typeof row.secret !== 'string')
      throw new AppError('internal', `the secret of webhook "${row.name}" is missing`, { webhook: row.name });
    return row;
  }

  /**
   * The stream a reference names: a name is its own stream; an id is looked up in the read
   * model (answered by this process's projection for its own writes) and also checked by the
   * decider, so a name registered again under another id is not touched.
   */
  private async resolve(ref: string): Promise<{ name: string; id?: string }> {
    if (!uuidLike.test(ref)) return { name: ref };
    const r = await this.deps.pool.query<{ id: string; name: string }>(
      `SELECT id, name FROM automation.webhooks WHERE name = $1 OR id = $1::uuid ORDER BY name = $1 DESC LIMIT 1`,
      [ref],
    );
    const row = r.rows[0];
    if (!row) throw new AppError('not_found', `no webhook named or with id "${ref}"`, { webhook: ref });
    return row.name === ref ? { name: ref } : { name: row.name, id: row.id };
  }

  private async idOf(name: string): Promise<string> {
    const r = await this.deps.pool.query<{ id: string }>(`SELECT id FROM automation.webhooks WHERE name = $1`, [name]);
    if (!r.rows[0]) throw new AppError('not_found', `no webhook named or with id "${name}"`, { webhook: name });
    return r.rows[0].id;
  }

  /** Rows written before webhooks were events (no position): append their WebhookRegistered once. */
  async adoptLegacy(): Promise<number> {
    const r = await this.deps.pool.query(
      `SELECT id, name, url, events, secret_id, created_at FROM automation.webhooks WHERE position IS NULL AND secret_id IS NOT NULL`,
    );
    let adopted = 0;
    for (const w of r.rows) {
      const registeredAt = iso(w.created_at)!;
      const data = {
        id: w.id,
        name: w.name,
        url: w.url,
        events: w.events,
        secret_id: w.secret_id,
        registered_at: registeredAt,
      };
      const metadata = {
        timestamp: registeredAt,
        correlationId: `adopt:${w.id}`,
        actor: `${AUTOMATION_ACTOR}:adoption`,
      };
      if (await this.deps.events.appendNew(webhookStream(w.name), [{ type: 'WebhookRegistered', data, metadata }]))
        adopted++;
    }
    if (adopted > 0)
      this.deps.logger.info(
        { adopted },
        'webhooks registered before the event log adopted as WebhookRegistered events',
      );
    return adopted;
  }
}
