import 'reflect-metadata';
import { Body, Param, Query, type PipeTransform } from '@nestjs/common';
import type { z } from 'zod';
import { AppError } from '@switchyard/platform';
import type { FieldError, FieldLocation } from './problem.js';

/** Metadata key under which a handler's request schemas are kept (read by the OpenAPI explorer). */
export const REQUEST_SCHEMAS = 'switchyard:gateway:request-schemas';

/** The zod schemas a handler declared for its body, query and path parameters. */
export interface RequestSchemas {
  readonly body?: z.ZodType;
  readonly query?: z.ZodType;
  readonly params?: z.ZodType;
}

/** Turn zod issues into field errors that name each bad field. */
export function fieldErrors(error: z.ZodError, location?: FieldLocation): FieldError[] {
  return issueErrors(error.issues, [], location);
}

type Issue = z.ZodError['issues'][number];

/**
 * The branch of a failed union that came closest: the one with the fewest issues among those whose
 * value was at least of their kind (a branch refusing the value's very type, at the union's own
 * path, is no candidate); undefined when none was. "(root): Invalid input" named no field when an
 * alert rule's body had one field misnamed; its closest branch names it.
 */
function closestBranch(issue: Issue): Issue[] | undefined {
  const branches = (issue as { errors?: Issue[][] }).errors ?? [];
  let best: Issue[] | undefined;
  for (const branch of branches) {
    if (branch.length === 0 || branch.some((i) => i.code === 'invalid_type' && i.path.length === 0)) continue;
    if (!best || branch.length < best.length) best = branch;
  }
  return best;
}

function issueErrors(issues: readonly Issue[], prefix: readonly string[], location?: FieldLocation): FieldError[] {
  const where = location ? { in: location } : {};
  return issues.flatMap((issue): FieldError[] => {
    const base = [...prefix, ...issue.path.map(String)];
    // A union's own message (the schema's author wrote one: "a date-time with an offset, or a
    // date") says more than any branch; only zod's default is replaced by the closest branch's.
    if (issue.code === 'invalid_union' && issue.message === 'Invalid input') {
      const branch = closestBranch(issue);
      if (branch) return issueErrors(branch, base, location);
    }
    // One error per unknown key, so each is named like any other bad field.
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({
        path: [...base, k].join('.'),
        message: 'unknown field',
        code: issue.code,
        ...where,
      }));
    }
    return [{ path: base.join('.') || '(root)', message: issue.message, code: issue.code, ...where }];
  });
}

/** The AppError a failed validation becomes: 400 problem with `errors`. */
export function validationError(error: z.ZodError, location?: FieldLocation): AppError {
  const errors = fieldErrors(error, location);
  const names = [...new Set(errors.map((e) => e.path))].join(', ');
  const where = location ? `${location} ` : '';
  return new AppError('validation', `invalid ${where}field${errors.length === 1 ? '' : 's'}: ${names}`, { errors });
}

/** Parse a value with a schema or throw the 400 AppError (for values no decorator covers, e.g. headers). */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, location?: FieldLocation): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw validationError(result.error, location);
  return result.data;
}

/** A Nest pipe that parses with a zod schema (coercions and defaults apply) or answers 400. */
export class ZodValidationPipe<S extends z.ZodType> implements PipeTransform<unknown, z.output<S>> {
  constructor(
    readonly schema: S,
    readonly location?: FieldLocation,
  ) {}

  transform(value: unknown): z.output<S> {
    // A request with no body at all is read as an empty JSON object, as an empty JSON body already
    // is: a bare POST to a route whose fields all have defaults works, and one with required fields
    // is told which (a body sent in another type never gets here: it is a 415 before the pipe).
    const given = value === undefined && this.location === 'body' ? {} : value;
    return parseOrThrow(this.schema, given, this.location);
  }
}

function remember(
  target: object,
  key: string | symbol | undefined,
  location: keyof RequestSchemas,
  schema: z.ZodType,
): void {
  if (key === undefined) return;
  const prev = (Reflect.getMetadata(REQUEST_SCHEMAS, target, key) as RequestSchemas | undefined) ?? {};
  Reflect.defineMetadata(REQUEST_SCHEMAS, { ...prev, [location]: schema }, target, key);
}

/** `@ZodBody(schema) body: z.output<typeof schema>`: validate the JSON body and document it. */
export function ZodBody(schema: z.ZodType): ParameterDecorator {
  return (target, key, index) => {
    Body(new ZodValidationPipe(schema, 'body'))(target, key, index);
    remember(target, key, 'body', schema);
  };
}

/** `@ZodQuery(schema) query`: validate the whole query string object (use z.coerce for numbers) and document it. */
export function ZodQuery(schema: z.ZodType): ParameterDecorator {
  return (target, key, index) => {
    Query(new ZodValidationPipe(schema, 'query'))(target, key, index);
    remember(target, key, 'query', schema);
  };
}

/** `@ZodParams(schema) params`: validate the path parameters object and document it. */
export function ZodParams(schema: z.ZodType): ParameterDecorator {
  return (target, key, index) => {
    Param(new ZodValidationPipe(schema, 'params'))(target, key, index);
    remember(target, key, 'params', schema);
  };
}
