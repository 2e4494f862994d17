export {
  ROLES,
  parseRoleSelection,
  runsMcpServer,
  selectedAgents,
  RoleSelectionError,
  DATABASE_WRITER,
  type Role,
  type RoleSelection,
  type McpServerName,
} from './roles.js';
export { plannedListeners, mcpServerPort, agentPortsFromEnv, type Listener } from './ports.js';
export { judgeHealth, readHealthFile, healthFileSchema, type HealthFile, type HealthVerdict } from './health-file.js';
export { composeNatsConfig, COMPOSE_NATS_CONFIG } from './nats-users.js';
export { databaseLoginsOf, natsIdentity } from './roles.js';
