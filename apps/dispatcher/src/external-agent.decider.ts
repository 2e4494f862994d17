/**
 * An external agent registered at run time (stream `external_agent-<name>`): registered
 * (again, replacing what it was) or removed. The bearer token is not part of it: it never enters
 * the log (see external-agent-store.ts, where the dispatcher keeps it).
 */
import type { ExternalAgentRegisteredData, ExternalAgentRemovedData } from '@switchyard/contracts';
import { DomainError, type Command, type Decider, type Event } from '@switchyard/domain';

export type RegisterExternalAgent = Command<'RegisterExternalAgent', ExternalAgentRegisteredData>;
export type RemoveExternalAgent = Command<'RemoveExternalAgent', ExternalAgentRemovedData>;
export type ExternalAgentCommand = RegisterExternalAgent | RemoveExternalAgent;

export type ExternalAgentRegistered = Event<'ExternalAgentRegistered', ExternalAgentRegisteredData>;
export type ExternalAgentRemoved = Event<'ExternalAgentRemoved', ExternalAgentRemovedData>;
export type ExternalAgentEvent = ExternalAgentRegistered | ExternalAgentRemoved;

export type ExternalAgentState =
  { readonly status: 'absent' } | { readonly status: 'registered'; readonly agent: ExternalAgentRegisteredData };

export const externalAgentDecider: Decider<ExternalAgentCommand, ExternalAgentEvent, ExternalAgentState> = {
  initialState: { status: 'absent' },
  decide: (command, state) => {
    switch (command.type) {
      case 'RegisterExternalAgent':
        return [{ type: 'ExternalAgentRegistered', data: command.data, metadata: command.metadata }];
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
