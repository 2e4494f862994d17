import { Counter, Histogram, Registry } from 'prom-client';
import { pathOf, type EdgeRequest } from './edge.js';
import type { Exchange } from './exchange.js';

/** Label of a request no route template matched (404s, scanners): one series, whatever the path. */
export const UNMATCHED_ROUTE = 'unmatched';

/** A route as the OpenAPI registry knows it: method and OpenAPI path (`/a/{id}`). */
export interface KnownRoute {
  readonly method: string;
  readonly path: string;
}

interface CompiledRoute {
  readonly method: string;
  readonly regex: RegExp;
  /** The router's form (`/a/:id`), the same label a matched request gets from its route. */
  readonly template: string;
}

const escape = (s: string) => s.replace(/[.*+?^$()|[\]\\]/g, '\\$&');

/** `/a/{id}/b` -> matcher and label `/a/:id/b`. */
export function compileRoute(route: KnownRoute): CompiledRoute {
  const parts = route.path.split(/(\{[^}/]+\})/);
  const regex = new RegExp(`^${parts.map((p) => (/^\{[^}/]+\}$/.test(p) ? '[^/]+' : escape(p))).join('')}/?$`);
  const template = route.path.replace(/\{([^}/]+)\}/g, ':$1');
  return { method: route.method.toUpperCase(), regex, template };
}

const METRICS_OF = new WeakMap<object, GatewayHttpMetrics>();

/**
 * The gateway process's own HTTP metrics, in its own prom-client registry (not the global
 * one, so two gateways in one process, as in tests, do not share counts):
 * `switchyard_http_requests_total{method,route,status}` and
 * `switchyard_http_request_duration_seconds{method,route}`.
 *
 * `route` is the template of the matched route (`/api/v1/workflows/executions/:execution_id`),
 * never the raw path, so label cardinality stays bounded by the route table. A request
 * answered before its route ran (401 of a bad key, 429, timeout) still has its route (Fastify
 * routes first); one no route matched (404, 405) gets its template from the known routes when
 * one fits (405); a mounted static handler gets `<mount>/*`; anything else is `unmatched`.
 */
export class GatewayHttpMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly duration: Histogram<'method' | 'route'>;
  private routes: () => readonly KnownRoute[] = () => [];
  private compiled: CompiledRoute[] | undefined;
  // The series of each method, route and status seen, resolved once: prom-client validates and
  // hashes a labels object on every call otherwise. Bounded like the labels (the route table).
  private readonly series = new Map<
    string,
    { readonly requests: { inc(): void }; readonly duration: { observe(v: number): void } }
  >();

  constructor() {
    this.requests = new Counter({
      name: 'switchyard_http_requests_total',
      help: 'HTTP requests answered by the gateway, by method, route template and status',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: 'switchyard_http_request_duration_seconds',
      help: 'Time from the first middleware to the end of the response, by method and route template',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
  }

  /** Where to find the known routes for requests answered before routing (read once, on first need). */
  useRoutes(routes: () => readonly KnownRoute[]): void {
    this.routes = routes;
    this.compiled = undefined;
  }

  /** Make these the metrics `gatewayHttpMetricsOf(req)` finds for requests of this server (a Fastify instance). */
  attach(server: object): this {
    METRICS_OF.set(server, this);
    return this;
  }

  /** Count a request that ended (an Exchanges step: from its first hook to the end of its answer). */
  readonly record = (x: Exchange): void => {
    const raw = x.res.raw;
    const method = x.req.method;
    const route = this.routeOf(x.req);
    // A client that went away before the answer was complete: no status was delivered.
    const status = raw.writableFinished || raw.headersSent ? String(raw.statusCode) : 'aborted';
    const key = `${method} ${status} ${route}`;
    let s = this.series.get(key);
    if (!s) {
      s = { requests: this.requests.labels(method, route, status), duration: this.duration.labels(method, route) };
      this.series.set(key, s);
    }
    s.requests.inc();
    s.duration.observe((performance.now() - x.start) / 1e3);
  };

  /** Prometheus text of this registry. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The route template of a finished request (see the class comment). */
  routeOf(req: EdgeRequest): string {
    const matched = req.is404 ? undefined : req.routeOptions.url;
    if (typeof matched === 'string') return matched;
    const path = pathOf(req);
    this.compiled ??= this.routes().map(compileRoute);
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const known = this.compiled.find((r) => r.method === method && r.regex.test(path));
    if (known) return known.template;
    return UNMATCHED_ROUTE;
  }
}

/** The gateway's metrics, from any request of a server they were attached to (the /metrics handler). */
export function gatewayHttpMetricsOf(req: EdgeRequest): GatewayHttpMetrics | undefined {
  return METRICS_OF.get(req.server);
}
