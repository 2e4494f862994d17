/**
 * The workflow feature's integration specs share one setup: a fresh database, an event store on
 * it, a NATS connection, the gateway with the workflows feature on a free port and a real
 * workflow engine on subjects of the spec's own (another suite may serve the real ones on the
 * shared nats-server). Each spec adds its tools: `echoTasks` answers agent tasks, or its own
 * responders through `serve`.
 */
import type pg from 'pg';
import { z } from 'zod';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createPgPool, newId, type Logger } from '@switchyard/platform';
import { PostgresEventStore, type EventStore } from '@switchyard/event-store';
import { addService } from '@switchyard/messaging';
import { freshDatabase, testNatsUrl } from '@switchyard/testing';
import { TEST_ENGINE_TIMINGS, WorkflowEngine, type WorkflowEngineOptions } from '@switchyard/workflows';
import { createGateway, type Gateway, type GatewayOptions } from '../../index.js';
import { WorkflowsFeatureModule } from './index.js';

export interface TaskSubjects {
  readonly tasks: string;
  readonly mcpPrefix: string;
}

/** What a spec's tools hold open (stopped by close(), before the connection). */
interface Stoppable {
  stop(): Promise<unknown>;
}

export interface WorkflowGatewayOptions {
  /** Names the database and the subjects. */
  readonly name: string;
  readonly logger: Logger;
  readonly poolMax?: number;
  /** The store the gateway is given (e.g. one that counts reads); the engine keeps the plain one. */
  readonly gatewayStore?: (store: PostgresEventStore) => EventStore;
  /** Engine options beyond the fixture's (4 partitions, 200 ms lease tick, 50 ms timer poll). */
  readonly engine?: Partial<WorkflowEngineOptions>;
  /** The spec's tools, started before the gateway and the engine. */
  readonly serve?: (nc: NatsConnection, subjects: TaskSubjects) => Promise<Stoppable>;
  /** Gateway options beyond the feature module. */
  readonly gateway?: Omit<GatewayOptions, 'modules'>;
}

export interface HttpAnswer {
  readonly status: number;
  // JSON of any shape: each spec reads the fields its routes answer.
  readonly body: any;
  readonly headers: Headers;
}

export interface WorkflowGateway {
  readonly url: string;
  readonly pool: pg.Pool;
  readonly store: PostgresEventStore;
  readonly nc: NatsConnection;
  readonly gw: Gateway;
  /** The gateway's base URL. */
  readonly base: string;
  readonly subjects: TaskSubjects;
  /** The engine (replaced by startEngine). */
  readonly engine: WorkflowEngine;
  /** The options the engine runs with, with `overrides` applied (for a second engine). */
  engineOptions(overrides?: Partial<WorkflowEngineOptions>): WorkflowEngineOptions;
  /** Stop the engine (close() does not stop it twice). */
  stopEngine(): Promise<void>;
  /** Start a new engine in place of the stopped one. */
  startEngine(overrides?: Partial<WorkflowEngineOptions>): Promise<WorkflowEngine>;
  /** A JSON request; a string body is sent as it is. */
  http(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<HttpAnswer>;
  close(): Promise<void>;
}

export async function startWorkflowGateway(opts: WorkflowGatewayOptions): Promise<WorkflowGateway> {
  const { logger } = opts;
  const tag = newId().slice(0, 6);
  const subjects: TaskSubjects = {
    tasks: `test.${opts.name}.${tag}.tasks.execute`,
    mcpPrefix: `test.${opts.name}.${tag}.mcp`,
  };
  const url = await freshDatabase(opts.name);
  const pool = createPgPool({ connectionString: url, max: opts.poolMax ?? 10 }, { name: opts.name, logger });
  const store = new PostgresEventStore({ pool, logger, safetyIntervalMs: 500 });
  await store.init();
  const nc = await connect({ servers: await testNatsUrl() });
  const tools = opts.serve ? await opts.serve(nc, subjects) : undefined;
  const gw = await createGateway(
    {
      eventStore: opts.gatewayStore ? opts.gatewayStore(store) : store,
      pgPool: pool,
      nats: nc,
      logger,
      config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' },
    },
    { ...opts.gateway, modules: [WorkflowsFeatureModule] },
  );
  const base = (await gw.listen(0, '127.0.0.1')).url;
  const engineOptions = (overrides: Partial<WorkflowEngineOptions> = {}): WorkflowEngineOptions => ({
    store,
    pool,
    nats: nc,
    logger,
    databaseUrl: url,
    ...TEST_ENGINE_TIMINGS,
    subjects,
    ...opts.engine,
    ...overrides,
  });
  let engine = new WorkflowEngine(engineOptions());
  await engine.start();
  return {
    url,
    pool,
    store,
    nc,
    gw,
    base,
    subjects,
    get engine() {
      return engine;
    },
    engineOptions,
    stopEngine: () => engine.stop(),
    async startEngine(overrides) {
      engine = new WorkflowEngine(engineOptions(overrides));
      await engine.start();
      return engine;
    },
    async http(method, path, body, headers = {}) {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
    },
    async close() {
      await gw.close();
      await engine.stop();
      await tools?.stop();
      await nc.close();
      await store.close();
      await pool.end();
    },
  };
}

/** An agent task as the engine sends it. */
export interface TaskRequest {
  readonly task_type: string;
  readonly context: Record<string, unknown>;
  readonly idempotency_key: string;
}

/**
 * A tasks service that completes every task with `{ task, echo: context }` after `onTask` (which
 * may wait, count, or throw to fail the task).
 */
export function echoTasks(
  logger: Logger,
  onTask: (task: TaskRequest) => Promise<void> | void = () => undefined,
): NonNullable<WorkflowGatewayOptions['serve']> {
  return (nc, subjects) =>
    addService(nc, {
      name: `${subjects.tasks.replaceAll('.', '-')}-service`,
      version: '1.0.0',
      logger,
      endpoints: {
        execute: {
          subject: subjects.tasks,
          schema: z
            .object({ task_type: z.string(), context: z.record(z.string(), z.unknown()), idempotency_key: z.string() })
            .loose(),
          handler: async (b: TaskRequest) => {
            await onTask(b);
            return {
              task_id: b.idempotency_key,
              agent: 'test',
              instance: 'i1',
              status: 'completed',
              result: { task: b.task_type, echo: b.context },
            };
          },
        },
      },
    });
}
