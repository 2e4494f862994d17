/**
 * The OpenAI-compatible client against a real HTTP server on loopback that speaks the
 * chat-completions protocol (no model can be downloaded here, so the server answers from a
 * script the test sets: a faithful rewording, one that drops a figure, an error).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '@switchyard/platform';
import { OpenAiCompatibleLlm, figuresOf, llmFromEnv } from './openai-llm.js';

const logger = createLogger('llm-test', 'silent');

describe('OpenAiCompatibleLlm', () => {
  let server: Server;
  let baseUrl: string;
  const seen: { auth?: string; body: { model: string; messages: { role: string; content: string }[] } }[] = [];
  let answer: (userText: string) => { status: number; body: unknown } = (t) => ({
    status: 200,
    body: { choices: [{ message: { content: t } }] },
  });

  before(async () => {
    server = createServer((req, res) => {
      let raw = '';
      req.on('data', (d) => (raw += d));
      req.on('end', () => {
        if (req.url !== '/v1/chat/completions' || req.method !== 'POST') {
          res.writeHead(404).end();
          return;
        }
        const body = JSON.parse(raw) as (typeof seen)[number]['body'];
        seen.push({ ...(req.headers.authorization ? { auth: req.headers.authorization } : {}), body });
        const a = answer(body.messages.find((m) => m.role === 'user')!.content);
        res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const text = 'Revenue grew 12.5% to 1,234,567 in 2026-06; Acme Corp is the top customer.';

  it('sends the model, the key and the text, and returns the rewording when every figure is kept', async () => {
    answer = () => ({
      status: 200,
      body: { choices: [{ message: { content: 'In 2026-06 revenue rose 12.5% to 1,234,567, led by Acme Corp.' } }] },
    });
    const llm = new OpenAiCompatibleLlm({ baseUrl, model: 'm-1', apiKey: 'k-123', logger });
    const out = await llm.polish(text, 'report summary');
    assert.equal(out, 'In 2026-06 revenue rose 12.5% to 1,234,567, led by Acme Corp.');
    const last = seen.at(-1)!;
    assert.equal(last.auth, 'Bearer k-123');
    assert.equal(last.body.model, 'm-1');
    assert.equal(last.body.messages.find((m) => m.role === 'user')!.content, text);
    assert.match(last.body.messages.find((m) => m.role === 'system')!.content, /report summary/);
  });

  it('keeps the original when the rewording lost a figure', async () => {
    answer = () => ({
      status: 200,
      body: { choices: [{ message: { content: 'Revenue grew strongly in 2026-06, led by Acme Corp.' } }] },
    });
    const out = await new OpenAiCompatibleLlm({ baseUrl, model: 'm', logger }).polish(text, 'x');
    assert.equal(out, text);
  });

  it('keeps the original on an HTTP error, a malformed reply or an unreachable endpoint', async () => {
    answer = () => ({ status: 500, body: { error: 'boom' } });
    assert.equal(await new OpenAiCompatibleLlm({ baseUrl, model: 'm', logger }).polish(text, 'x'), text);
    answer = () => ({ status: 200, body: { nope: true } });
    assert.equal(await new OpenAiCompatibleLlm({ baseUrl, model: 'm', logger }).polish(text, 'x'), text);
    assert.equal(
      await new OpenAiCompatibleLlm({ baseUrl: 'http://127.0.0.1:1/v1', model: 'm', logger, timeoutMs: 2000 }).polish(
        text,
        'x',
      ),
      text,
    );
  });

  it('keeps the original when the answer is over 1 MiB (not read further)', async () => {
    answer = () => ({ status: 200, body: { choices: [{ message: { content: `${text} ${'x'.repeat(2_000_000)}` } }] } });
    assert.equal(await new OpenAiCompatibleLlm({ baseUrl, model: 'm', logger }).polish(text, 'x'), text);
  });

  it('is configured by LLM_BASE_URL and LLM_MODEL, and absent without them', () => {
    assert.equal(llmFromEnv({}, logger), undefined);
    assert.equal(llmFromEnv({ LLM_BASE_URL: baseUrl }, logger), undefined);
    assert.ok(llmFromEnv({ LLM_BASE_URL: baseUrl, LLM_MODEL: 'm' }, logger) instanceof OpenAiCompatibleLlm);
    assert.deepEqual(figuresOf(text), ['12.5', '1234567', '2026', '06']);
  });
});
