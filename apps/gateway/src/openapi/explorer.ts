import 'reflect-metadata';
import { Injectable, RequestMethod, type OnApplicationBootstrap } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { DiscoveryService } from '@nestjs/core';
import { REQUEST_SCHEMAS, type RequestSchemas } from '../http/validation.js';
import { API_ROUTE, OpenApiRegistry, type HttpMethod, type RouteDoc } from './registry.js';

const methods: Partial<Record<RequestMethod, HttpMethod>> = {
  [RequestMethod.GET]: 'get',
  [RequestMethod.POST]: 'post',
  [RequestMethod.PUT]: 'put',
  [RequestMethod.PATCH]: 'patch',
  [RequestMethod.DELETE]: 'delete',
  [RequestMethod.OPTIONS]: 'options',
  [RequestMethod.HEAD]: 'head',
};

const asList = (p: unknown): string[] => (Array.isArray(p) ? p.map(String) : [typeof p === 'string' ? p : '/']);

/** Join Nest path pieces and turn `:id` into OpenAPI's `{id}`. */
export function openApiPath(...parts: string[]): string {
  const joined =
    '/' +
    parts
      .map((p) => p.replace(/^\/+|\/+$/g, ''))
      .filter(Boolean)
      .join('/');
  return joined.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/**
 * Registers every controller route of the application (built-in and feature modules)
 * into the OpenApiRegistry at start, with the schemas its zod decorators declared.
 */
@Injectable()
export class OpenApiExplorer implements OnApplicationBootstrap {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly registry: OpenApiRegistry,
  ) {}

  onApplicationBootstrap(): void {
    for (const wrapper of this.discovery.getControllers()) {
      const type = wrapper.metatype as (new (...args: never[]) => unknown) | null | undefined;
      if (!type?.prototype) continue;
      const prefixes = asList(Reflect.getMetadata(PATH_METADATA, type));
      const proto = type.prototype as Record<string, unknown>;
      for (const name of Object.getOwnPropertyNames(proto)) {
        if (name === 'constructor') continue;
        const handler = proto[name];
        if (typeof handler !== 'function') continue;
        const nestMethod = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
        if (nestMethod === undefined) continue;
        const doc = Reflect.getMetadata(API_ROUTE, handler) as RouteDoc | undefined;
        const request = Reflect.getMetadata(REQUEST_SCHEMAS, proto, name) as RequestSchemas | undefined;
        // ALL and the WebDAV verbs have no OpenAPI operation: document ALL as GET.
        const method = methods[nestMethod] ?? 'get';
        for (const prefix of prefixes) {
          for (const route of asList(Reflect.getMetadata(PATH_METADATA, handler))) {
            this.registry.register({
              method,
              path: openApiPath(prefix, route),
              doc: { operationId: `${type.name}_${name}`, ...doc },
              ...(request ? { request } : {}),
            });
          }
        }
      }
    }
  }
}
