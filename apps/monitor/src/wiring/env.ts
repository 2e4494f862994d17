import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { AppError, parseConfig } from '@switchyard/platform';
import { alertRuleSchema, type AlertRule } from '../domain/rules.js';

const list = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);
const posInt = z.coerce.number().int().positive().optional();

/** An external agent reached over HTTP: probed with `GET <url>` (its health URL). */
export const httpAgentSchema = z.object({ name: z.string().min(1).max(100), url: z.url() });
export type HttpAgent = z.infer<typeof httpAgentSchema>;

/** Environment variables of the monitor's wiring (next to monitorEnvSchema's MONITOR_* tunables). */
export const wiringEnvSchema = z.object({
  /** Comma list of URLs that get a POST per alert notification (firing / resolved). */
  MONITOR_ALERT_WEBHOOKS: list.pipe(z.array(z.url())).optional(),
  /** JSON file with an array of alert rules; a rule with a default's id replaces it. */
  MONITOR_RULES_FILE: z.string().min(1).optional(),
  /** JSON array of alert rules, applied after the file. */
  MONITOR_RULES: z.string().min(1).optional(),
  /** Comma list of `name=health-url` for external HTTP agents (e.g. `crm=http://crm:7000/health`). */
  MONITOR_HTTP_AGENTS: list.optional(),
  /** How often MCP servers and agent instances are rediscovered (default 30 s). */
  MONITOR_DISCOVERY_INTERVAL_MS: posInt,
  /** Attempts per webhook delivery (default 5) and the per-attempt timeout (default 5 s). */
  MONITOR_WEBHOOK_MAX_ATTEMPTS: posInt,
  MONITOR_WEBHOOK_TIMEOUT_MS: posInt,
});

export interface WiringSettings {
  readonly webhooks: readonly string[];
  readonly rulesFile?: string;
  readonly rulesJson?: string;
  readonly httpAgents: readonly HttpAgent[];
  readonly discoveryIntervalMs: number;
  readonly webhookMaxAttempts: number;
  readonly webhookTimeoutMs: number;
}

/** Parse the wiring variables; throws ConfigError naming each bad one. */
export function wiringSettingsFromEnv(env: Record<string, string | undefined> = process.env): WiringSettings {
  const e = parseConfig(env, wiringEnvSchema);
  const httpAgents = (e.MONITOR_HTTP_AGENTS ?? []).map((entry, i) => {
    const at = entry.indexOf('=');
    const parsed = httpAgentSchema.safeParse(at > 0 ? { name: entry.slice(0, at), url: entry.slice(at + 1) } : {});
    if (!parsed.success)
      throw new AppError('validation', `MONITOR_HTTP_AGENTS entry ${i + 1} must be name=url`, { entry });
    return parsed.data;
  });
  return {
    webhooks: e.MONITOR_ALERT_WEBHOOKS ?? [],
    ...(e.MONITOR_RULES_FILE ? { rulesFile: e.MONITOR_RULES_FILE } : {}),
    ...(e.MONITOR_RULES ? { rulesJson: e.MONITOR_RULES } : {}),
    httpAgents,
    discoveryIntervalMs: e.MONITOR_DISCOVERY_INTERVAL_MS ?? 30_000,
    webhookMaxAttempts: e.MONITOR_WEBHOOK_MAX_ATTEMPTS ?? 5,
    webhookTimeoutMs: e.MONITOR_WEBHOOK_TIMEOUT_MS ?? 5_000,
  };
}

/** Parse a JSON array of rules (from the file or the env), naming where a bad one came from. */
export function parseRulesJson(text: string, origin: string): AlertRule[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new AppError('validation', `${origin} is not JSON`, { origin });
  }
  const parsed = z.array(alertRuleSchema).safeParse(json);
  if (!parsed.success)
    throw new AppError('validation', `${origin} holds an invalid alert rule`, { origin, issues: parsed.error.issues });
  return parsed.data;
}

/** Rules of MONITOR_RULES_FILE (read once at start). */
export function readRulesFile(path: string): AlertRule[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AppError('validation', `MONITOR_RULES_FILE ${path} cannot be read`, {
      path,
      cause: (err as Error).message,
    });
  }
  return parseRulesJson(text, `MONITOR_RULES_FILE ${path}`);
}
