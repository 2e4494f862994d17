import { z } from 'zod';
import { parsePeerJson, readTextCapped, type Logger } from '@switchyard/platform';
import type { LlmClient } from './llm.js';

const chatReply = z.object({
  choices: z.array(z.object({ message: z.object({ content: z.string().nullable() }) })).min(1),
});

export interface OpenAiCompatibleLlmOptions {
  /** e.g. `https://api.example.com/v1` (the `/chat/completions` path is appended). */
  readonly baseUrl: string;
  readonly model: string;
  readonly apiKey?: string;
  readonly timeoutMs?: number;
  readonly logger: Logger;
}

/** Every number in a text (`1,234.5`, `12%`, `2026-06`): the figures a rewording must keep. */
export const figuresOf = (text: string): string[] =>
  (text.match(/\d+(?:[.,]\d+)*/g) ?? []).map((n) => n.replace(/,/g, ''));

/**
 * Rewords agent prose through an OpenAI-compatible chat endpoint (`LLM_BASE_URL`, `LLM_MODEL`,
 * `LLM_API_KEY`). The figures are computed by the agents, never by the model, so:
 * 1. the prompt asks to keep every number, name and the markdown structure;
 * 2. an answer that lost any number of the original is discarded;
 * 3. any failure (timeout, HTTP error, bad reply) returns the original text: wording is optional,
 *    a task never fails because the model is unreachable.
 */
/** Most bytes of a model's answer read. */
const LLM_ANSWER_MAX_BYTES = 1024 * 1024;

export class OpenAiCompatibleLlm implements LlmClient {
  private readonly url: string;

  constructor(private readonly opts: OpenAiCompatibleLlmOptions) {
    this.url = `${opts.baseUrl.replace(/\/+$/, '')}/chat/completions`;
  }

  async polish(text: string, purpose: string, signal?: AbortSignal): Promise<string> {
    const timeout = AbortSignal.timeout(this.opts.timeoutMs ?? 15_000);
    try {
      const res = await fetch(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {}),
        },
        body: JSON.stringify({
          model: this.opts.model,
          temperature: 0.2,
          messages: [
            {
              role: 'system',
              content: `Improve the wording of the user's text, a ${purpose}. Keep every number, date, name and the markdown structure exactly as they are; add no facts. Answer with the rewritten text only.`,
            },
            { role: 'user', content: text },
          ],
        }),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      // Bounded like any peer's answer: a rewording is about as long as the text it rewords.
      const answer = parsePeerJson(await readTextCapped(res, LLM_ANSWER_MAX_BYTES), "the model's answer");
      const content = chatReply.parse(answer).choices[0]!.message.content?.trim();
      if (!content) throw new Error('empty answer');
      const kept = new Set(figuresOf(content));
      const lost = figuresOf(text).filter((n) => !kept.has(n));
      if (lost.length > 0) {
        this.opts.logger.warn({ purpose, lost: lost.slice(0, 10) }, 'reworded text lost figures; keeping the original');
        return text;
      }
      return content;
    } catch (err) {
      if (signal?.aborted) throw err; // the task itself was canceled: not the model's failure
      this.opts.logger.warn({ err, purpose }, 'LLM rewording failed; keeping the original text');
      return text;
    }
  }
}

/** The client for `LLM_BASE_URL` + `LLM_MODEL` when both are set, else undefined (agents use their own wording). */
export function llmFromEnv(env: Record<string, string | undefined>, logger: Logger): LlmClient | undefined {
  if (!env.LLM_BASE_URL || !env.LLM_MODEL) return undefined;
  return new OpenAiCompatibleLlm({
    baseUrl: env.LLM_BASE_URL,
    model: env.LLM_MODEL,
    ...(env.LLM_API_KEY ? { apiKey: env.LLM_API_KEY } : {}),
    logger,
  });
}
