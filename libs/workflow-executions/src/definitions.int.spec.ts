import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { AppError, createLogger, type Logger } from '@switchyard/platform';
import { handleCommand, PostgresEventStore } from '@switchyard/event-store';
import {
  ProjectionRunner,
  WORKFLOW_DEFINITIONS_PROJECTION,
  workflowDefinitionsProjection,
} from '@switchyard/read-models';
import { freshDatabase } from '@switchyard/testing';
import {
  builtInTemplates,
  customerOnboardingTemplate,
  definitionDecider,
  workflowDefinitionSchema,
  workflowDefinitionStream,
  type ToolCatalog,
} from '@switchyard/domain';
import { DefinitionStore } from './definitions.js';
import { ensureWorkflowSchema } from './schema.js';

const logger = createLogger('definitions-events-int', process.env.LOG_LEVEL ?? 'silent');

const catalog: ToolCatalog = {
  servers: [{ name: 'database', tools: ['query'] }],
  taskTypes: ['revenue_analysis'],
  definitions: [],
};
const def = (id: string, version: number, tool: 'query' | 'agent' = 'query') => ({
  id,
  version,
  name: `${id} v${version}`,
  steps: [{ id: 'a', uses: tool === 'query' ? 'mcp:database/query' : 'agent:revenue_analysis' }],
});

/** Every row of the read model, in a stable order and a comparable form. */
async function rows(pool: pg.Pool) {
  const r = await pool.query(
    `select id, version, definition, source, created_at from workflows.definitions order by id, version`,
  );
  return r.rows.map((x) => ({ ...x, created_at: (x.created_at as Date).toISOString() }));
}

/**
 * Definitions as events, through the real PostgreSQL event store and the real projection runner:
 * register, update, delete are events on `workflow_definition-<id>` with actor and correlation id;
 * the table is their read model, and a rebuild from the log gives the same rows.
 */
describe('workflow definitions are events; workflows.definitions is their projection (real PostgreSQL)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let defs: DefinitionStore;

  before(async () => {
    const url = await freshDatabase('wf_definitions_events');
    pool = new pg.Pool({ connectionString: url, max: 6 });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    await ensureWorkflowSchema(pool);
    defs = new DefinitionStore(pool, { store, logger });
    await defs.start();
  });

  after(async () => {
    await defs?.stop();
    await store?.close();
    await pool?.end();
  });

  it('the built-in templates are seeded as events once (a second start records nothing)', async () => {
    const builtins = await defs.list({ source: 'builtin' });
    assert.deepEqual(builtins.map((d) => d.definition.id).sort(), builtInTemplates.map((t) => t.id).sort());
    const head = await store.headPosition();
    const again = new DefinitionStore(pool, { store, logger });
    await again.start();
    await again.stop();
    assert.equal(await store.headPosition(), head, 'no new event for templates already registered');
    const [seed] = await store.readStream(workflowDefinitionStream(builtInTemplates[0]!.id));
    assert.equal(seed?.type, 'DefinitionRegistered');
    assert.equal(seed?.metadata['actor'], 'system:builtin');
  });

  it('register, update, repeat, conflict, delete: events with actor and correlation id, and a table that reads its own writes', async () => {
    const r1 = await defs.register(def('flow_a', 1), catalog, { actor: 'apikey:adm', correlationId: 'corr-1' });
    assert.equal(r1.created, true);
    // Read right after the command: the row is there (the registration waited for the projection).
    assert.equal((await defs.get('flow_a')).definition.version, 1);
    const r2 = await defs.register(def('flow_a', 2, 'agent'), catalog, {
      actor: 'apikey:adm',
      correlationId: 'corr-2',
    });
    assert.equal(r2.created, true);
    assert.equal((await defs.get('flow_a')).definition.version, 2);
    assert.equal((await defs.get('flow_a', 1)).definition.steps[0]!.uses, 'mcp:database/query');
    // The same content again: accepted, no event.
    const head = await store.headPosition();
    assert.equal((await defs.register(def('flow_a', 1), catalog)).created, false);
    assert.equal(await store.headPosition(), head);
    // Other content under an existing version, or an older version: 409 (illegal_state).
    await assert.rejects(
      defs.register({ ...def('flow_a', 2), name: 'other' }, catalog),
      (e: AppError) => e.code === 'illegal_state' && e.details['latest'] === 2,
    );
    // Invalid: 400 before any command.
    await assert.rejects(
      defs.register({ ...def('flow_a', 3), steps: [{ id: 'a', uses: 'mcp:database/nope' }] }, catalog),
      (e: AppError) => e.code === 'validation',
    );

    await defs.register(def('flow_b', 1), catalog, { actor: 'apikey:adm', correlationId: 'corr-3' });
    await defs.register(def('flow_b', 2), catalog, { actor: 'apikey:adm', correlationId: 'corr-3' });
    const d = await defs.delete('flow_b', { actor: 'apikey:adm', correlationId: 'corr-4', reason: 'obsolete' });
    assert.deepEqual(d.versions, [1, 2]);
    await assert.rejects(defs.get('flow_b'), (e: AppError) => e.code === 'not_found');
    await assert.rejects(defs.delete('flow_b'), (e: AppError) => e.code === 'not_found');
    await assert.rejects(defs.delete('revenue_analysis'), (e: AppError) => e.code === 'illegal_state');
    // Again after a delete: only above the last version.
    await assert.rejects(defs.register(def('flow_b', 2), catalog), (e: AppError) => e.code === 'illegal_state');
    await defs.register(def('flow_b', 3), catalog, { actor: 'apikey:adm', correlationId: 'corr-5' });
    assert.deepEqual(
      (await defs.list({ id: 'flow_b', allVersions: true })).map((x) => x.definition.version),
      [3],
    );

    const events = await store.readStream(workflowDefinitionStream('flow_b'));
    assert.deepEqual(
      events.map((e) => [e.type, e.metadata['actor'], e.metadata['correlationId']]),
      [
        ['DefinitionRegistered', 'apikey:adm', 'corr-3'],
        ['DefinitionRegistered', 'apikey:adm', 'corr-3'],
        ['DefinitionDeleted', 'apikey:adm', 'corr-4'],
        ['DefinitionRegistered', 'apikey:adm', 'corr-5'],
      ],
    );
    assert.equal((events[2]!.data as { reason: string }).reason, 'obsolete');
  });

  it('a store that only reads (no runner in its process) sees a registration once the projection applied it', async () => {
    const reader = new DefinitionStore(pool);
    await defs.register(def('flow_c', 1), catalog);
    assert.equal((await reader.get('flow_c')).definition.version, 1);
    assert.ok((await reader.ids()).includes('flow_c'));
  });

  it('rebuild reproduces the read model: truncate the table and its checkpoint, replay the log, same rows', async () => {
    const before = await rows(pool);
    assert.ok(before.length >= builtInTemplates.length + 4, `rows before: ${before.length}`);
    await defs.stop();
    await pool.query('truncate workflows.definitions');
    await pool.query(`update read_models.checkpoints set position = -1 where name = $1`, [
      WORKFLOW_DEFINITIONS_PROJECTION,
    ]);
    assert.equal((await rows(pool)).length, 0);
    const runner = new ProjectionRunner({ store, db: { pool }, projections: [workflowDefinitionsProjection], logger });
    await runner.start();
    await runner.rebuild(WORKFLOW_DEFINITIONS_PROJECTION);
    await runner.waitFor(undefined, WORKFLOW_DEFINITIONS_PROJECTION);
    await runner.stop();
    assert.deepEqual(await rows(pool), before);
    await defs.start();
  });

  it('rows written before definitions were events are registered as events at start, and then survive a rebuild', async () => {
    await pool.query(
      `insert into workflows.definitions (id, version, definition, source, created_at) values ('legacy', 1, $1, 'user', '2025-05-01T00:00:00Z'), ('legacy', 2, $2, 'user', '2025-06-01T00:00:00Z')`,
      [JSON.stringify(def('legacy', 1)), JSON.stringify(def('legacy', 2))],
    );
    const adopting = new DefinitionStore(pool, { store, logger });
    await adopting.start();
    await adopting.stop();
    const events = await store.readStream(workflowDefinitionStream('legacy'));
    assert.deepEqual(
      events.map((e) => [
        e.type,
        (e.data as { version: number }).version,
        (e.data as { registeredAt: string }).registeredAt,
      ]),
      [
        ['DefinitionRegistered', 1, '2025-05-01T00:00:00.000Z'],
        ['DefinitionRegistered', 2, '2025-06-01T00:00:00.000Z'],
      ],
    );
    const before = await rows(pool);
    const runner = new ProjectionRunner({ store, db: { pool }, projections: [workflowDefinitionsProjection], logger });
    await runner.start();
    await runner.rebuild(WORKFLOW_DEFINITIONS_PROJECTION);
    await runner.waitFor(undefined, WORKFLOW_DEFINITIONS_PROJECTION);
    await runner.stop();
    assert.deepEqual(await rows(pool), before);
  });
});

/** A logger that keeps the warnings its children log (the store logs through a child). */
function warningsLogger(): { logger: Logger; warnings: { fields: Record<string, unknown>; msg: string }[] } {
  const warnings: { fields: Record<string, unknown>; msg: string }[] = [];
  const root = createLogger('definitions-builtin-int', process.env.LOG_LEVEL ?? 'silent');
  const child = root.child.bind(root);
  root.child = ((bindings: Record<string, unknown>) => {
    const c = child(bindings);
    const warn = c.warn.bind(c);
    c.warn = (obj: unknown, msg?: string) => {
      warnings.push({ fields: obj as Record<string, unknown>, msg: String(msg) });
      warn(obj as object, msg);
    };
    return c;
  }) as unknown as typeof root.child;
  return { logger: root, warnings };
}

/**
 * A built-in template version already stored by an earlier build with other content (the code
 * changed it without a new version): the stored content stays, and the start says so.
 */
describe('a built-in template version stored with other content than the code has (real PostgreSQL)', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;

  before(async () => {
    const url = await freshDatabase('wf_definitions_builtin_drift');
    pool = new pg.Pool({ connectionString: url, max: 4 });
    store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
    await store.init();
    await ensureWorkflowSchema(pool);
  });

  after(async () => {
    await store?.close();
    await pool?.end();
  });

  it('keeps the stored content and warns at each start, naming the template, the version and where it differs', async () => {
    const code = workflowDefinitionSchema.parse(customerOnboardingTemplate);
    // What an earlier build seeded under the same version: the follow-up's undo without missing_ok.
    const earlier = workflowDefinitionSchema.parse({
      ...customerOnboardingTemplate,
      steps: customerOnboardingTemplate.steps.map((s) =>
        s.id === 'delete_follow_up' ? { ...s, with: { schedule: '${{ output.schedule.id }}' } } : s,
      ),
    });
    assert.notDeepEqual(earlier, code);
    await handleCommand(store, workflowDefinitionStream(code.id), definitionDecider, {
      type: 'RegisterDefinition',
      data: { definition: earlier, source: 'builtin' },
      metadata: { timestamp: new Date().toISOString(), actor: 'system:builtin', correlationId: 'earlier-build' },
    });

    for (let start = 1; start <= 2; start++) {
      const { logger: capturing, warnings } = warningsLogger();
      const defs = new DefinitionStore(pool, { store, logger: capturing });
      await defs.start();
      try {
        // The stored content is kept: no event, the read model serves what was stored.
        assert.equal(
          (await store.readStream(workflowDefinitionStream(code.id))).length,
          1,
          'no event for the stored version',
        );
        const stored = await defs.get(code.id, code.version);
        assert.deepEqual(stored.definition.steps.find((s) => s.id === 'delete_follow_up')?.with, {
          schedule: '${{ output.schedule.id }}',
        });
        const drift = warnings.filter((w) => w.fields['outcome'] === 'stored_differs');
        assert.equal(drift.length, 1, `start ${start}: one warning, got ${JSON.stringify(warnings)}`);
        assert.equal(drift[0]!.fields['definitionId'], 'customer_onboarding');
        assert.equal(drift[0]!.fields['version'], code.version);
        assert.equal(drift[0]!.fields['storedSource'], 'builtin');
        assert.match(drift[0]!.fields['firstDifference'] as string, /^steps\[\d+\]\.with\.missing_ok$/);
        assert.match(
          drift[0]!.msg,
          new RegExp(`customer_onboarding version ${code.version} differs .* the stored content is kept`),
        );
        // The other templates were seeded as the code has them, without a warning.
        assert.equal(warnings.length, 1);
        // What seedBuiltIns returns says the same, for a caller that wants more than the log.
        const problems = await defs.seedBuiltIns();
        assert.deepEqual(
          problems.map((p) => [p.outcome, p.definitionId, p.version]),
          [['stored_differs', 'customer_onboarding', code.version]],
        );
      } finally {
        await defs.stop();
      }
    }
  });
});
