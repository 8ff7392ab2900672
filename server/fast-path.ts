// The hot path beside express. Under a serving load nearly every request is
// one route, POST /v1/tasks/:task/classify, and express's share of its CPU
// (decorating req and res, walking the router's layers, its response
// helpers, a child logger per request) was about a third of the server's
// CPU outside the model (docs/BENCHMARKS.md, "the fast path"). So the few
// routes that declare a fast handler (`RouteModule.fast`) are matched first,
// on Node's own request, and answered with the same parts the app uses: the
// request id, the drain refusal, the request recorder (log line, metrics,
// usage) and `writeError`. Every other request goes to the express app as
// before. (fastify's router matches before any framework work the same way.)

import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

import { SoftserveError } from '../kernels/errors.ts';
import { drainRefusal } from './app.ts';
import { writeError } from './errors.ts';
import type { ClassifyFields, RequestRecorder } from './observe.ts';
import { requestIdOf } from './request-id.ts';

export interface FastRoute {
  method: string;
  /**
   * Matched against the URL's path as express matches a route (write it
   * case-insensitive, with an optional trailing slash); its groups are the
   * params, percent-decoded before the handler sees them.
   */
  path: RegExp;
  /** The metric label, as the express route would have it (server/route-module.ts `patternLabel`). */
  label: string;
  /** Answers the request, or throws (a SoftserveError) for `writeError` to answer. */
  handle(exchange: Exchange): Promise<void>;
}

/** One request on the fast path: what express would keep on req, res and res.locals. */
export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  /** The route's params, percent-decoded. */
  readonly params: readonly string[];
  /** Set once the tenant's key is accepted (usage and the log line count the request for it). */
  tenantId?: string;
  /** Set by the classify route when it answers. */
  classify?: ClassifyFields;
}

export interface FastPathDeps {
  routes: readonly FastRoute[];
  /** Everything the fast routes do not match. */
  app: RequestListener;
  record: RequestRecorder;
  logger: Logger;
  /** While true, fast routes answer 503 DRAINING, as the app's modules do. */
  draining: () => boolean;
  onDrainRefusal: () => void;
  retryAfterEstimate: () => number;
}

/** The server's request listener: fast routes first, then the express app. */
export function fastPathListener(deps: FastPathDeps): RequestListener {
  const { routes, app } = deps;
  if (routes.length === 0) return app;
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    for (const route of routes) {
      if (req.method !== route.method) continue;
      const match = route.path.exec(path);
      if (match) return serve(deps, route, match.slice(1), path, req, res);
    }
    return app(req, res);
  };
}

function serve(deps: FastPathDeps, route: FastRoute, rawParams: string[], path: string, req: IncomingMessage, res: ServerResponse): void {
  const started = performance.now();
  const requestId = requestIdOf(req);
  res.setHeader('X-Request-Id', requestId);
  // As every /v1 answer of the app: API keys travel in /v1 bodies, so no cache may keep one.
  res.setHeader('Cache-Control', 'no-store');
  const exchange: { -readonly [K in keyof Exchange]: Exchange[K] } = { req, res, requestId, params: [] };
  let errorCode: string | undefined;
  res.on('finish', () => {
    deps.record({
      requestId, method: req.method!, path, status: res.statusCode, seconds: (performance.now() - started) / 1000, route: route.label,
      ...(exchange.tenantId !== undefined ? { tenantId: exchange.tenantId } : {}),
      ...(exchange.classify ? { classify: exchange.classify } : {}),
      ...(errorCode !== undefined ? { errorCode } : {}),
    });
  });
  const fail = (err: unknown) => {
    errorCode = writeError(err, req, res, { requestId, log: () => deps.logger.child({ request_id: requestId }), retryAfterEstimate: deps.retryAfterEstimate });
  };
  if (deps.draining()) {
    deps.onDrainRefusal();
    return fail(drainRefusal(res));
  }
  try {
    exchange.params = rawParams.map((p) => decodeURIComponent(p));
  } catch {
    return fail(new SoftserveError('BAD_REQUEST', `the path ${JSON.stringify(path)} is not valid percent-encoding`));
  }
  route.handle(exchange).catch(fail);
}
