// The HTTP application, assembled from route modules (server/route-module.ts):
// request ids, the request observer (log line + metrics), no-store caching for
// /v1, the modules that answer while draining, the drain gate, the other
// modules in order, the 404 for anything unknown, and the error handler
// (server/errors.ts `writeError` writes every error answer). A module's `fast`
// routes are not mounted here: the server's listener answers them before the
// app (server/fast-path.ts, composed in server/server.ts).

import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';

import { SoftserveError } from '../kernels/errors.ts';
import type { ModelSpec } from '../models/spec.ts';
import type { PromptStore } from '../prompts/store.ts';
import { jsonDepthGuard } from './body-limits.ts';
import { requireAdmin, requireTenant } from './auth.ts';
import type { ServerConfig } from './config.ts';
import { drainRefusal, errorHandler } from './errors.ts';
import { requestIds } from './request-id.ts';
import { labelRoutes, mountLabel, type RouteContext, type RouteModule } from './route-module.ts';
import { ensemblesRoutes } from './routes/ensembles.ts';
import { inspectRoutes, type PromptInspector } from './routes/inspect.ts';
import { promptsRoutes } from './routes/prompts.ts';
import { healthRoutes } from './routes/system.ts';
import { tasksRoutes } from './routes/tasks.ts';
import { tenantsRoutes, whoamiRoutes } from './routes/tenants.ts';

export interface AppDeps {
  store: PromptStore;
  spec: ModelSpec;
  config: ServerConfig;
  logger?: Logger;
  /** The route modules, in mount order (default: /healthz and the tenant API, `apiRoutes()`). */
  routes?: readonly RouteModule[];
  /** Runs first for every request: the request log line and metrics (server/observe.ts). */
  observe?: RequestHandler;
  /** While it returns true, every module not marked `whileDraining` answers 503 DRAINING. */
  draining?: () => boolean;
  /** Called for each request refused while draining (the rejection metric). */
  onDrainRefusal?: () => void;
  /** Retry-After for a refusal that does not say (the scheduler's estimate). */
  retryAfterEstimate?: () => number;
}

/**
 * The store-backed tenant API: tenants, whoami, (inspect,) prompts, ensembles,
 * then `taskScoped` (other routes under /v1/tasks/:task/, such as jobs; and
 * classify, whose route is a fast one), then tasks last: its /v1/tasks mount authenticates and parses the
 * JSON body of every path under it, so a route after it would be
 * authenticated twice and have its body read before its own gate and limit.
 */
export function apiRoutes(inspector?: PromptInspector, taskScoped: readonly RouteModule[] = []): RouteModule[] {
  return [tenantsRoutes, whoamiRoutes, ...(inspector ? [inspectRoutes(inspector)] : []), promptsRoutes, ensemblesRoutes, ...taskScoped, tasksRoutes];
}

export function createApp(deps: AppDeps): Express {
  const { store, config, logger } = deps;
  const modules = deps.routes ?? [healthRoutes(), ...apiRoutes()];
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  app.use(requestIds());
  if (deps.observe) app.use(deps.observe);
  // API keys travel in /v1 bodies (tenant and key creation): no cache may keep any /v1 answer.
  app.use('/v1', (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });

  const ctx: RouteContext = {
    store, spec: deps.spec, config, ...(logger ? { logger } : {}), modules,
    tenantAuth: requireTenant(config, store),
    adminAuth: requireAdmin(config, store),
    jsonBody: express.json({ limit: config.maxJsonBytes, strict: true, verify: jsonDepthGuard(config.maxJsonDepth) }),
    mount(path, ...handlers) {
      for (const h of handlers) labelRoutes(h, path);
      app.use(path, mountLabel(path), ...handlers);
    },
  };
  for (const m of modules) if (m.whileDraining) m.mount?.(app, ctx);
  const draining = deps.draining;
  if (draining) {
    app.use((_req: Request, res: Response, next: NextFunction) => {
      if (!draining()) return next();
      deps.onDrainRefusal?.();
      next(drainRefusal(res));
    });
  }
  for (const m of modules) if (!m.whileDraining) m.mount?.(app, ctx);
  labelRoutes(app.router);

  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(new SoftserveError('NOT_FOUND', `no route ${req.method} ${req.path}`));
  });
  app.use(errorHandler({ logger, retryAfterEstimate: deps.retryAfterEstimate }));
  return app;
}
