import { natsInboxPrefix, natsRoleUserEntry } from '@switchyard/platform';
import { ALERTS_SUBJECT_PREFIX, MONITOR_SERVICE_NAME } from './monitor.js';
import { MCP_SUBJECT_PREFIX, mcpRegistryListSubject } from './mcp.js';
import { EVENTS_STREAM, EVENTS_SUBJECT_WILDCARD, serviceSubject, serviceWildcard } from './subjects.js';
import { TASKS_SERVICE } from './tasks.js';

/**
 * The NATS users of the system's roles when they run in processes of their own, and what each
 * may publish and subscribe to. A process that runs every role is one trust domain and holds the
 * token (every subject); a process that runs some of them connects once per role, as that role's
 * user, so a compromised agents process cannot call a database tool and a relay cannot call
 * anything. The embedded nats-server gets these users in its config; for another server,
 * natsRoleUserEntries gives the same entries (the Docker Compose config is made of them).
 */
export const natsRoleUsers = [
  'gateway',
  'connectors',
  'agents',
  'dispatcher',
  'workflows',
  'monitor',
  'relay',
] as const;
export type NatsRoleUser = (typeof natsRoleUsers)[number];

export interface NatsPermissions {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

/** The KV bucket of keyed tool calls shared by every connectors process on one NATS (JetStream). */
export const MCP_CALLS_BUCKET = 'SWITCHYARD_MCP_CALLS';
/**
 * What the call bucket may hold. Its writers are the connectors processes, which may host
 * third-party stdio servers: with no cap one of them could fill the NATS server's disk, which the
 * events stream shares. A full bucket refuses new keys, and a keyed call then runs without the
 * bucket (deduplicated in its own process only), as when NATS is away.
 */
export const MCP_CALLS_MAX_BYTES = 256 * 1024 * 1024;

/**
 * A responder's answers go to its callers' inboxes: the replies, the progress notices, the
 * discovery answers. (nats-server's `allow_responses` is not enough: one reply per request per
 * connection, where a process of six agent services answers a discovery request six times, and
 * only for two minutes, where a task may run longer.)
 */
const ANY_INBOX = '_INBOX.>';
const DISCOVERY = '$SRV.>';
const MCP = `${MCP_SUBJECT_PREFIX}.>`;
const tasks = (...endpoints: string[]): string[] => endpoints.map((e) => serviceSubject(TASKS_SERVICE, e));
const TASKS = serviceWildcard(TASKS_SERVICE);
const AGENTS = serviceWildcard('agent');
/**
 * JetStream API subjects of one stream for a client that reads and appends to it, and may not
 * create or change it: a user allowed `STREAM.CREATE` or `STREAM.UPDATE` sets the stream's config,
 * which JetStream then applies with the whole account's rights (a stream that also captures
 * another role's inbox, or republishes onto a tool's subject). The streams are made by the
 * setup user (NATS_SETUP_USER) or a process holding the token before the roles start.
 */
const streamUse = (stream: string): string[] => [
  '$JS.API.INFO',
  `$JS.API.STREAM.INFO.${stream}`,
  `$JS.API.STREAM.MSG.GET.${stream}`,
  `$JS.API.DIRECT.GET.${stream}`,
  `$JS.API.DIRECT.GET.${stream}.>`,
];

/** What each role's user may do besides subscribing to its own inboxes. */
const rolePermissions: Record<NatsRoleUser, NatsPermissions> = {
  // The front door: the MCP connectors, the tasks service (delegations, external agents) and the monitor.
  gateway: {
    publish: [
      MCP,
      ...tasks(
        'execute',
        'submit',
        'get',
        'cancel',
        'agents',
        'agent',
        'capabilities',
        'performance',
        'register_agent',
        'unregister_agent',
      ),
      serviceWildcard(MONITOR_SERVICE_NAME),
      // Which monitor instances answer, so a read a stopped one still subscribed left unanswered
      // is asked again of a live one by its own subject (nothing else of discovery).
      `$SRV.PING.${MONITOR_SERVICE_NAME}`,
    ],
    subscribe: [],
  },
  // Serves the MCP servers' endpoints; shares keyed calls through a KV bucket; tells callers of progress.
  connectors: {
    publish: [ANY_INBOX, ...streamUse(`KV_${MCP_CALLS_BUCKET}`), `$KV.${MCP_CALLS_BUCKET}.>`],
    subscribe: [MCP, DISCOVERY],
  },
  // Serves the agents' endpoints; tells the dispatcher a task started (the subject it names).
  agents: { publish: [ANY_INBOX, `${serviceSubject(TASKS_SERVICE, 'started')}.*`], subscribe: [AGENTS, DISCOVERY] },
  // Serves the tasks service; discovers agent instances and sends them tasks.
  dispatcher: { publish: [AGENTS, DISCOVERY, ANY_INBOX], subscribe: [TASKS, DISCOVERY] },
  // Sends steps to the MCP connectors (and their cancels) and tasks to the dispatcher (and theirs).
  workflows: {
    publish: [
      `${MCP_SUBJECT_PREFIX}.*.call_tool`,
      `${MCP_SUBJECT_PREFIX}.*.cancel_call`,
      ...tasks('execute', 'cancel'),
    ],
    subscribe: [],
  },
  // Serves health reports; discovers and pings services; probes the MCP servers; publishes alerts.
  monitor: {
    publish: [
      ANY_INBOX,
      DISCOVERY,
      `${MCP_SUBJECT_PREFIX}.*.health`,
      mcpRegistryListSubject(),
      `${ALERTS_SUBJECT_PREFIX}.>`,
    ],
    subscribe: [serviceWildcard(MONITOR_SERVICE_NAME), DISCOVERY],
  },
  // Appends the events to their JetStream stream, nothing else.
  relay: { publish: [EVENTS_SUBJECT_WILDCARD, ...streamUse(EVENTS_STREAM)], subscribe: [] },
};

/** The user that makes the JetStream streams the roles use (the events stream, the call bucket), and nothing else. */
export const NATS_SETUP_USER = 'setup';
/** Its password's environment variable (the Docker Compose setup's one-shot `nats-setup` container). */
export const NATS_SETUP_PASSWORD_ENV = 'NATS_PASSWORD_SETUP';
export const natsSetupPermissions: NatsPermissions = {
  publish: [
    '$JS.API.INFO',
    ...[EVENTS_STREAM, `KV_${MCP_CALLS_BUCKET}`].flatMap((stream) => [
      `$JS.API.STREAM.INFO.${stream}`,
      `$JS.API.STREAM.CREATE.${stream}`,
      `$JS.API.STREAM.UPDATE.${stream}`,
    ]),
  ],
  subscribe: [`${natsInboxPrefix(NATS_SETUP_USER)}.>`],
};

/** A role user's permissions as the server takes them: its own inboxes added to what it may subscribe. */
export function natsRolePermissions(user: NatsRoleUser): NatsPermissions {
  const p = rolePermissions[user];
  return { publish: p.publish, subscribe: [...p.subscribe, `${natsInboxPrefix(user)}.>`] };
}

/** The environment variable that gives a process a role user's password: `NATS_PASSWORD_GATEWAY`, ... */
export const natsPasswordEnv = (user: NatsRoleUser): string => `NATS_PASSWORD_${user.toUpperCase()}`;

/**
 * The role users as nats-server `users` entries, one per line, each password as given
 * (`password(user)` returns the text to put there: a quoted password, or `$NATS_PASSWORD_GATEWAY`
 * for nats-server to read from its environment).
 */
export function natsRoleUserEntries(password: (user: NatsRoleUser) => string): string[] {
  return natsRoleUsers.map((user) => natsRoleUserEntry({ user, ...natsRolePermissions(user) }, password(user)));
}

/** The setup user as a nats-server `users` entry (see natsRoleUserEntries for `password`). */
export const natsSetupUserEntry = (password: string): string =>
  natsRoleUserEntry({ user: NATS_SETUP_USER, ...natsSetupPermissions }, password);
