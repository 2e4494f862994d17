import type { AgentCard, AgentSkill } from '@a2a-js/sdk';
import { aliasesOf } from '@switchyard/contracts';
import type { CapabilitiesReply } from '@switchyard/contracts';

/** Where the peer lives under the gateway. */
export const A2A_BASE = '/a2a';
/** The name of the workflows endpoint (`/a2a/workflows`); no agent may take it. */
export const WORKFLOWS_ENDPOINT = 'workflows';
/** The card path under an endpoint, and the directory card at the root (A2A's well-known path). */
export const CARD_PATH = '/.well-known/agent-card.json';
/**
 * The extension of the directory card that lists the agents' cards: `params.agents` is
 * `[{ name, description, url, card_url }]`. A2A lets a card carry extensions with free-form
 * params; a client that does not know this one ignores it (it is not `required`).
 */
export const DIRECTORY_EXTENSION_URI = 'urn:switchyard:a2a:agent-directory:v1';
export const CARD_VERSION = '1.0.0';

const bearerScheme = {
  bearer: {
    scheme: {
      $case: 'httpAuthSecurityScheme' as const,
      value: {
        description:
          'A Switchyard API key (sy_<id>_<secret>) as a bearer token: viewer for tasks/get and resubscribe, operator to send and cancel. Cards need none.',
        scheme: 'bearer',
        bearerFormat: 'sy_<id>_<secret>',
      },
    },
  },
};
const bearerRequired = [{ schemes: { bearer: { list: [] as string[] } } }];

export interface SkillSource {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly tags: readonly string[];
  readonly exampleInput: Record<string, unknown>;
}

function skillOf(s: SkillSource): AgentSkill {
  return {
    id: s.id,
    name: s.name,
    description: s.description,
    tags: [...s.tags],
    // What a client sends: a data part, or the skill's name as text (see docs/a2a.md).
    examples: [
      JSON.stringify({ task_type: s.id, input: s.exampleInput }),
      `${s.id} ${JSON.stringify(s.exampleInput)}`,
      s.id,
    ],
    inputModes: ['application/json', 'text/plain'],
    outputModes: ['application/json'],
    securityRequirements: [],
  };
}

/** An example input from a JSON schema: each property's example or default, required ones first. */
export function exampleFromSchema(schema: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const props = (
    schema as { properties?: Record<string, { examples?: unknown[]; default?: unknown; enum?: unknown[] }> } | undefined
  )?.properties;
  if (!props || typeof props !== 'object') return out;
  for (const [k, p] of Object.entries(props)) {
    if (!p || typeof p !== 'object') continue;
    if (Array.isArray(p.examples) && p.examples.length > 0) out[k] = p.examples[0];
    else if (p.default !== undefined) out[k] = p.default;
    else if (Array.isArray(p.enum) && p.enum.length > 0) out[k] = p.enum[0];
  }
  return out;
}

/** The skills of one agent: one per task type of its capability card. */
export function agentSkills(caps: CapabilitiesReply['agents'][number]): SkillSource[] {
  return caps.task_types.map((t) => ({
    id: t.type,
    name: t.type.replace(/_/g, ' '),
    description: t.description + (aliasesOf(t.type).length > 0 ? ` (also named ${aliasesOf(t.type).join(', ')})` : ''),
    tags: [caps.agent, 'switchyard'],
    exampleInput: exampleFromSchema(t.input_schema),
  }));
}

/** One card; `url` is the endpoint's JSON-RPC URL, served for A2A 1.0 and 0.3 clients alike. */
export function buildCard(p: {
  readonly name: string;
  readonly description: string;
  readonly url: string;
  readonly base: string;
  readonly skills: readonly SkillSource[];
  /** The card a key holder gets (`GetExtendedAgentCard`) lists more skills than this public one. */
  readonly extended?: boolean;
  readonly extensions?: AgentCard['capabilities'] extends infer C
    ? C extends { extensions: infer E }
      ? E
      : never
    : never;
}): AgentCard {
  return {
    name: p.name,
    description: p.description,
    supportedInterfaces: [
      { url: p.url, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: '1.0' },
      { url: p.url, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: '0.3' },
    ],
    provider: { organization: 'Switchyard', url: p.base },
    version: CARD_VERSION,
    documentationUrl: `${p.base}/docs`,
    capabilities: {
      streaming: true,
      pushNotifications: true,
      extensions: [...(p.extensions ?? [])],
      extendedAgentCard: p.extended ?? false,
    },
    securitySchemes: bearerScheme,
    securityRequirements: bearerRequired,
    defaultInputModes: ['application/json', 'text/plain'],
    defaultOutputModes: ['application/json'],
    skills: p.skills.map(skillOf),
    signatures: [],
  };
}

export const endpointUrl = (base: string, endpoint: string) => `${base}${A2A_BASE}/${encodeURIComponent(endpoint)}`;
export const cardUrl = (base: string, endpoint: string) => `${endpointUrl(base, endpoint)}${CARD_PATH}`;
