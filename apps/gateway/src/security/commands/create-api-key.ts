import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { ApiKeyService, type ApiKeyRecord } from '../api-keys.js';
import type { Role } from '../roles.js';

/** Create an API key (ApiKeyCreated, the caller as actor). Result: the key's record and its secret, shown once. */
export class CreateApiKey extends Command<ApiKeyRecord & { key: string }> {
  constructor(
    readonly name: string,
    readonly role: Role,
    readonly actor: string,
    readonly correlationId: string,
  ) {
    super();
  }
}

@CommandHandler(CreateApiKey)
export class CreateApiKeyHandler implements ICommandHandler<CreateApiKey> {
  constructor(@Inject(ApiKeyService) private readonly keys: ApiKeyService) {}
  async execute(c: CreateApiKey) {
    await this.keys.init();
    return this.keys.create({ name: c.name, role: c.role }, { actor: c.actor, correlationId: c.correlationId });
  }
}
