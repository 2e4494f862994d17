import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BUILTIN_AGENT_PORTS } from '@switchyard/contracts';
import { defaultPorts } from '@switchyard/mcp-servers';
import { judgeHealth, type HealthFile } from './health-file.js';
import { agentPortsFromEnv, listeningPorts, plannedListeners, portClashes } from './ports.js';
import { ConfigError, parseConfig } from '@switchyard/platform';
import {
  databaseLoginsOf,
  givenDatabaseLogins,
  natsIdentity,
  parseRoleSelection,
  ROLES,
  RoleSelectionError,
  runsMcpServer,
  selectedAgents,
} from './roles.js';

describe('parseRoleSelection', () => {
  it('runs everything when nothing or `all` is asked', () => {
    assert.deepEqual(parseRoleSelection([]), { roles: [...ROLES] });
    assert.deepEqual(parseRoleSelection(['all', 'gateway']), { roles: [...ROLES] });
  });

  it('keeps the launcher order of the roles, whatever order they are asked in', () => {
    assert.deepEqual(parseRoleSelection(['gateway', 'relay', 'workflows']).roles, ['relay', 'workflows', 'gateway']);
    // The read model's thread starts after the engine (which creates the workflow schema when it may).
    assert.deepEqual(parseRoleSelection(['read-models', 'workflows']).roles, ['workflows', 'read-models']);
    assert.ok(ROLES.includes('read-models'), '`all` runs the workflow read model on its own thread');
  });

  it('reads SWITCHYARD_ROLES (commas or spaces) only when there are no arguments', () => {
    assert.deepEqual(parseRoleSelection([], { SWITCHYARD_ROLES: 'relay, dispatcher workflows' }).roles, [
      'relay',
      'dispatcher',
      'workflows',
    ]);
    assert.deepEqual(parseRoleSelection(['gateway'], { SWITCHYARD_ROLES: 'relay' }).roles, ['gateway']);
    assert.deepEqual(parseRoleSelection(['--inspect'], { SWITCHYARD_ROLES: ' ' }).roles, [...ROLES]);
  });

  it('picks single MCP servers by role name, kind or writer name', () => {
    const s = parseRoleSelection(['mcp-servers:filesystem', 'mcp-servers:database+database_writer']);
    assert.deepEqual(s.roles, ['mcp-servers']);
    assert.deepEqual(s.mcpServers, ['filesystem-bridge', 'database', 'database_writer']);
    assert.equal(runsMcpServer(s, 'database'), true);
    assert.equal(runsMcpServer(s, 'fetch'), false);
    assert.deepEqual(parseRoleSelection(['mcp-servers:database-writer']).mcpServers, ['database_writer']);
    assert.deepEqual(parseRoleSelection(['mcp-servers:filesystem-bridge']).mcpServers, ['filesystem-bridge']);
  });

  it('picks single agents, and the whole role again when asked bare', () => {
    const s = parseRoleSelection(['agents:data_analyst', 'connectors']);
    assert.deepEqual(s.roles, ['connectors', 'agents']);
    assert.deepEqual(selectedAgents(s), ['data_analyst']);
    const whole = parseRoleSelection(['agents:data_analyst', 'agents']);
    assert.equal(whole.agents, undefined);
    assert.deepEqual(selectedAgents(whole), Object.keys(BUILTIN_AGENT_PORTS));
    assert.deepEqual(selectedAgents(parseRoleSelection(['gateway'])), []);
  });

  it('refuses unknown roles, servers and agents, naming the valid ones', () => {
    assert.throws(
      () => parseRoleSelection(['gatway']),
      (e: unknown) => e instanceof RoleSelectionError && /unknown role "gatway".*gateway/.test(e.message),
    );
    assert.throws(
      () => parseRoleSelection(['mcp-servers:postgres']),
      (e: unknown) => e instanceof RoleSelectionError && /unknown MCP server "postgres".*database/.test(e.message),
    );
    assert.throws(
      () => parseRoleSelection(['agents:ceo']),
      (e: unknown) => e instanceof RoleSelectionError && /unknown agent "ceo".*data_analyst/.test(e.message),
    );
    assert.throws(
      () => parseRoleSelection(['relay:x']),
      (e: unknown) => e instanceof RoleSelectionError && /no parts/.test(e.message),
    );
  });
});

describe('plannedListeners', () => {
  it('lists the seed ports of everything for `all`: the MCP servers, the writer, the six agents, the gateway', () => {
    const ls = plannedListeners(parseRoleSelection([]), {});
    const byName = Object.fromEntries(ls.map((l) => [l.name, l.port]));
    for (const [kind, port] of Object.entries(defaultPorts)) assert.equal(byName[kind], port, kind);
    for (const [agent, port] of Object.entries(BUILTIN_AGENT_PORTS)) assert.equal(byName[agent], port, agent);
    assert.equal(byName.database_writer, 5007);
    assert.equal(byName.gateway, 10000);
    assert.equal(new Set(ls.map((l) => l.port)).size, ls.length, 'no two listeners share a port');
  });

  it('lists only the selected parts, on the ports the variables move them to', () => {
    const ls = plannedListeners(parseRoleSelection(['mcp-servers:database', 'agents:content_creator', 'relay']), {
      MCP_DATABASE_PORT: '7002',
      AGENT_CONTENT_CREATOR_PORT: '7003',
      GATEWAY_PORT: '7000',
    });
    assert.deepEqual(
      ls.map((l) => [l.role, l.name, l.port, l.healthPath, l.hostVariable]),
      [
        ['mcp-servers', 'database', 7002, '/health', 'BIND_HOST'],
        ['agents', 'content_creator', 7003, '/health', 'BIND_HOST'],
      ],
    );
    assert.deepEqual(
      plannedListeners(parseRoleSelection(['gateway']), { GATEWAY_PORT: '7000' }).map((l) => [
        l.port,
        l.healthPath,
        l.hostVariable,
      ]),
      [[7000, '/readyz', 'GATEWAY_HOST']],
    );
  });

  it('refuses an agent port that is no port, and an AGENT_<NAME>_PORT naming no agent, naming the variable', () => {
    for (const [env, message] of [
      [{ AGENT_DATA_ANALYST_PORT: '99999' }, /AGENT_DATA_ANALYST_PORT must be a port number \(1-65535\), got "99999"/],
      [{ AGENT_DATA_ANALYST_PORT: 'abc' }, /AGENT_DATA_ANALYST_PORT must be a port number/],
      [{ AGENT_DATA_ANALYST_PORT: '0x1b59' }, /AGENT_DATA_ANALYST_PORT must be a port number/],
      [
        { AGENT_DATA_ANALYSTS_PORT: '7001' },
        /AGENT_DATA_ANALYSTS_PORT names no agent \(known: AGENT_DATA_ANALYST_PORT, /,
      ],
    ] as const)
      assert.throws(() => agentPortsFromEnv(env), message);
    assert.deepEqual(agentPortsFromEnv({ AGENT_DATA_ANALYST_PORT: '7001' }), { ports: { data_analyst: 7001 } });
    assert.deepEqual(agentPortsFromEnv({}), {});
  });
});

describe('judgeHealth', () => {
  const file = (over: Partial<HealthFile> = {}): HealthFile => ({
    at: 1_000_000,
    pid: 7,
    roles: ['relay'],
    units: [{ name: 'relay', state: 'running' }],
    probes: [],
    ...over,
  });

  it('is healthy when fresh and every unit runs', () => {
    assert.deepEqual(judgeHealth(file(), 1_010_000, 30_000), { ok: true });
  });

  it('is unhealthy when the file is stale (a hung or dead process)', () => {
    const v = judgeHealth(file(), 1_040_000, 30_000);
    assert.equal(v.ok, false);
    assert.match((v as { reason: string }).reason, /40 s old.*process 7/);
  });

  it('is unhealthy while a unit is not running, naming it and why', () => {
    const v = judgeHealth(
      file({
        units: [
          { name: 'relay', state: 'running' },
          { name: 'nats', state: 'restarting', lastError: 'connection refused' },
        ],
      }),
      1_000_000,
      30_000,
    );
    assert.deepEqual(v, { ok: false, reason: 'nats restarting (connection refused)' });
  });
});

describe('natsIdentity: how a process connects to NATS', () => {
  const every = {
    gateway: 'g',
    connectors: 'c',
    agents: 'a',
    dispatcher: 'd',
    workflows: 'w',
    monitor: 'm',
    relay: 'r',
  };

  it('every role in one process: one connection with the token, whatever passwords it has', () => {
    assert.deepEqual(natsIdentity([...ROLES], every), { users: [], perRole: false });
  });

  it('some roles with their passwords: one connection per role that has a NATS user, as that user', () => {
    assert.deepEqual(natsIdentity(['relay', 'monitor'], every), { users: ['monitor', 'relay'], perRole: true });
    assert.deepEqual(natsIdentity(['workflows', 'read-models'], { workflows: 'w' }), {
      users: ['workflows'],
      perRole: true,
    });
  });

  it('some roles without any password: the token, as before the users existed', () => {
    assert.deepEqual(natsIdentity(['gateway'], {}), { users: ['gateway'], perRole: false });
    // Roles with no NATS use of their own have no user.
    assert.deepEqual(natsIdentity(['mcp-servers', 'read-models'], every), { users: [], perRole: false });
  });

  it('refuses a process given the passwords of some of its roles only, naming the missing variable', () => {
    assert.throws(
      () => natsIdentity(['gateway', 'dispatcher'], { gateway: 'g' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.issues.length === 1 &&
        err.issues[0]!.variable === 'NATS_PASSWORD_DISPATCHER' &&
        /NATS_PASSWORD_GATEWAY given/.test(err.issues[0]!.message),
    );
  });
});

describe('databaseLoginsOf / givenDatabaseLogins: the logins a process of a split deployment is handed', () => {
  const of = (...args: string[]) => databaseLoginsOf(parseRoleSelection(args));

  it("each role's components, and the audit sink in every process", () => {
    assert.deepEqual(of('connectors'), ['sink']);
    assert.deepEqual(of('gateway'), ['gateway', 'projections', 'sink']);
    assert.deepEqual(of('relay', 'dispatcher', 'workflows', 'read-models'), ['engine', 'dispatcher', 'relay', 'sink']);
    assert.deepEqual(of('read-models'), ['engine', 'sink']);
    assert.deepEqual(of('monitor'), ['monitor', 'sink']);
    assert.deepEqual(of('agents:data_analyst'), ['agents', 'sink']);
    assert.deepEqual(of('mcp-servers'), ['automation', 'analytics', 'sink', 'mcp_reader', 'mcp_writer']);
  });

  it('one MCP server: only its own login (the database server reads, the writer writes; fetch none)', () => {
    assert.deepEqual(of('mcp-servers:database'), ['sink', 'mcp_reader']);
    assert.deepEqual(of('mcp-servers:database_writer'), ['sink', 'mcp_writer']);
    assert.deepEqual(of('mcp-servers:automation'), ['automation', 'sink']);
    assert.deepEqual(of('mcp-servers:fetch'), ['sink']);
  });

  it('none given: undefined (DATABASE_URL or the embedded PostgreSQL, as before)', () => {
    assert.equal(givenDatabaseLogins(parseRoleSelection(['gateway']), { DATABASE_URL: 'postgres://a@b/c' }), undefined);
  });

  it('all of them given: the URLs by login; other variables are not logins', () => {
    const env = {
      DATABASE_URL_GATEWAY: 'postgres://g:p@db/s',
      DATABASE_URL_PROJECTIONS: 'postgres://p:p@db/s',
      DATABASE_URL_SINK: 'postgres://s:p@db/s',
      DATABASE_READ_URL: 'postgres://r@replica/s',
    };
    assert.deepEqual(givenDatabaseLogins(parseRoleSelection(['gateway']), env), {
      gateway: 'postgres://g:p@db/s',
      projections: 'postgres://p:p@db/s',
      sink: 'postgres://s:p@db/s',
    });
  });

  it('some missing: a ConfigError naming each missing variable', () => {
    assert.throws(
      () => givenDatabaseLogins(parseRoleSelection(['gateway']), { DATABASE_URL_SINK: 'postgres://s:p@db/s' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.issues.map((i) => i.variable).join() === 'DATABASE_URL_GATEWAY,DATABASE_URL_PROJECTIONS' &&
        /gateway login/.test(err.issues[0]!.message),
    );
  });
});

describe('listeningPorts / portClashes: two variables naming one port are refused before anything starts', () => {
  const { EMBEDDED_PG_PORT, EMBEDDED_NATS_PORT } = parseConfig({});
  const defaultEmbeddedPorts = { EMBEDDED_PG_PORT, EMBEDDED_NATS_PORT };
  const config = { DATABASE_URL: undefined, NATS_URL: undefined, EMBEDDED_PG_PORT: 30701, EMBEDDED_NATS_PORT: 30702 };

  it('the defaults of a whole system clash nowhere', () => {
    assert.deepEqual(
      portClashes(listeningPorts(parseRoleSelection([]), { ...config, ...defaultEmbeddedPorts }, {})),
      [],
    );
  });

  it('names the later variable and the one it clashes with; port 0 (any free one) never clashes', () => {
    const clashes = portClashes(
      listeningPorts(
        parseRoleSelection([]),
        { ...config, EMBEDDED_NATS_PORT: 30701 },
        { GATEWAY_PORT: '30700', MCP_DATABASE_PORT: '30700' },
      ),
    );
    assert.deepEqual(
      clashes.map((c) => c.variable).sort(),
      ['EMBEDDED_NATS_PORT', 'GATEWAY_PORT'].sort(),
      JSON.stringify(clashes),
    );
    assert.match(clashes.find((c) => c.variable === 'EMBEDDED_NATS_PORT')!.message, /30701 is also EMBEDDED_PG_PORT/);
    assert.match(clashes.find((c) => c.variable === 'GATEWAY_PORT')!.message, /30700 is also MCP_DATABASE_PORT/);
    assert.deepEqual(
      portClashes([
        { variable: 'A', port: 0 },
        { variable: 'B', port: 0 },
      ]),
      [],
    );
    // The development mailbox's SMTP port, where this process runs the automation server.
    const mailbox = portClashes(
      listeningPorts(parseRoleSelection([]), config, { GATEWAY_PORT: '30700', MAILBOX_SMTP_PORT: '30700' }),
    );
    assert.deepEqual(
      mailbox.map((c) => `${c.variable}: ${c.message}`),
      ['MAILBOX_SMTP_PORT: 30700 is also GATEWAY_PORT: each listener needs a port of its own'],
    );
  });

  it('the embedded servers count only where this process runs them', () => {
    const ports = listeningPorts(
      parseRoleSelection(['gateway']),
      {
        DATABASE_URL: 'postgres://x@h/db',
        NATS_URL: 'nats://h:14222',
        EMBEDDED_PG_PORT: 31234,
        EMBEDDED_NATS_PORT: 31234,
      },
      { GATEWAY_PORT: '31234' },
    );
    assert.deepEqual(ports, [{ variable: 'GATEWAY_PORT', port: 31234 }]);
    assert.deepEqual(portClashes(ports), []);
  });
});
