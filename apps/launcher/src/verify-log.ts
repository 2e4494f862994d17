/**
 * Check the event log against itself and against the relay's copy of it:
 *
 *   npm run verify-log
 *
 * 1. positions: every one from 0 to the head is there (a deleted event leaves a hole);
 * 2. streams: each stream's revisions run from 0 without a gap;
 * 3. the relay's JetStream stream (SWITCHYARD_EVENTS) holds a copy of every event it published,
 *    made when the event was appended: each copy it still holds (up to NATS_EVENTS_MAX_BYTES) is
 *    compared with the event at its position (id, stream, revision, type, data, metadata, time).
 * Exits 0 when all agree, 1 naming the first differences. The log is not tamper-proof against
 * whoever holds the database's owner or superuser login (they can rewrite history, and the
 * JetStream copy too with the NATS token); this tells an edit or a deletion of an event that the
 * relay's copy still holds, and any hole, from the truth.
 *
 * The database is DATABASE_URL, else the embedded PostgreSQL of DATA_DIR on EMBEDDED_PG_PORT; NATS
 * is NATS_URL (NATS_TOKEN), else the embedded nats-server of DATA_DIR on EMBEDDED_NATS_PORT.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type pg from 'pg';
import { pino } from 'pino';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EVENTS_STREAM, parseEventEnvelope, toEventEnvelope, type EventEnvelope } from '@switchyard/contracts';
import { PostgresEventStore } from '@switchyard/event-store';
import { natsAuthOptions } from '@switchyard/messaging';
import { canonicalJson, createPgPool, parseConfig, readEmbeddedNatsToken, type Logger } from '@switchyard/platform';
import { operatorDatabaseUrl } from './admin-url.js';

export interface LogVerification {
  readonly head: number;
  readonly events: number;
  /** Positions up to the head with no event (the first ones). */
  readonly holes: number[];
  readonly holeCount: number;
  /** Streams whose revisions have a gap (the first ones). */
  readonly streamGaps: { stream: string; events: number; lastRevision: number }[];
  /** Copies in the relay's stream compared, and those that differ from the log (the first ones). */
  readonly copiesCompared: number;
  readonly differ: { position: number; what: string }[];
  readonly differCount: number;
  /** Why the copies were not compared, when they were not. */
  readonly copiesSkipped?: string;
}

const FIRST = 20;

/** What of an event its copy disagrees with, or undefined when they agree. */
function disagreement(copy: EventEnvelope & { oversize?: boolean }, stored: EventEnvelope): string | undefined {
  const fields: (keyof EventEnvelope)[] = ['id', 'streamId', 'revision', 'type', 'recordedAt'];
  for (const f of fields)
    if (copy[f] !== stored[f]) return `${f}: the copy says ${String(copy[f])}, the log ${String(stored[f])}`;
  // An event too large for a message was published as a stub without its data (see the relay).
  if (copy.oversize) return undefined;
  if (canonicalJson(copy.data) !== canonicalJson(stored.data)) return 'data';
  if (canonicalJson(copy.metadata) !== canonicalJson(stored.metadata)) return 'metadata';
  return undefined;
}

export async function verifyLog(o: {
  readonly pool: pg.Pool;
  readonly store: PostgresEventStore;
  readonly nats?: NatsConnection;
  readonly stream?: string;
}): Promise<LogVerification> {
  const { rows } = await o.pool.query<{ n: string; head: string }>(
    'select count(*) as n, coalesce(max(position), -1) as head from eventstore.events',
  );
  const events = Number(rows[0]!.n);
  const head = Number(rows[0]!.head);
  const holeCount = head + 1 - events;
  const holes =
    holeCount > 0
      ? (
          await o.pool.query<{ p: string }>(
            `select s.p from generate_series(0::bigint, $1::bigint) s(p)
              where not exists (select 1 from eventstore.events e where e.position = s.p) order by s.p limit ${FIRST}`,
            [head],
          )
        ).rows.map((r) => Number(r.p))
      : [];
  const streamGaps = (
    await o.pool.query<{ stream_id: string; n: string; last: string }>(
      `select stream_id, count(*) as n, max(revision) as last from eventstore.events
        group by stream_id having max(revision) + 1 <> count(*) or min(revision) <> 0 order by stream_id limit ${FIRST}`,
    )
  ).rows.map((r) => ({ stream: r.stream_id, events: Number(r.n), lastRevision: Number(r.last) }));

  const differ: { position: number; what: string }[] = [];
  let differCount = 0;
  let copiesCompared = 0;
  let copiesSkipped: string | undefined;
  if (!o.nats) copiesSkipped = 'no NATS connection';
  else {
    const name = o.stream ?? EVENTS_STREAM;
    const info = await (await jetstreamManager(o.nats)).streams.info(name).catch(() => undefined);
    if (!info) copiesSkipped = `no stream ${name}`;
    else if (info.state.messages > 0) {
      const consumer = await jetstream(o.nats).consumers.get(name, { opt_start_seq: info.state.first_seq });
      const last = info.state.last_seq;
      let batch: EventEnvelope[] = [];
      const compare = async () => {
        if (batch.length === 0) return;
        const from = Math.min(...batch.map((c) => c.position));
        const to = Math.max(...batch.map((c) => c.position));
        const stored = new Map(
          (await o.store.readAll({ after: from - 1, until: to, maxCount: to - from + 1 })).map((e) => [
            e.position,
            toEventEnvelope(e),
          ]),
        );
        for (const copy of batch) {
          copiesCompared++;
          const s = stored.get(copy.position);
          const what = s ? disagreement(copy, s) : 'not in the log';
          if (what === undefined) continue;
          differCount++;
          if (differ.length < FIRST) differ.push({ position: copy.position, what });
        }
        batch = [];
      };
      for (let seq = info.state.first_seq; seq <= last;) {
        const msgs = await consumer.fetch({ max_messages: 500, expires: 5_000 });
        let got = 0;
        for await (const m of msgs) {
          got++;
          seq = m.seq + 1;
          try {
            batch.push(parseEventEnvelope(m.data));
          } catch {
            differCount++;
            if (differ.length < FIRST) differ.push({ position: -1, what: `stream message ${m.seq} is not an event` });
          }
          if (m.seq >= last) break;
        }
        await compare();
        if (got === 0) break;
      }
      await compare();
    }
  }
  return {
    head,
    events,
    holes,
    holeCount,
    streamGaps,
    copiesCompared,
    differ,
    differCount,
    ...(copiesSkipped ? { copiesSkipped } : {}),
  };
}

export async function main(out: (s: string) => void = (s) => void process.stdout.write(s)): Promise<number> {
  const config = parseConfig();
  const logger = pino({ level: 'warn' }) as unknown as Logger;
  const url = operatorDatabaseUrl(config);
  const pool = createPgPool({ connectionString: url, max: 2 }, { name: 'verify-log', logger });
  const store = new PostgresEventStore({ pool, logger });
  const token =
    config.NATS_TOKEN ?? (config.NATS_URL ? undefined : readEmbeddedNatsToken(path.resolve(config.DATA_DIR, 'nats')));
  const natsUrl = config.NATS_URL ?? `nats://127.0.0.1:${config.EMBEDDED_NATS_PORT}`;
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({
      servers: natsUrl.split(',').map((u) => u.trim()),
      timeout: 5_000,
      reconnect: false,
      ...natsAuthOptions(token ? { token } : {}),
    });
  } catch (err) {
    out(`NATS not reached (${(err as Error).message}): the relay's copies are not compared\n`);
  }
  try {
    const v = await verifyLog({ pool, store, ...(nc ? { nats: nc } : {}) });
    out(`${JSON.stringify(v)}\n`);
    const bad = v.holeCount > 0 || v.streamGaps.length > 0 || v.differCount > 0;
    out(
      bad
        ? `the log disagrees with itself or with the relay's copy: ${v.holeCount} missing positions, ${v.streamGaps.length} streams with a gap, ${v.differCount} events unlike their copy\n`
        : `the log agrees: ${v.events} events, positions 0-${v.head} without a hole, ${v.copiesCompared} checked against the relay's copy${v.copiesSkipped ? ` (copies not compared: ${v.copiesSkipped})` : ''}\n`,
    );
    return bad ? 1 : 0;
  } finally {
    await nc?.close();
    await pool.end();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    },
  );
}
