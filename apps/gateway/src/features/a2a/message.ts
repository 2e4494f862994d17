import { z } from 'zod';
import type { Message } from '@a2a-js/sdk';
import { RequestMalformedError } from '@a2a-js/sdk/errors';
import { taskPrioritySchema } from '@switchyard/contracts';

/**
 * How an A2A message names the work (see docs/a2a.md):
 * 1. a data part `{ "task_type": "<skill id>", "input": { ... }, "priority"?: "high" }`
 *    (`skill` is accepted for `task_type`);
 * 2. or text only: the skill id, optionally followed by a JSON object as its input
 *    (`revenue_analysis {"timeframe":"30d"}`).
 * Anything else is refused with JSON-RPC -32602 naming what was expected.
 */
export const workRequestSchema = z
  .object({
    task_type: z.string().min(1).max(100).optional(),
    skill: z.string().min(1).max(100).optional(),
    input: z.record(z.string(), z.unknown()).default({}),
    priority: taskPrioritySchema.default('normal'),
  })
  .refine((v) => v.task_type !== undefined || v.skill !== undefined, {
    message: 'task_type is required',
    path: ['task_type'],
  });

export interface WorkRequest {
  readonly skill: string;
  readonly input: Record<string, unknown>;
  readonly priority: z.infer<typeof taskPrioritySchema>;
}

/** The largest input an A2A message may carry (the gateway's body limit applies before it, too). */
const MAX_INPUT_BYTES = 256 * 1024;

const HOW =
  'send a data part {"task_type": "<skill id>", "input": {...}} or a text part naming the skill (optionally followed by a JSON object input)';

/** The work a message asks for, or RequestMalformedError (-32602) saying why not. `resolve` maps a name or alias to a skill id of this endpoint, undefined when unknown. */
export function parseWorkRequest(
  message: Message | undefined,
  resolve: (name: string) => string | undefined,
  skills: readonly string[],
): WorkRequest {
  if (!message) throw new RequestMalformedError(`message is required; ${HOW}`);
  if (message.taskId)
    throw new RequestMalformedError(
      `task ${message.taskId} takes no further messages: each message starts a new task; ${HOW}`,
    );
  const parts = message.parts ?? [];
  const data = parts.find((p) => p.content?.$case === 'data');
  let raw: unknown;
  if (data?.content?.$case === 'data') {
    raw = data.content.value;
  } else if (parts.length > 0 && parts.every((p) => p.content?.$case === 'text')) {
    const text = parts
      .map((p) => (p.content?.$case === 'text' ? p.content.value : ''))
      .join('\n')
      .trim();
    const m = /^([A-Za-z0-9_.-]{1,100})(?:\s+([\s\S]*))?$/.exec(text);
    if (!m)
      throw new RequestMalformedError(
        `the text "${text.slice(0, 80)}" names no skill; ${HOW}; skills: ${skills.join(', ')}`,
      );
    if (resolve(m[1]!) === undefined)
      throw new RequestMalformedError(`unknown skill "${m[1]}" for this agent; ${HOW}; skills: ${skills.join(', ')}`);
    let input: unknown = {};
    if (m[2] !== undefined && m[2].trim() !== '') {
      try {
        input = JSON.parse(m[2]);
      } catch {
        throw new RequestMalformedError(`the text after the skill name must be a JSON object (the input); ${HOW}`);
      }
    }
    raw = { task_type: m[1], input };
  } else {
    throw new RequestMalformedError(`no data part and no text part found; ${HOW}`);
  }
  const parsed = workRequestSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(data)'}: ${i.message}`).join('; ');
    throw new RequestMalformedError(`invalid work request: ${issues}; ${HOW}`);
  }
  if (JSON.stringify(parsed.data.input).length > MAX_INPUT_BYTES)
    throw new RequestMalformedError(`input is larger than ${MAX_INPUT_BYTES} bytes`);
  const name = (parsed.data.task_type ?? parsed.data.skill)!;
  const skill = resolve(name);
  if (skill === undefined)
    throw new RequestMalformedError(`unknown skill "${name}" for this agent; skills: ${skills.join(', ')}`);
  return { skill, input: parsed.data.input, priority: parsed.data.priority };
}
