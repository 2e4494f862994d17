import type pg from 'pg';
import type { Logger } from '@switchyard/platform';
import { functionProbe, type Probe } from '../probes.js';

/**
 * A table of live processes of one role that heartbeat into it (the workflow engines'
 * `workflows.engine_members`, the dispatchers' `delegation.dispatcher_members`): `member_id`,
 * `heartbeat_at`. A process that leaves deletes its row; one that stopped without leaving (killed,
 * or frozen by SIGSTOP or a paused VM) keeps it and its heartbeat ages.
 */
export interface MemberTable {
  /** The role, as it shows in the probe's name (`process:<role>:<member>`). */
  readonly role: string;
  /** Schema-qualified table name (plain identifiers only). */
  readonly table: string;
  /** A heartbeat older than this is a silent process (a few of its heartbeat periods). */
  readonly silentAfterMs: number;
}

/** Probe service name of a process of a role that heartbeats into a member table. */
export const processProbeName = (role: string, member: string): string => `process:${role}:${member}`;

/** How long a silent process is shown (down) before it counts as gone for good and is retired. */
export const SILENT_PROCESS_FORGET_MS = 120_000;

const plainTable = /^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$/;

/**
 * Finds the processes of each member table and probes each by the age of its heartbeat, read from
 * PostgreSQL's own clock (so no host's clock matters): young enough, up; older than the table's
 * `silentAfterMs`, down ("no heartbeat for N s"), so the health report, the availability figures
 * and the `service_unavailable` alert tell an operator that a workflow engine or a dispatcher
 * stopped (its partitions are taken over by the others meanwhile). A process whose row is gone
 * (it left) or silent past SILENT_PROCESS_FORGET_MS (it died) is retired at the next round: it
 * leaves the report, and its alerts resolve.
 */
export class MemberDiscovery {
  private readonly known = new Set<string>();
  private readonly log: Logger;

  constructor(
    private readonly o: {
      readonly pool: pg.Pool;
      readonly tables: readonly MemberTable[];
      readonly logger: Logger;
      readonly addProbe: (probe: Probe) => void;
      readonly removeProbe?: (service: string, reason: string) => Promise<void> | void;
      readonly forgetAfterMs?: number;
    },
  ) {
    for (const t of o.tables) if (!plainTable.test(t.table)) throw new Error(`not a plain table name: ${t.table}`);
    this.log = o.logger.child({ component: 'monitor-members', correlationId: 'monitor' });
  }

  async refresh(): Promise<void> {
    const seen = new Set<string>();
    const forgetS = (this.o.forgetAfterMs ?? SILENT_PROCESS_FORGET_MS) / 1000;
    for (const t of this.o.tables) {
      let rows: { member_id: string }[];
      try {
        ({ rows } = await this.o.pool.query<{ member_id: string }>(
          `select member_id from ${t.table} where heartbeat_at > now() - make_interval(secs => $1)`,
          [forgetS],
        ));
      } catch (err) {
        // The role not set up here (its tables missing), or the database away: nothing is removed.
        this.log.debug({ err, table: t.table }, 'listing members failed; retrying next round');
        for (const name of this.known) if (name.startsWith(`process:${t.role}:`)) seen.add(name);
        continue;
      }
      for (const r of rows) {
        const name = processProbeName(t.role, r.member_id);
        seen.add(name);
        if (this.known.has(name)) continue;
        this.known.add(name);
        this.o.addProbe(this.probe(name, t, r.member_id));
        this.log.debug({ service: name }, 'probing a process by its heartbeat');
      }
    }
    for (const name of this.known) {
      if (seen.has(name)) continue;
      this.known.delete(name);
      this.log.info({ service: name }, 'process left, or silent too long to be alive: probe removed');
      try {
        await this.o.removeProbe?.(name, 'left, or no heartbeat for over two minutes');
      } catch (err) {
        this.log.warn({ err, service: name }, 'retiring a process failed');
      }
    }
  }

  private probe(name: string, t: MemberTable, member: string): Probe {
    return functionProbe(name, 'process', async () => {
      const { rows } = await this.o.pool.query<{ age_ms: number | null }>(
        `select (extract(epoch from now() - heartbeat_at) * 1000)::float8 as age_ms from ${t.table} where member_id = $1`,
        [member],
      );
      const age = rows[0]?.age_ms;
      // Left since the last listing: not an outage; the next round retires it.
      if (age === undefined || age === null) return { left: true };
      if (age > t.silentAfterMs)
        throw new Error(
          `no heartbeat for ${Math.round(age / 1000)} s: stopped (frozen) or ended without leaving; its partitions go to the others`,
        );
      return { heartbeatAgeMs: Math.round(age) };
    });
  }
}
