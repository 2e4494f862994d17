import type pg from 'pg';
import { migrateUnderLock } from '@switchyard/platform';

/**
 * Tables of the automation server, created idempotently at start. An advisory lock
 * serialises concurrent starts (two instances racing on CREATE ... IF NOT EXISTS can
 * still collide on the catalogue's unique index).
 */
export const automationDdl = `
CREATE SCHEMA IF NOT EXISTS automation;
CREATE TABLE IF NOT EXISTS automation.webhooks (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  url text NOT NULL,
  secret text NOT NULL,
  events text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS automation.schedules (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  cron text NOT NULL,
  timezone text NOT NULL,
  target jsonb NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  next_fire_at timestamptz NOT NULL,
  last_fired_at timestamptz,
  fire_count bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS automation.triggers (
  id uuid PRIMARY KEY,
  template_id text NOT NULL,
  input jsonb NOT NULL DEFAULT '{}',
  source text NOT NULL,
  schedule_id uuid,
  fire_at timestamptz,
  correlation_id text NOT NULL,
  status text NOT NULL DEFAULT 'pending',
  created_at timestamptz NOT NULL,
  UNIQUE (schedule_id, fire_at)
);
CREATE INDEX IF NOT EXISTS triggers_pending ON automation.triggers (created_at) WHERE status = 'pending';
-- One row per idempotency key: a key whose delivery got an answer is never POSTed again.
-- No foreign key to webhooks: deleting a webhook must not erase what was already sent.
-- Webhooks owed by schedule occurrences: written in the transaction that claims the occurrence
-- (a crash before the send loses nothing), sent and retried by the scheduler until answered.
CREATE TABLE IF NOT EXISTS automation.scheduled_deliveries (
  delivery_id text PRIMARY KEY,
  schedule_id uuid NOT NULL,
  fire_at timestamptz NOT NULL,
  webhook text NOT NULL,
  event text NOT NULL,
  payload jsonb NOT NULL,
  correlation_id text NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'gave_up')),
  attempts int NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  last_error text,
  created_at timestamptz NOT NULL,
  finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS scheduled_deliveries_due ON automation.scheduled_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS automation.deliveries (
  delivery_id text PRIMARY KEY,
  webhook_id uuid NOT NULL,
  event text NOT NULL,
  request_fingerprint text NOT NULL,
  status text NOT NULL CHECK (status IN ('sending', 'answered', 'failed')),
  owner_pid int,
  result jsonb,
  sends int NOT NULL DEFAULT 0,
  started_at timestamptz NOT NULL,
  finished_at timestamptz
);
-- One-shot schedules ("after"): no cron, fire once at next_fire_at, then disabled.
ALTER TABLE automation.schedules ADD COLUMN IF NOT EXISTS run_once boolean NOT NULL DEFAULT false;
ALTER TABLE automation.schedules ALTER COLUMN cron DROP NOT NULL;
-- What a scheduled delivery sends: a webhook POST, or an e-mail (payload = the message).
ALTER TABLE automation.scheduled_deliveries ADD COLUMN IF NOT EXISTS channel text NOT NULL DEFAULT 'webhook';
-- One row per send_email idempotency key, like automation.deliveries for webhooks.
CREATE TABLE IF NOT EXISTS automation.mail_sends (
  idempotency_key text PRIMARY KEY,
  request_fingerprint text NOT NULL,
  status text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
  owner_pid int,
  result jsonb,
  sends int NOT NULL DEFAULT 0,
  started_at timestamptz NOT NULL,
  finished_at timestamptz
);
-- The embedded development mailbox: what its SMTP server received (capped in size and count).
CREATE TABLE IF NOT EXISTS automation.mailbox (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id text,
  mail_from text NOT NULL,
  rcpt_to text[] NOT NULL,
  header_to text[] NOT NULL DEFAULT '{}',
  cc text[] NOT NULL DEFAULT '{}',
  subject text NOT NULL DEFAULT '',
  text_body text,
  html_body text,
  size_bytes int NOT NULL,
  received_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS mailbox_rcpt ON automation.mailbox USING gin (rcpt_to);
-- What the workflow engine's trigger starter did with a trigger: 'started' with the execution
-- (its id is derived from the trigger id), or 'failed' with why (unknown template, bad input).
ALTER TABLE automation.triggers ADD COLUMN IF NOT EXISTS execution_id text;
ALTER TABLE automation.triggers ADD COLUMN IF NOT EXISTS error text;
ALTER TABLE automation.triggers ADD COLUMN IF NOT EXISTS started_at timestamptz;
-- Queued direct deliveries (queue_webhook, channel 'a2a': A2A push notifications): no schedule, a URL
-- in place of a registered webhook, sent in order of seq within ordering_key (one pending at a time).
ALTER TABLE automation.scheduled_deliveries ALTER COLUMN schedule_id DROP NOT NULL;
ALTER TABLE automation.scheduled_deliveries ALTER COLUMN fire_at DROP NOT NULL;
ALTER TABLE automation.scheduled_deliveries ADD COLUMN IF NOT EXISTS ordering_key text;
ALTER TABLE automation.scheduled_deliveries ADD COLUMN IF NOT EXISTS seq bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE automation.scheduled_deliveries ADD COLUMN IF NOT EXISTS response_status int;
CREATE INDEX IF NOT EXISTS scheduled_deliveries_ordering ON automation.scheduled_deliveries (ordering_key, seq) WHERE status = 'pending';
-- Webhook registrations and schedules are events (streams automation_webhook-<name> and
-- automation_schedule-<name>): automation.webhooks and automation.schedules are their read models,
-- kept by the server's projection runner (checkpoints below) and rebuilt from the log at will.
CREATE TABLE IF NOT EXISTS automation.checkpoints (
  name text PRIMARY KEY,
  position bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Secrets stay out of the event log (other components read it): the events carry secret_id.
-- Operational, not a read model: a rebuild leaves it alone.
CREATE TABLE IF NOT EXISTS automation.webhook_secrets (
  secret_id uuid PRIMARY KEY,
  webhook_id uuid NOT NULL,
  secret text NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_secrets_webhook ON automation.webhook_secrets (webhook_id);
-- position: the event that last wrote the row; NULL for a row from before the events (adopted at start).
ALTER TABLE automation.webhooks ADD COLUMN IF NOT EXISTS secret_id uuid;
ALTER TABLE automation.webhooks ADD COLUMN IF NOT EXISTS position bigint;
ALTER TABLE automation.webhooks ALTER COLUMN secret DROP NOT NULL;
INSERT INTO automation.webhook_secrets (secret_id, webhook_id, secret, created_at)
  SELECT id, id, secret, created_at FROM automation.webhooks WHERE secret IS NOT NULL ON CONFLICT DO NOTHING;
UPDATE automation.webhooks SET secret_id = id, secret = NULL WHERE secret IS NOT NULL;
-- plan_revision: the stream revision of the ScheduleCreated/ScheduleResumed that planned next_fire_at.
ALTER TABLE automation.schedules ADD COLUMN IF NOT EXISTS plan_revision bigint NOT NULL DEFAULT 0;
ALTER TABLE automation.schedules ADD COLUMN IF NOT EXISTS position bigint;
-- What the scheduler did with a schedule (operational, high volume: no events): the fire time it
-- planned after the last occurrence under plan_revision, whether a one-shot is done, the counts.
-- A newer plan in automation.schedules (a resume) takes over from next_fire_at here.
CREATE TABLE IF NOT EXISTS automation.schedule_runs (
  schedule_id uuid PRIMARY KEY,
  plan_revision bigint NOT NULL,
  next_fire_at timestamptz NOT NULL,
  done boolean NOT NULL DEFAULT false,
  last_fired_at timestamptz,
  fire_count bigint NOT NULL DEFAULT 0
);
INSERT INTO automation.schedule_runs (schedule_id, plan_revision, next_fire_at, done, last_fired_at, fire_count)
  SELECT id, 0, next_fire_at, run_once AND NOT enabled, last_fired_at, fire_count FROM automation.schedules
   WHERE position IS NULL AND fire_count > 0 ON CONFLICT DO NOTHING;
-- owner: the person a schedule answers to (who created it, then who last resumed it);
-- paused_reason: owner_revoked when the system paused it. revoked_actors: the persons whose API
-- key was revoked (a projection of ApiKeyRevoked): their schedules neither fire nor stay active.
ALTER TABLE automation.schedules ADD COLUMN IF NOT EXISTS owner text;
ALTER TABLE automation.schedules ADD COLUMN IF NOT EXISTS paused_reason text;
CREATE TABLE IF NOT EXISTS automation.revoked_actors (
  actor text PRIMARY KEY,
  revoked_at timestamptz NOT NULL,
  position bigint
);
-- The person a scheduled or queued send is for (the schedule's owner, queue_webhook's caller): sends
-- take a share per owner, and a revoked owner's pending ones are given up.
ALTER TABLE automation.scheduled_deliveries ADD COLUMN IF NOT EXISTS owner text;
CREATE INDEX IF NOT EXISTS scheduled_deliveries_owner ON automation.scheduled_deliveries (owner) WHERE status = 'pending';
-- The person a trigger's workflow is started for (its startedBy).
ALTER TABLE automation.triggers ADD COLUMN IF NOT EXISTS on_behalf_of text;
-- error_code: the refusal's code when the engine marks a row failed (not_found: the template is
-- gone); plan_revision: the schedule's plan it fired under. Together they let the scheduler pause
-- a schedule whose template was deleted (only for a fire of its current plan: a resume starts over).
ALTER TABLE automation.triggers ADD COLUMN IF NOT EXISTS error_code text;
ALTER TABLE automation.triggers ADD COLUMN IF NOT EXISTS plan_revision bigint;
CREATE INDEX IF NOT EXISTS triggers_target_missing ON automation.triggers (schedule_id)
  WHERE status = 'failed' AND error_code = 'not_found';
-- Whose namespace a caller's idempotency key is in (its _meta.actor; '' for a call for nobody): the
-- stored key is '<actor>/<key>', so a key one caller claims decides nothing for another. NULL: a
-- row from before keys were scoped, which keeps answering for its key as given.
ALTER TABLE automation.mail_sends ADD COLUMN IF NOT EXISTS key_scope text;
ALTER TABLE automation.deliveries ADD COLUMN IF NOT EXISTS key_scope text;
ALTER TABLE automation.scheduled_deliveries ADD COLUMN IF NOT EXISTS key_scope text;
-- The persons whose API key is an admin's (a projection of the gateway's ApiKeyCreated): they may
-- change webhooks and schedules others own.
CREATE TABLE IF NOT EXISTS automation.admin_actors (
  actor text PRIMARY KEY,
  position bigint
);
-- A schedule's name is unique within its scope: the person who created it (their own namespace, so
-- a name one caller takes first never refuses another's: the onboarding's follow-ups are named from
-- the next customer id, which anyone can predict). NULL: made by the system, or before scopes,
-- in the one namespace names had before. Only the unique constraint of old is replaced.
ALTER TABLE automation.schedules ADD COLUMN IF NOT EXISTS scope text;
ALTER TABLE automation.schedules DROP CONSTRAINT IF EXISTS schedules_name_key;
CREATE UNIQUE INDEX IF NOT EXISTS schedules_scope_name ON automation.schedules (coalesce(scope, ''), name);
CREATE INDEX IF NOT EXISTS schedules_name ON automation.schedules (name);
-- A one-shot schedule that has fired (its runs row done): set by the claim that fires it, and by the
-- projection whenever it writes the row again (a replay). The scheduler's tick, the revoked owners'
-- pass and the one-shot cap look only at schedules not finished, through the partial indexes below:
-- fired one-shots stay listed as records (an onboarding leaves three), and with a scan of every
-- schedule each tick a million of them took the scheduler 1.5-2.5 s of PostgreSQL every second.
ALTER TABLE automation.schedules ADD COLUMN IF NOT EXISTS finished boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS schedules_live ON automation.schedules (next_fire_at) WHERE enabled AND NOT finished;
-- It replaces the index of every enabled schedule, fired one-shots included, which no query uses now.
DROP INDEX IF EXISTS automation.schedules_due;
CREATE INDEX IF NOT EXISTS schedules_one_shots_pending ON automation.schedules (id) WHERE run_once AND NOT finished;
-- The finished rows by age, for the record retention's purge (retention.ts).
CREATE INDEX IF NOT EXISTS schedules_finished ON automation.schedules (next_fire_at) WHERE finished;
CREATE INDEX IF NOT EXISTS triggers_finished ON automation.triggers (created_at) WHERE status <> 'pending';
CREATE INDEX IF NOT EXISTS scheduled_deliveries_finished ON automation.scheduled_deliveries (finished_at) WHERE status <> 'pending';
CREATE INDEX IF NOT EXISTS deliveries_finished ON automation.deliveries (finished_at) WHERE status <> 'sending';
CREATE INDEX IF NOT EXISTS mail_sends_finished ON automation.mail_sends (finished_at) WHERE status <> 'sending';
-- list_schedules of one owner (how a revoked owner's schedules are found), and the queued
-- deliveries' listing (latest first, all or one ordering key), without a scan of the whole table.
CREATE INDEX IF NOT EXISTS schedules_owner ON automation.schedules (owner, name, id);
CREATE INDEX IF NOT EXISTS scheduled_deliveries_seq ON automation.scheduled_deliveries (seq);
CREATE INDEX IF NOT EXISTS scheduled_deliveries_ordering_all ON automation.scheduled_deliveries (ordering_key, seq);
-- Rows from before the column (once; later starts look at the pending one-shots only, by the index).
UPDATE automation.schedules s SET finished = true
 WHERE s.run_once AND NOT s.finished
   AND EXISTS (SELECT 1 FROM automation.schedule_runs r WHERE r.schedule_id = s.id AND r.done);
`;

export async function migrateAutomation(pool: pg.Pool): Promise<void> {
  await migrateUnderLock(pool, 'switchyard.automation.schema', automationDdl);
}
