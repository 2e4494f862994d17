/**
 * The development mailbox is the admin's by every door, and by every record of a read of it: on
 * a fresh system (one launcher process with every role), an admin sends a mail, reads the mailbox
 * through its REST route and through a step of an ad-hoc workflow; an operator then reads the event
 * log (a page, the live stream), the execution (detail, list, events, history) and finds no mail
 * text in any of them, while the admin finds the step's listing and the call's audit (who, what,
 * when, how it ended) and a viewer reads as before.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { freePort } from '@switchyard/platform';
import { until, scratchDataDir } from '@switchyard/testing';
import { newAdminKey, Proc, systemEnv, waitMcpServerUp, waitReady } from './launcher.js';
import { gatewayRequest } from './support.js';

const SECRET = 'reset code MAILBOX-SECRET-4242';

describe('admin-only tools: what they read shows to admins only, wherever it is recorded', () => {
  const adminKey = newAdminKey();
  let dataDir: string;
  let proc: Proc;
  let base: string;
  let operatorKey: string;
  let viewerKey: string;
  let executionId: string;
  const as = (key: string) => (method: string, url: string, body?: unknown) =>
    gatewayRequest(base, { authorization: `Bearer ${key}` }, method, url, body);
  const admin = (method: string, url: string, body?: unknown) => as(adminKey)(method, url, body);
  const has = (v: unknown): boolean => JSON.stringify(v).includes('MAILBOX-SECRET-4242');
  /** The send's own events carry the text as its arguments: an operator's tool, shown to operators. */
  const notTheSend = (events: { data?: { tool?: unknown } }[]) => events.filter((e) => e.data?.tool !== 'send_email');
  /** The events of an SSE text. */
  const frames = (text: string): { data?: { tool?: unknown } }[] =>
    text
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)) as { data?: { tool?: unknown } });

  before(async () => {
    dataDir = scratchDataDir('e2e-mailbox-payloads-');
    const gatewayPort = await freePort();
    base = `http://127.0.0.1:${gatewayPort}`;
    const env = await systemEnv(dataDir, adminKey, {
      GATEWAY_PORT: String(gatewayPort),
      EMBEDDED_PG_PORT: String(await freePort()),
      EMBEDDED_NATS_PORT: String(await freePort()),
    });
    delete env['MAILBOX_SMTP_PORT'];
    proc = new Proc('all roles', [], env);
    proc.start();
    await proc.waitUp(120_000);
    await waitReady(base, proc);
    await waitMcpServerUp(base, { authorization: `Bearer ${adminKey}` }, 'automation');
    for (const role of ['operator', 'viewer'] as const) {
      const made = await admin('POST', '/api/v1/admin/api-keys', { name: `mailbox-${role}`, role });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      if (role === 'operator') operatorKey = made.body.key;
      else viewerKey = made.body.key;
    }
    // 1. A mail, then the admin reads the mailbox by its route and by a step of an ad-hoc workflow.
    const sent = await admin('POST', '/api/v1/integration/mcp/call', {
      server: 'automation',
      tool: 'send_email',
      arguments: { to: 'ada@example.com', subject: 'password reset', text: SECRET, idempotency_key: 'payloads-1' },
    });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const listed = await admin('GET', '/api/v1/integration/mcp/automation/mailbox?to=ada@example.com');
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.ok(has(listed.body), 'the admin reads the mail');
    const started = await admin('POST', '/api/v1/integration/agents/workflow', {
      definition: {
        id: 'peek_mailbox',
        steps: [{ id: 'read', uses: 'mcp:automation/list_mailbox', with: { to: 'ada@example.com' } }],
        outputs: { mail: '${{ steps.read.output }}' },
      },
      input: {},
    });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    executionId = started.body.execution_id;
    await until(
      `execution ${executionId} completed`,
      async () => {
        const r = await admin('GET', `/api/v1/workflows/executions/${executionId}`);
        return r.body?.status === 'completed' ? true : undefined;
      },
      60_000,
      200,
    );
  });

  after(async () => {
    await proc?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('the event log: an operator reads who called list_mailbox and how it ended, not what it answered; an admin reads the step output', async () => {
    const operator = as(operatorKey);
    const page = await operator('GET', '/api/v1/events?limit=1000');
    assert.equal(page.status, 200, JSON.stringify(page.body));
    const events = page.body.events as { type: string; streamId: string; data: any; metadata: any }[];
    assert.ok(!has(notTheSend(events)), 'no mail text in what an operator reads of the log');
    const reads = events.filter((e) => e.type === 'McpToolSucceeded' && e.data.tool === 'list_mailbox');
    assert.ok(reads.length >= 2, 'the route and the step each read the mailbox: both on record');
    // The route's read names the admin's key; the step's runs as the engine (its execution names who started it).
    assert.ok(
      reads.some((e) => String(e.metadata.actor).startsWith('apikey:')),
      JSON.stringify(reads.map((e) => e.metadata)),
    );
    const forMailbox = await operator('GET', '/api/v1/events?stream=mcpserver-automation&limit=200');
    assert.ok(!has(notTheSend(forMailbox.body.events)), 'nor in the automation server stream');
    // The send itself is an operator's tool: its arguments stay readable to an operator.
    assert.ok(
      (forMailbox.body.events as any[]).some(
        (e) => e.type === 'McpToolCalled' && e.data.tool === 'send_email' && has(e.data.arguments),
      ),
    );

    const all = await admin('GET', '/api/v1/events?limit=1000');
    const adminEvents = all.body.events as { type: string; streamId: string; data: any }[];
    assert.ok(
      adminEvents.some((e) => e.streamId === `workflow_execution-${executionId}` && has(e.data)),
      'the admin reads the step output',
    );
    // What the log keeps of a listing itself: counts and ids, for the admin too.
    const recorded = adminEvents.filter((e) => e.type === 'McpToolSucceeded' && e.data.tool === 'list_mailbox');
    for (const e of recorded) {
      assert.ok(!has(e.data.result), 'a listing is not kept whole in the log');
      assert.equal(e.data.result.value.lists.messages.count, 1, JSON.stringify(e.data.result));
    }

    const viewer = await as(viewerKey)('GET', '/api/v1/events?limit=1000');
    assert.ok(!has(viewer.body), "a viewer reads no payloads, the send's included, as before");
  });

  it('the live stream: an operator replaying the log reads no mail text', async () => {
    const read = async (key: string): Promise<string> => {
      const stop = new AbortController();
      const res = await fetch(`${base}/api/v1/events/stream?after=0`, {
        headers: { authorization: `Bearer ${key}` },
        signal: stop.signal,
      });
      assert.equal(res.status, 200);
      let text = '';
      const reader = res.body!.getReader();
      const deadline = Date.now() + 3_000;
      try {
        while (Date.now() < deadline && !text.includes(`"streamId":"workflow_execution-${executionId}"`)) {
          const chunk = await reader.read();
          if (chunk.done) break;
          text += Buffer.from(chunk.value).toString('utf8');
        }
        // The rest of the replay.
        const more = setTimeout(() => stop.abort(), 1_000);
        try {
          for (;;) {
            const chunk = await reader.read();
            if (chunk.done) break;
            text += Buffer.from(chunk.value).toString('utf8');
          }
        } catch {
          // aborted: the replay is read
        } finally {
          clearTimeout(more);
        }
      } finally {
        stop.abort();
      }
      return text;
    };
    const operatorText = await read(operatorKey);
    assert.ok(operatorText.includes(`workflow_execution-${executionId}`), 'the operator streamed the execution');
    assert.ok(!has(notTheSend(frames(operatorText))), 'no mail text in the operator stream');
    assert.ok(has(notTheSend(frames(await read(adminKey)))), 'the admin stream has the step output');
  });

  it("the execution: an operator reads how the admin's run went, not the listing (detail, list, events, history)", async () => {
    const operator = as(operatorKey);
    const detail = await operator('GET', `/api/v1/workflows/executions/${executionId}`);
    assert.equal(detail.status, 200, JSON.stringify(detail.body));
    assert.equal(detail.body.status, 'completed');
    assert.equal(detail.body.steps[0].status, 'succeeded');
    assert.ok(!has(detail.body), JSON.stringify(detail.body));
    const adminDetail = await admin('GET', `/api/v1/workflows/executions/${executionId}`);
    assert.ok(has(adminDetail.body), 'the admin reads the step output');

    const list = await operator('GET', '/api/v1/workflows/executions?limit=100');
    assert.equal(list.status, 200);
    assert.ok(
      (list.body.items as any[]).some((x) => x.execution_id === executionId),
      'the run is listed',
    );
    assert.ok(!has(list.body), 'its output is not');
    assert.ok(has((await admin('GET', '/api/v1/workflows/executions?limit=100')).body));

    for (const tail of ['events', 'history']) {
      const r = await operator('GET', `/api/v1/workflows/executions/${executionId}/${tail}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok((r.body.events as unknown[]).length > 0);
      assert.ok(!has(r.body), `${tail}: ${JSON.stringify(r.body)}`);
      assert.ok(has((await admin('GET', `/api/v1/workflows/executions/${executionId}/${tail}`)).body), tail);
    }
  });

  it("the replay check: an operator reads that a step's input changed, not the mail it carried; an admin reads both", async () => {
    // Two versions of a digest of the mailbox that differ in what they record: the digest step's
    // input changes. A start runs the newest version: version 1 runs before version 2 is registered.
    const register = async (version: number) => {
      const registered = await admin('POST', '/api/v1/workflows/definitions', {
        id: 'mailbox_digest',
        version,
        name: 'mailbox digest',
        steps: [
          { id: 'read', uses: 'mcp:automation/list_mailbox', with: { to: 'ada@example.com' } },
          {
            id: 'digest',
            uses: 'mcp:analytics/record_metric',
            needs: ['read'],
            with: {
              name: `mailbox_digest_v${version}`,
              value: 1,
              labels: { text: '${{ steps.read.output.messages[0].text }}' },
            },
          },
        ],
      });
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
    };
    await register(1);
    const run = await admin('POST', '/api/v1/workflows/start/mailbox_digest?wait=true', {});
    assert.equal(run.status, 200, JSON.stringify(run.body));
    assert.equal(run.body.status, 'completed', JSON.stringify(run.body));
    await register(2);
    const check = (key: string) =>
      as(key)('POST', '/api/v1/workflows/definitions/mailbox_digest/versions/2/check', { limit: 1 });
    const byAdmin = await check(adminKey);
    assert.equal(byAdmin.status, 200, JSON.stringify(byAdmin.body));
    const changed = (body: any) =>
      (body.executions[0].differences as { step_id: string; kind: string; recorded: unknown }[]).find(
        (d) => d.kind === 'input_changed',
      );
    assert.equal(changed(byAdmin.body)?.step_id, 'digest', JSON.stringify(byAdmin.body));
    assert.ok(has(byAdmin.body), 'the admin reads the recorded input');
    const byOperator = await check(operatorKey);
    assert.equal(byOperator.status, 200, JSON.stringify(byOperator.body));
    assert.equal(byOperator.body.differing, 1);
    assert.equal(changed(byOperator.body)?.step_id, 'digest');
    assert.equal(changed(byOperator.body)?.recorded, '[redacted: operator role needed]');
    assert.ok(!has(byOperator.body), JSON.stringify(byOperator.body));
  });

  it("bulk error_contains: an operator's filter never matches the error of a run that read the mailbox; an admin's does", async () => {
    // A run whose failure names the mail's text (a file named after it does not exist).
    const started = await admin('POST', '/api/v1/integration/agents/workflow', {
      definition: {
        id: 'mailbox_open',
        steps: [
          { id: 'read', uses: 'mcp:automation/list_mailbox', with: { to: 'ada@example.com' } },
          {
            id: 'open',
            uses: 'mcp:filesystem/read_file',
            needs: ['read'],
            with: { path: '${{ steps.read.output.messages[0].text }}' },
          },
        ],
      },
      input: {},
    });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const failed = await until(
      'the run failed',
      async () => {
        const r = await admin('GET', `/api/v1/workflows/executions/${started.body.execution_id}`);
        return r.body?.status === 'failed' ? r.body : undefined;
      },
      60_000,
      200,
    );
    assert.ok(has(failed.error), `the error names the mail's text: ${JSON.stringify(failed.error)}`);
    const bulk = (key: string, probe: string) =>
      as(key)('POST', '/api/v1/workflows/executions/bulk', {
        filter: { definition_id: 'mailbox_open', status: 'failed', error_contains: probe },
        action: 'cancel',
      });
    const byOperator = await bulk(operatorKey, 'MAILBOX-SECRET-4242');
    assert.equal(byOperator.status, 202, JSON.stringify(byOperator.body));
    assert.equal(byOperator.body.matched, 0);
    // Without error_contains the operator's filter matches it as the list shows it.
    const unfiltered = await as(operatorKey)('POST', '/api/v1/workflows/executions/bulk', {
      filter: { definition_id: 'mailbox_open', status: 'failed' },
      action: 'cancel',
    });
    assert.equal(unfiltered.body.matched, 1, JSON.stringify(unfiltered.body));
    const byAdmin = await bulk(adminKey, 'MAILBOX-SECRET-4242');
    assert.equal(byAdmin.status, 202, JSON.stringify(byAdmin.body));
    assert.equal(byAdmin.body.matched, 1);
  });
});
