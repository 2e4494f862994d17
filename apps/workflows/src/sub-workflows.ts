/**
 * Sub-workflows: a child execution's id (from the unit's idempotency key, so a re-dispatch finds
 * the same child), the bound on a root's tree, and the parent's command for a child's end. The
 * engine starts children and reports back; the rules are here.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { CommandMetadata, WorkflowCommand, WorkflowExecutionState } from '@switchyard/domain';
import { WORKFLOW_SCHEMA } from '@switchyard/workflow-executions';
import type { ParentRef } from './engine-types.js';

/** The child execution a sub-workflow unit starts: the same for every dispatch of that unit. */
export function childExecutionId(idempotencyKey: string): string {
  return `sub-${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 32)}`;
}

/**
 * Count a sub-workflow execution against its root: false when the root has its maximum. One
 * root's reservations are serialised (advisory lock), so concurrent starts cannot overshoot; a
 * re-dispatch of the same child finds its row and is let through.
 */
export async function joinTree(
  pool: pg.Pool,
  childId: string,
  rootId: string,
  parentId: string,
  depth: number,
  max: number,
): Promise<boolean> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query(`select pg_advisory_xact_lock(hashtextextended($1, 0))`, [`workflow-tree:${rootId}`]);
    const known = await client.query(`select 1 from ${WORKFLOW_SCHEMA}.execution_tree where execution_id = $1`, [
      childId,
    ]);
    let ok = known.rowCount === 1;
    if (!ok) {
      const n = await client.query<{ n: string }>(
        `select count(*) as n from ${WORKFLOW_SCHEMA}.execution_tree where root_id = $1`,
        [rootId],
      );
      ok = Number(n.rows[0]!.n) < max;
      if (ok) {
        await client.query(
          `insert into ${WORKFLOW_SCHEMA}.execution_tree (execution_id, root_id, parent_id, depth) values ($1, $2, $3, $4)`,
          [childId, rootId, parentId, depth],
        );
      }
    }
    await client.query('commit');
    return ok;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** The parent's step outcome for a child that ended (undefined while it runs). */
export function childOutcomeCommand(
  parent: ParentRef,
  child: WorkflowExecutionState,
  meta: CommandMetadata,
): WorkflowCommand | undefined {
  const ref = {
    stepId: parent.stepId,
    ...(parent.itemIndex === undefined ? {} : { itemIndex: parent.itemIndex }),
    attempt: parent.attempt,
  };
  if (child.status === 'completed')
    return { type: 'RecordStepSucceeded', data: { ...ref, output: child.outputs }, metadata: meta };
  if (child.status === 'failed' || child.status === 'canceled') {
    return {
      type: 'RecordStepFailed',
      data: { ...ref, error: { code: `subworkflow_${child.status}`, message: child.reason, retryable: false } },
      metadata: meta,
    };
  }
  return undefined;
}
