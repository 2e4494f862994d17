import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { ApiKeyService, type ApiKeyRecord } from '../api-keys.js';

/** Revoke an API key (ApiKeyRevoked); 409 when already revoked or the last active admin key. */
export class RevokeApiKey extends Command<ApiKeyRecord> {
  constructor(
    readonly id: string,
    readonly actor: string,
    readonly correlationId: string,
  ) {
    super();
  }
}

@CommandHandler(RevokeApiKey)
export class RevokeApiKeyHandler implements ICommandHandler<RevokeApiKey> {
  constructor(@Inject(ApiKeyService) private readonly keys: ApiKeyService) {}
  async execute(c: RevokeApiKey) {
    await this.keys.init();
    return this.keys.revoke(c.id, { actor: c.actor, correlationId: c.correlationId });
  }
}
