// The one way to add HTTP routes: a RouteModule. Each file in server/routes/
// exports one (or a factory for one) that mounts its routes on the app (or,
// for the serving hot path only, declares them as fast routes answered
// before the app: server/fast-path.ts) and carries their OpenAPI fragment (paths and the schemas they reference), so a
// route and its documentation change together (fastify's lib/route.js keeps a
// route's schema with the route the same way). server/app.ts mounts a list of
// modules; /openapi.json is the union of their fragments.
//
// Metric labels come from the route that matched: the module's mount pattern
// joined with the route's own pattern, every `:param` written `:id` (so
// `/v1/tasks/:id/classify`; a fast route's label is made the same way),
// bounded by construction.

import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';

import type { ModelSpec } from '../models/spec.ts';
import type { PromptStore } from '../prompts/store.ts';
import type { ServerConfig } from './config.ts';
import type { FastRoute } from './fast-path.ts';
import type { Json } from './openapi.ts';

export interface RouteContext {
  store: PromptStore;
  spec: ModelSpec;
  config: ServerConfig;
  logger?: Logger;
  /** Authenticates a tenant key; the tenant is then `tenantOf(res)`. */
  tenantAuth: RequestHandler;
  /** Admits the admin key only. */
  adminAuth: RequestHandler;
  /** Parses application/json bodies within the configured limit. */
  jsonBody: RequestHandler;
  /**
   * `app.use(path, ...handlers)` for a router: its routes are labelled with
   * `path` + their own pattern in the request metrics.
   */
  mount(path: string, ...handlers: RequestHandler[]): void;
  /** Every module of the app, in mount order (the OpenAPI document is their union). */
  modules: readonly RouteModule[];
}

export interface OpenApiFragment {
  /** Paths in OpenAPI form (`{param}`), each with its operations. */
  paths: Record<string, Json>;
  /** Component schemas the paths reference (`#/components/schemas/Name`). */
  schemas?: Record<string, Json>;
}

export interface RouteModule {
  /** For error messages and notes: what the module serves. */
  name: string;
  /** Registers the module's express routes. */
  mount?(app: Express, ctx: RouteContext): void;
  /** Routes the server's listener answers before express sees the request (server/fast-path.ts, `fastRoute`): the hot path only; `createApp` leaves them alone. */
  fast?: readonly FastRoute[];
  /** What /openapi.json says about them. */
  openapi?: OpenApiFragment;
  /** Answers while the server drains (probes, metrics, docs); everything else gets 503 DRAINING. */
  whileDraining?: boolean;
}

/** The label of a route pattern: params collapsed to `:id`, no trailing slash. */
export function patternLabel(pattern: string): string {
  const label = pattern.replace(/:[A-Za-z0-9_]+/g, ':id').replace(/\/+/g, '/');
  return label.length > 1 ? label.replace(/\/$/, '') : label;
}

/** The request's metric label: the last route (or module mount) it matched, else 'other'. */
export function routeLabelOf(res: Response): string {
  return typeof res.locals.routeLabel === 'string' ? res.locals.routeLabel : 'other';
}

interface RouteLayer { route?: { path: unknown }; handle: (req: Request, res: Response, next: NextFunction) => unknown }

/**
 * Makes every route already registered on `router` (an express app's router
 * or a Router) set its label when it matches. The route's handler chain is
 * left as it is; only the layer's entry point is wrapped.
 */
export function labelRoutes(router: unknown, base = ''): void {
  const stack = (router as { stack?: RouteLayer[] }).stack;
  if (!Array.isArray(stack)) return;
  for (const layer of stack) {
    if (!layer.route || typeof layer.route.path !== 'string' || (layer.handle as { labelled?: boolean }).labelled) continue;
    const label = patternLabel(`${base}${layer.route.path}`);
    const handle = layer.handle;
    const labelled = (req: Request, res: Response, next: NextFunction) => {
      res.locals.routeLabel = label;
      return handle(req, res, next);
    };
    labelled.labelled = true;
    layer.handle = labelled;
  }
}

/** Middleware for a mount point: requests refused before a route matches (auth, body limits) carry the mount's label. */
export function mountLabel(path: string): RequestHandler {
  const label = patternLabel(path);
  return (_req: Request, res: Response, next: NextFunction) => {
    res.locals.routeLabel = label;
    next();
  };
}
