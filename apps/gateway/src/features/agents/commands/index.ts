/** The agent feature's commands: one class and one handler per file. */
import { CancelTaskHandler } from './cancel-task.js';
import { DelegateTaskHandler } from './delegate-task.js';
import { RegisterExternalAgentHandler } from './register-external-agent.js';
import { UnregisterExternalAgentHandler } from './unregister-external-agent.js';

export { CancelTask } from './cancel-task.js';
export { DelegateTask, type DelegationAnswer } from './delegate-task.js';
export { RegisterExternalAgent } from './register-external-agent.js';
export { UnregisterExternalAgent } from './unregister-external-agent.js';

export const AGENT_COMMAND_HANDLERS = [
  DelegateTaskHandler,
  CancelTaskHandler,
  RegisterExternalAgentHandler,
  UnregisterExternalAgentHandler,
];
