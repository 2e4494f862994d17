import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { ApiKeyService, type ApiKeyRecord } from '../api-keys.js';

/** The API keys (never their secrets), revoked ones too when asked. */
export class ListApiKeys extends Query<{ keys: ApiKeyRecord[] }> {
  constructor(readonly includeRevoked: boolean) {
    super();
  }
}

@QueryHandler(ListApiKeys)
export class ListApiKeysHandler implements IQueryHandler<ListApiKeys> {
  constructor(@Inject(ApiKeyService) private readonly keys: ApiKeyService) {}
  async execute(q: ListApiKeys) {
    await this.keys.init();
    return { keys: await this.keys.list({ includeRevoked: q.includeRevoked }) };
  }
}
