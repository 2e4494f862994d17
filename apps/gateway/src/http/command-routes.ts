import 'reflect-metadata';
import {
  RequestMethod,
  type DynamicModule,
  type ForwardReference,
  type NestInterceptor,
  type Type,
} from '@nestjs/common';
import { INTERCEPTORS_METADATA, METHOD_METADATA, MODULE_METADATA } from '@nestjs/common/constants.js';

type ModuleRef = Type<unknown> | DynamicModule | Promise<DynamicModule> | ForwardReference;

// Methods that never carry a command: Nest routes a GET handler's HEAD too.
const READ_METHODS: ReadonlySet<RequestMethod> = new Set([RequestMethod.GET, RequestMethod.HEAD]);

const isDynamic = (m: object): m is DynamicModule => 'module' in m;
const isForwardRef = (m: object): m is ForwardReference => 'forwardRef' in m;

/** Every controller class of a module tree (static and dynamic modules, promised and forward-referenced imports). */
export async function controllersOf(root: ModuleRef): Promise<Type<unknown>[]> {
  const seen = new Set<unknown>();
  const found = new Set<Type<unknown>>();
  const visit = async (ref: ModuleRef | undefined): Promise<void> => {
    if (!ref) return;
    let m: unknown = ref instanceof Promise ? await ref : ref;
    if (m && typeof m === 'object' && isForwardRef(m)) m = m.forwardRef();
    if (!m || seen.has(m)) return;
    seen.add(m);
    const type = (typeof m === 'function' ? m : isDynamic(m) ? m.module : undefined) as Type<unknown> | undefined;
    const dynamic = typeof m === 'object' && isDynamic(m) ? m : undefined;
    const meta = (key: string): unknown[] =>
      type ? ((Reflect.getMetadata(key, type) as unknown[] | undefined) ?? []) : [];
    for (const c of [...meta(MODULE_METADATA.CONTROLLERS), ...(dynamic?.controllers ?? [])])
      found.add(c as Type<unknown>);
    for (const i of [...meta(MODULE_METADATA.IMPORTS), ...(dynamic?.imports ?? [])]) await visit(i as ModuleRef);
  };
  await visit(root);
  return [...found];
}

/** The methods of a class, inherited ones included (as Nest's scanner finds routes), without calling getters. */
const methodsOf = (proto: object): object[] => {
  const names = new Set<string>();
  const methods: object[] = [];
  for (let p: object | null = proto; p && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) {
    for (const n of Object.getOwnPropertyNames(p)) {
      if (n === 'constructor' || names.has(n)) continue;
      names.add(n);
      const value: unknown = Object.getOwnPropertyDescriptor(p, n)?.value;
      if (typeof value === 'function') methods.push(value);
    }
  }
  return methods;
};

/**
 * Put `interceptor` on every route of the module tree that may carry a command (any method but
 * GET/HEAD), as `@UseInterceptors` on the method would (first, before the method's own), and
 * on no read route. Where an interceptor only acts on commands (Idempotency-Key), this is the
 * same as a global one, without the price a global interceptor costs every read: Nest wraps
 * each intercepted handler in rxjs (defer, mergeAll, a ReplaySubject) and two
 * AsyncResource.bind per request, and calls a route without interceptors directly.
 * Run before NestFactory.create, which registers the interceptor in each controller's module.
 * The metadata is on the classes: marking them again (another gateway in the process) is a no-op.
 */
export async function interceptCommandRoutes(root: ModuleRef, interceptor: Type<NestInterceptor>): Promise<void> {
  for (const controller of await controllersOf(root)) {
    for (const handler of methodsOf(controller.prototype as object)) {
      const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
      if (method === undefined || READ_METHODS.has(method)) continue;
      const own = (Reflect.getMetadata(INTERCEPTORS_METADATA, handler) as unknown[] | undefined) ?? [];
      if (own.includes(interceptor)) continue;
      Reflect.defineMetadata(INTERCEPTORS_METADATA, [interceptor, ...own], handler);
    }
  }
}
