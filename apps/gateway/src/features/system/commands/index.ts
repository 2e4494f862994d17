/** The system feature's commands: one class and one handler per file. */
import { AddAlertSilenceHandler } from './add-alert-silence.js';
import { RemoveAlertSilenceHandler } from './remove-alert-silence.js';
import { ResolveAlertHandler } from './resolve-alert.js';
import { PutAlertRulesHandler } from './put-alert-rules.js';
import { DeleteAlertRuleHandler } from './delete-alert-rule.js';

export { AddAlertSilence } from './add-alert-silence.js';
export { RemoveAlertSilence } from './remove-alert-silence.js';
export { ResolveAlert } from './resolve-alert.js';
export { PutAlertRules } from './put-alert-rules.js';
export { DeleteAlertRule } from './delete-alert-rule.js';

export const SYSTEM_COMMAND_HANDLERS = [
  AddAlertSilenceHandler,
  RemoveAlertSilenceHandler,
  ResolveAlertHandler,
  PutAlertRulesHandler,
  DeleteAlertRuleHandler,
];
