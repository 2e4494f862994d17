/**
 * An external agent registered at run time (stream `external_agent-<name>`): registered
 * (again, replacing what it was) or removed. The bearer token is not part of it: it never enters
 * the log (see external-agent-store.ts, where the dispatcher keeps it).
 */
import type { ExternalAgentRegisteredData, ExternalAgentRemovedData } from '@switchyard/contracts';
import { DomainError, type Command, type Decider, type Event } from '@switchyard/domain';

/**
 * `token_changed`: whether the registration's bearer token differs from the one kept (the token
 * itself never reaches the decider). It is not recorded: the event says `has_token` only.
 */
export type RegisterExternalAgent = Command<
  'RegisterExternalAgent',
  ExternalAgentRegisteredData & { readonly token_changed: boolean }
>;
export type RemoveExternalAgent = Command<'RemoveExternalAgent', ExternalAgentRemovedData>;
export type ExternalAgentCommand = RegisterExternalAgent | RemoveExternalAgent;

export type ExternalAgentRegistered = Event<'ExternalAgentRegistered', ExternalAgentRegisteredData>;
export type ExternalAgentRemoved = Event<'ExternalAgentRemoved', ExternalAgentRemovedData>;
export type ExternalAgentEvent = ExternalAgentRegistered | ExternalAgentRemoved;

export type ExternalAgentState =
  { readonly status: 'absent' } | { readonly status: 'registered'; readonly agent: ExternalAgentRegisteredData };

/** Whether two registrations say the same thing (when they were made aside). */
function sameRegistration(a: ExternalAgentRegisteredData, b: ExternalAgentRegisteredData): boolean {
  const { registered_at: _a, ...x } = a;
  const { registered_at: _b, ...y } = b;
  return (
    x.name === y.name &&
    x.url === y.url &&
    x.has_token === y.has_token &&
    x.max_concurrency === y.max_concurrency &&
    x.description === y.description &&
    x.a2a_card_url === y.a2a_card_url &&
    x.task_types.length === y.task_types.length &&
    x.task_types.every((t, i) => t === y.task_types[i])
  );
}

export const externalAgentDecider: Decider<ExternalAgentCommand, ExternalAgentEvent, ExternalAgentState> = {
  initialState: { status: 'absent' },
  decide: (command, state) => {
    switch (command.type) {
      case 'RegisterExternalAgent': {
        const { token_changed: tokenChanged, ...data } = command.data;
        // The same registration again (a retry, two identical requests at once) records nothing:
        // the log keeps one record of one registration. A new token is a change others must pick up.
        if (state.status === 'registered' && !tokenChanged && sameRegistration(state.agent, data)) return [];
        return [{ type: 'ExternalAgentRegistered', data, metadata: command.metadata }];
      }
      case 'RemoveExternalAgent':
        if (state.status !== 'registered')
          throw new DomainError('not_found', `no registered external agent named ${command.data.name}`, {
            agent: command.data.name,
          });
        return [{ type: 'ExternalAgentRemoved', data: command.data, metadata: command.metadata }];
    }
  },
  evolve: (state, event) => {
    switch (event.type) {
      case 'ExternalAgentRegistered':
        return { status: 'registered', agent: event.data };
      case 'ExternalAgentRemoved':
        return { status: 'absent' };
      default:
        return state;
    }
  },
};
