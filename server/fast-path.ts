// The hot path beside express. Under a serving load nearly every request is
// one route, POST /v1/tasks/:task/classify, and express's share of its CPU
// (decorating req and res, walking the router's layers, its response
// helpers, a child logger per request) was about a third of the server's
// CPU outside the model (docs/BENCHMARKS.md, "the classify fast path"). So the few
// routes that declare a fast handler (`RouteModule.fast`) are matched first,
// on Node's own request, and answered with the same parts the app uses: the
// request id, the drain refusal, the request recorder (log line, metrics,
// usage) and `writeError`. Every other request goes to the express app as
// before. (fastify's router matches before any framework work the same way.)

import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

import { SoftserveError } from '../kernels/errors.ts';
import { drainRefusal, writeError } from './errors.ts';
import type { ClassifyFields, RequestRecorder } from './observe.ts';
import { requestIdOf, requestLogger } from './request-id.ts';
import { patternLabel } from './route-module.ts';
import { pathOf } from './url-path.ts';

export interface FastRoute {
  method: string;
  /** Matches a URL path as express matches the route's pattern; its groups are the params (still percent-encoded). */
  path: RegExp;
  /** The metric label, as the express route would have it (server/route-module.ts `patternLabel`). */
  label: string;
  /** Answers the request, or throws (a SoftserveError) for `writeError` to answer. */
  handle(exchange: Exchange): Promise<void>;
  /** The largest body it reads (the listener answers `Expect: 100-continue` by it). */
  bodyLimit: number;
}

/**
 * A fast route for an express-style pattern of literal segments and whole-
 * segment params (`/v1/tasks/:task/classify`), matched as express 5 matches
 * it: any case, an optional trailing slash, a param is one non-empty path
 * segment. Express's other syntax (`*splat`, `{optional}`, `:a.json`) is
 * refused rather than matched differently.
 */
export function fastRoute(method: string, pattern: string, opts: { bodyLimit: number }, handle: FastRoute['handle']): FastRoute {
  const [root, ...segments] = pattern.split('/');
  if (root !== '' || segments.some((part) => !/^(:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z0-9._~-]+)$/.test(part))) {
    throw new Error(`fast route pattern ${pattern}: only literal segments and whole-segment :params`);
  }
  // A literal segment holds only unreserved characters, of which '.' alone means something in a regex.
  const source = segments.map((part) => (part.startsWith(':') ? '\\/([^/]+)' : `\\/${part.replaceAll('.', '\\.')}`)).join('');
  return { method, path: new RegExp(`^${source}\\/?$`, 'i'), label: patternLabel(pattern), handle, ...opts };
}

/** The fast route `req` takes, with its raw params and path; null when the app answers it. */
export function matchFastRoute(routes: readonly FastRoute[], req: IncomingMessage): { route: FastRoute; params: string[]; path: string } | null {
  if (!routes.some((r) => r.method === req.method)) return null;
  const path = pathOf(req.url ?? '/');
  for (const route of routes) {
    if (req.method !== route.method) continue;
    const match = route.path.exec(path);
    // fastRoute's params are never optional groups: each is a string.
    if (match) return { route, params: match.slice(1), path };
  }
  return null;
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
    const fast = matchFastRoute(routes, req);
    if (fast) serve(deps, fast.route, fast.params, fast.path, req, res);
    else app(req, res);
  };
}

function serve(deps: FastPathDeps, route: FastRoute, rawParams: string[], path: string, req: IncomingMessage, res: ServerResponse): void {
  const started = performance.now();
  const requestId = requestIdOf(req);
  res.setHeader('X-Request-Id', requestId);
  // As the app does for every /v1 answer (fast routes are /v1 routes): API keys travel in /v1 bodies, so no cache may keep one.
  res.setHeader('Cache-Control', 'no-store');
  let exchange: Exchange | undefined;
  let errorCode: string | undefined;
  res.on('finish', () => {
    deps.record({
      requestId, method: req.method!, path, status: res.statusCode, seconds: (performance.now() - started) / 1000, route: route.label,
      tenantId: exchange?.tenantId, classify: exchange?.classify, errorCode,
    });
  });
  const fail = (err: unknown) => {
    try {
      errorCode = writeError(err, req, res, { requestId, logger: deps.logger, retryAfterEstimate: deps.retryAfterEstimate });
    } catch (writeErr) {
      // An answer that cannot be written must not take the process down with it.
      requestLogger(deps.logger, requestId).error({ err: writeErr, cause: err }, 'error answer failed');
      res.destroy();
    }
  };
  if (deps.draining()) {
    deps.onDrainRefusal();
    return fail(drainRefusal(res));
  }
  let params: string[];
  try {
    params = rawParams.map((p) => decodeURIComponent(p));
  } catch {
    return fail(new SoftserveError('BAD_REQUEST', `the path ${JSON.stringify(path)} is not valid percent-encoding`));
  }
  exchange = { req, res, requestId, params };
  try {
    route.handle(exchange).catch(fail);
  } catch (err) {
    fail(err); // a handler that throws before its first await
  }
}
