/**
 * Placement of a queued task: which instance takes it (capability, health, breaker, the agent's
 * concurrency, then least loaded), and the shared assignment slot that holds the place across
 * dispatchers (`<schema>.assignments`, through `reserve_slot` of leases.ts). The queue pass that
 * uses them (order, aging, coalescing) is the Dispatcher's.
 */
import type pg from 'pg';
import type { ExistingTaskState } from '@switchyard/domain';
import type { AgentInstance, InstanceRegistry } from './instances.js';

/** Capability (or the asked-for agent), health, breaker, concurrency; then least loaded, avoiding instances that failed this task. */
export function selectInstance(
  registry: InstanceRegistry,
  s: Pick<ExistingTaskState, 'task_type' | 'agent' | 'failed_instances'>,
  agentConcurrency: Readonly<Record<string, number>> | undefined,
  exclude?: ReadonlySet<string>,
): AgentInstance | undefined {
  const now = Date.now();
  const agentLoad = new Map<string, number>();
  for (const i of registry.instances.values()) agentLoad.set(i.agent, (agentLoad.get(i.agent) ?? 0) + i.inFlight);
  const limit = (agent: string) => agentConcurrency?.[agent] ?? Number.POSITIVE_INFINITY;
  const candidates = registry
    .capable(s.task_type, s.agent)
    .filter(
      (i) =>
        registry.accepts(i, now) &&
        (agentLoad.get(i.agent) ?? 0) < limit(i.agent) &&
        !exclude?.has(i.key) &&
        !exclude?.has(`agent:${i.agent}`),
    );
  if (candidates.length === 0) return undefined;
  const fresh = candidates.filter((i) => !s.failed_instances.includes(i.instance));
  // Only when every live capable instance failed this task before is one of them tried again.
  const pool = fresh.length > 0 ? fresh : candidates;
  const score = (i: AgentInstance) =>
    (i.inFlight + Math.max(0, i.reportedInFlight - i.inFlight) + i.reportedQueue) / Math.max(1, i.maxConcurrency);
  return pool.sort((a, b) => score(a) - score(b) || a.inFlight - b.inFlight || a.key.localeCompare(b.key))[0];
}

export type SlotReservation = 'ok' | 'agent_full' | 'instance_full' | 'fenced';

/** Reserve the attempt's slot on the instance and its agent under the partition's fence: one statement (the lock is held for the function's run, not for five round trips). */
export async function reserveSlotRow(
  pool: pg.Pool,
  schema: string,
  t: { taskId: string; assignment: number; partition: number; epoch: number; memberId: string },
  inst: AgentInstance,
  agentConcurrency: Readonly<Record<string, number>> | undefined,
): Promise<SlotReservation> {
  const agentLimit = agentConcurrency?.[inst.agent] ?? 2_147_483_647;
  const res = await pool.query<{ r: SlotReservation }>(
    `select ${schema}.reserve_slot($1, $2, $3, $4, $5, $6, $7, $8, $9) as r`,
    [
      t.taskId,
      t.assignment,
      inst.agent,
      inst.instance,
      t.partition,
      t.epoch,
      t.memberId,
      agentLimit,
      inst.maxConcurrency,
    ],
  );
  return res.rows[0]!.r;
}

/** Give attempts' slots back: a conditional delete of this dispatcher's own rows of those attempts. */
export async function deleteSlotRows(
  pool: pg.Pool,
  schema: string,
  rows: readonly { taskId: string; assignment: number }[],
  memberId: string,
): Promise<pg.QueryResult> {
  return pool.query(
    `delete from ${schema}.assignments a using unnest($1::text[], $2::int[]) as r(task_id, assignment)
      where a.task_id = r.task_id and a.assignment = r.assignment and a.dispatcher = $3`,
    [rows.map((r) => r.taskId), rows.map((r) => r.assignment), memberId],
  );
}
