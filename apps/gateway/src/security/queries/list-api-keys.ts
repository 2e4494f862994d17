import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { ApiKeyService, type ApiKeyRecord } from '../api-keys.js';

/** A page of the API keys (never their secrets), oldest first, revoked ones too when asked. */
export class ListApiKeys extends Query<{ keys: ApiKeyRecord[]; next_cursor: string | null }> {
  constructor(
    readonly includeRevoked: boolean,
    readonly page: { readonly limit: number; readonly cursor?: string | undefined },
  ) {
    super();
  }
}

@QueryHandler(ListApiKeys)
export class ListApiKeysHandler implements IQueryHandler<ListApiKeys> {
  constructor(@Inject(ApiKeyService) private readonly keys: ApiKeyService) {}
  async execute(q: ListApiKeys) {
    await this.keys.init();
    const { keys, more } = await this.keys.listPage({ includeRevoked: q.includeRevoked, ...q.page });
    return { keys, next_cursor: more ? (keys[keys.length - 1]?.id ?? null) : null };
  }
}
