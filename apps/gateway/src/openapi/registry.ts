import 'reflect-metadata';
import { Inject, Injectable, SetMetadata } from '@nestjs/common';
import { z } from 'zod';
import { GATEWAY_OPTIONS, type ResolvedGatewayOptions } from '../tokens.js';
import { PROBLEM_CONTENT_TYPE } from '../http/problem.js';
import type { RequestSchemas } from '../http/validation.js';
import { documentTextInts } from '../http/query-int.js';

export const API_ROUTE = 'switchyard:gateway:api-route';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete' | 'options' | 'head';

/** What a route says about itself beyond its request schemas (those come from @ZodBody/@ZodQuery/@ZodParams). */
export interface RouteDoc {
  readonly summary?: string;
  readonly description?: string;
  readonly tags?: readonly string[];
  readonly operationId?: string;
  /** The success answer. */
  readonly response?: {
    readonly status?: number;
    readonly description?: string;
    readonly schema?: z.ZodType;
    /** Default application/json. */
    readonly contentType?: string;
    readonly example?: unknown;
    /** Put the schema in `components.schemas` under this name and refer to it (a shape several answers or clients share). */
    readonly component?: string;
  };
  /** Other success answers of the route (e.g. 200 with the result when `?wait=true` saw the work end, beside the 202). */
  readonly alsoAnswers?: readonly {
    readonly status: number;
    readonly description: string;
    readonly schema?: z.ZodType;
  }[];
  /** An example request body (default: one built from the body schema). */
  readonly requestExample?: unknown;
  /** Request headers the route reads (an object schema), documented as header parameters. */
  readonly headers?: z.ZodType;
  /** A POST that is a query (`@WithoutIdempotency()`): no `Idempotency-Key` is documented for it. */
  readonly query?: boolean;
  /** Error statuses this route answers with problem+json (400 and 500 are added by themselves). */
  readonly errors?: readonly number[];
  /** Role a caller needs (viewer < operator < admin, or `public`), documented as `x-required-role` and enforced by the RoleGuard. */
  readonly role?: string;
  /** Leave the route out of the document. */
  readonly hidden?: boolean;
}

/** Method decorator documenting a Nest route: `@Get('x') @ApiRoute({ summary, response: { schema } })`. */
export const ApiRoute = (doc: RouteDoc): MethodDecorator => SetMetadata(API_ROUTE, doc);

/** One documented route. `path` uses OpenAPI templating: `/workflows/{id}`. */
export interface RouteSpec {
  readonly method: HttpMethod;
  readonly path: string;
  readonly request?: RequestSchemas;
  readonly doc?: RouteDoc;
}

type JsonSchema = Record<string, unknown>;
export type OpenApiDocument = {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, JsonSchema>; securitySchemes?: Record<string, JsonSchema> };
};

const fieldErrorSchema = z.object({
  path: z.string().describe('Dotted path of the bad field, e.g. `limit` or `items.0.name`'),
  message: z.string(),
  code: z.string(),
  in: z.enum(['body', 'query', 'params', 'headers']).optional(),
});

/** The RFC 9457 problem document every error answer carries. */
export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string(),
    code: z.string().describe('Stable error code: validation, not_found, illegal_state, conflict, unavailable, ...'),
    correlationId: z.string(),
    retryable: z.boolean().optional(),
    errors: z.array(fieldErrorSchema).optional(),
  })
  .catchall(z.unknown());

/** A zod schema as JSON Schema 2020-12 (the dialect of OpenAPI 3.1). */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const js = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
    override: (ctx) => documentTextInts(ctx as Parameters<typeof documentTextInts>[0]),
  }) as JsonSchema;
  delete js.$schema;
  return js;
}

const problemResponse = (description: string) => ({
  description,
  content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: '#/components/schemas/Problem' } } },
});

const statusText: Record<number, string> = {
  400: 'Invalid request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Illegal state',
  412: 'Conflict: the expected revision did not match',
  405: 'Method not allowed',
  413: 'Payload too large',
  415: 'Unsupported media type (a body that is not sent as JSON, or JSON in a charset other than UTF-8)',
  429: 'Too many requests (per address, per key, or bad keys from one address); see Retry-After',
  431: 'Request header fields too large',
  500: 'Internal error',
  503: 'Unavailable',
  504: 'No answer within the request timeout',
};

/** Headers some error answers always carry. */
const statusHeaders: Record<number, Record<string, unknown>> = {
  401: {
    'WWW-Authenticate': {
      description: 'Bearer realm="switchyard" (error="invalid_token" for a wrong or revoked key)',
      schema: { type: 'string' },
    },
  },
  429: {
    'Retry-After': { description: 'Seconds until a request is allowed again', schema: { type: 'string' } },
    'RateLimit-Limit': { description: 'Requests per window of the limit that refused', schema: { type: 'string' } },
    'RateLimit-Remaining': { description: 'Requests left in the window (0)', schema: { type: 'string' } },
    'RateLimit-Reset': { description: 'Seconds until the window resets', schema: { type: 'string' } },
  },
};

/** How the gateway answers in general, whatever the route; what the per-operation statuses come from. */
export interface DocumentedBehaviour {
  /** API keys required (401 without one, 403 below the route's role, 503 when keys cannot be checked). */
  readonly auth: boolean;
  /** Rate limits on (429). */
  readonly rateLimit: boolean;
  /** A request timeout (504). */
  readonly timeout: boolean;
}

const ROLE_RANK: Record<string, number> = { viewer: 0, operator: 1, admin: 2 };

/** The bearer scheme (Authorization: Bearer sy_<id>_<secret>), and the same key in `x-api-key`. */
export const securitySchemes = {
  bearer: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'sy_<16 hex>_<secret>',
    description: 'An API key: `Authorization: Bearer sy_<id>_<secret>`',
  },
  apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'The same API key in `x-api-key`' },
} as const;

/** What the document's description says about every route, as this gateway is configured. */
function generalBehaviour(b: DocumentedBehaviour): string {
  const always = [
    '400 (malformed input)',
    '431 (headers over 16 KiB)',
    ...(b.rateLimit ? ['429 (rate limits, `Retry-After`)'] : []),
    ...(b.timeout ? ['504 (request timeout)'] : []),
  ];
  return (
    '\n\nEvery route: an error is `application/problem+json` (RFC 9457) with `code` and `correlationId`; a query parameter the route does not declare is refused (400); ' +
    'a method the path does not have answers 405 with `Allow`' +
    (b.auth
      ? '; a caller without the role a route needs (`x-required-role`) gets 401 or 403 before anything in the request is validated'
      : '') +
    `. Statuses every route may answer: ${always.join(', ')}; with a body also 413 (over the body limit) and 415 (a body sent in a type other than JSON, or JSON in a charset other than UTF-8).`
  );
}

/**
 * The OpenAPI registry. Every controller route is registered into it at start (by
 * OpenApiExplorer, from Nest's route metadata and the zod decorators), so new
 * endpoints appear in /docs/openapi.json with no extra step. Routes served outside
 * Nest controllers can be registered by hand.
 */
@Injectable()
export class OpenApiRegistry {
  private readonly specs = new Map<string, RouteSpec>();
  private cached: OpenApiDocument | undefined;

  constructor(@Inject(GATEWAY_OPTIONS) private readonly options: ResolvedGatewayOptions) {}

  private behaviour(): DocumentedBehaviour {
    return {
      auth: this.options.auth?.enabled ?? false,
      rateLimit: this.options.rateLimit?.enabled ?? false,
      timeout: (this.options.requestTimeoutMs ?? 0) > 0,
    };
  }

  /** Add or replace (same method and path) a route. */
  register(spec: RouteSpec): void {
    this.specs.set(`${spec.method} ${spec.path}`, spec);
    this.cached = undefined;
  }

  routes(): RouteSpec[] {
    return [...this.specs.values()];
  }

  /** The OpenAPI 3.1 document of every registered, non-hidden route. */
  document(): OpenApiDocument {
    this.cached ??= this.build();
    return this.cached;
  }

  private build(): OpenApiDocument {
    const paths: OpenApiDocument['paths'] = {};
    const specs = this.routes()
      .filter((s) => !s.doc?.hidden)
      .sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
    const named: Record<string, JsonSchema> = {};
    for (const spec of specs) {
      (paths[spec.path] ??= {})[spec.method] = operation(spec, this.behaviour());
      const r = spec.doc?.response;
      if (r?.component && r.schema) named[r.component] = jsonSchemaOf(r.schema, 'output');
    }
    const behaviour = this.behaviour();
    const { auth } = behaviour;
    return {
      openapi: '3.1.0',
      info: { ...this.options.openapi, description: this.options.openapi.description + generalBehaviour(behaviour) },
      paths,
      components: {
        schemas: { Problem: jsonSchemaOf(problemSchema, 'output'), ...named },
        ...(auth ? { securitySchemes: { ...securitySchemes } } : {}),
      },
    };
  }
}

function parametersOf(schema: z.ZodType | undefined, where: 'query' | 'path' | 'header'): unknown[] {
  if (!schema) return [];
  const js = jsonSchemaOf(schema, 'input');
  const props = (js.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((js.required ?? []) as string[]);
  return Object.entries(props).map(([name, prop]) => {
    const { description, ...rest } = prop;
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest,
    };
  });
}

/**
 * A deterministic example value built from a JSON schema, for routes that declare none: the
 * issue asks every endpoint to show one. Declared `example`/`default`/`const`/enum values win;
 * otherwise a plausible value per type and format. Bounded depth so recursive schemas end.
 */
export function exampleOf(schema: unknown, depth = 0): unknown {
  if (!schema || typeof schema !== 'object' || depth > 6) return null;
  const js = schema as JsonSchema;
  if (js.example !== undefined) return js.example;
  if (Array.isArray(js.examples) && js.examples.length > 0) return js.examples[0];
  if (js.default !== undefined) return js.default;
  if (js.const !== undefined) return js.const;
  if (Array.isArray(js.enum) && js.enum.length > 0) return js.enum[0];
  for (const key of ['anyOf', 'oneOf'] as const) {
    const options = js[key];
    if (Array.isArray(options) && options.length > 0) {
      const first = options.find((o) => (o as JsonSchema)?.type !== 'null') ?? options[0];
      return exampleOf(first, depth + 1);
    }
  }
  if (Array.isArray(js.allOf)) {
    return Object.assign(
      {},
      ...js.allOf.map((part) => exampleOf(part, depth + 1)).filter((v) => v && typeof v === 'object'),
    );
  }
  const type = Array.isArray(js.type) ? js.type.find((t) => t !== 'null') : js.type;
  switch (type) {
    case 'object': {
      const props = (js.properties ?? {}) as Record<string, unknown>;
      return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, exampleOf(v, depth + 1)]));
    }
    case 'array':
      return js.items ? [exampleOf(js.items, depth + 1)] : [];
    case 'integer':
      return typeof js.minimum === 'number' ? js.minimum : 1;
    case 'number':
      return typeof js.minimum === 'number' ? js.minimum : 1.5;
    case 'boolean':
      return true;
    case 'null':
      return null;
    case 'string': {
      const formats: Record<string, string> = {
        'date-time': '2026-01-31T09:00:00.000Z',
        date: '2026-01-31',
        email: 'ann@example.com',
        uri: 'https://example.com/',
        url: 'https://example.com/',
        uuid: '3fa85f64-5717-4562-b3fc-2c963f66afa6',
      };
      return (typeof js.format === 'string' && formats[js.format]) || 'string';
    }
    default:
      return js.properties ? exampleOf({ ...js, type: 'object' }, depth) : null;
  }
}

/**
 * Every status an operation can answer: the route's own (`errors`), and those the gateway
 * answers before or around any route (see generalBehaviour), so the document lists them all.
 */
export function errorStatusesOf(spec: RouteSpec, b: DocumentedBehaviour): number[] {
  const role = spec.doc?.role ?? 'admin';
  const isPublic = role === 'public';
  const statuses = new Set<number>([...(spec.doc?.errors ?? []), 400, 431, 500]);
  if (b.rateLimit) statuses.add(429);
  if (b.timeout) statuses.add(504);
  if (b.auth && !isPublic) {
    statuses.add(401);
    statuses.add(503); // the key table unreachable
    if ((ROLE_RANK[role] ?? 2) > 0) statuses.add(403);
  }
  // A path segment that cannot be a parameter (empty, `..`) reaches no route.
  if (spec.path.includes('{')) statuses.add(404);
  if (['post', 'put', 'patch', 'delete'].includes(spec.method)) {
    statuses.add(413);
    statuses.add(415);
  }
  return [...statuses].sort((a, c) => a - c);
}

function operation(spec: RouteSpec, behaviour: DocumentedBehaviour): Record<string, unknown> {
  const { doc = {}, request = {} } = spec;
  const success = doc.response ?? {};
  const contentType = success.contentType ?? 'application/json';
  const responses: Record<string, unknown> = {
    [String(success.status ?? (spec.method === 'post' ? 201 : 200))]: {
      description: success.description ?? 'Success',
      ...(success.schema || success.example !== undefined || success.contentType
        ? {
            content: {
              [contentType]: {
                // A non-JSON answer (SSE, HTML) without a schema is documented as text.
                schema: success.schema
                  ? success.component
                    ? { $ref: `#/components/schemas/${success.component}` }
                    : jsonSchemaOf(success.schema, 'output')
                  : { type: 'string' },
                ...(success.example !== undefined
                  ? { example: success.example }
                  : success.schema && contentType.includes('json')
                    ? { example: exampleOf(jsonSchemaOf(success.schema, 'output')) }
                    : {}),
              },
            },
          }
        : {}),
    },
  };
  for (const other of doc.alsoAnswers ?? []) {
    responses[String(other.status)] = {
      description: other.description,
      ...(other.schema
        ? {
            content: {
              'application/json': {
                schema: jsonSchemaOf(other.schema, 'output'),
                example: exampleOf(jsonSchemaOf(other.schema, 'output')),
              },
            },
          }
        : {}),
    };
  }
  for (const status of errorStatusesOf(spec, behaviour)) {
    responses[String(status)] = {
      ...problemResponse(statusText[status] ?? 'Error'),
      ...(statusHeaders[status] ? { headers: statusHeaders[status] } : {}),
    };
  }
  const isPublic = (doc.role ?? 'admin') === 'public';
  const parameters = [
    ...parametersOf(request.params, 'path'),
    ...parametersOf(request.query, 'query'),
    ...parametersOf(doc.headers, 'header'),
  ];
  return {
    ...(doc.operationId ? { operationId: doc.operationId } : {}),
    ...(doc.summary ? { summary: doc.summary } : {}),
    ...(doc.description ? { description: doc.description } : {}),
    ...(doc.tags ? { tags: [...doc.tags] } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(request.body
      ? {
          requestBody: {
            // No body at all is read as {} (validation.ts): a body whose fields all have defaults
            // need not be sent, one with required fields must be.
            required: !request.body.safeParse({}).success,
            content: {
              'application/json': {
                schema: jsonSchemaOf(request.body, 'input'),
                example: doc.requestExample ?? exampleOf(jsonSchemaOf(request.body, 'input')),
              },
            },
          },
        }
      : {}),
    responses,
    // Public routes need no key; the others take either scheme (OpenAPI: any one entry suffices).
    ...(behaviour.auth ? { security: isPublic ? [] : [{ bearer: [] }, { apiKey: [] }] } : {}),
    'x-required-role': doc.role ?? null,
  };
}
