// The HTTP application: routes for tenants (admin), tasks, prompts and
// ensembles, JSON errors `{error: {code, message, details?}}` with the status
// kernels/errors.ts assigns, body limits, and 404 for anything unknown.
//
// Other parts (the classify route, training jobs) plug in through
// `extensions`, which run after the built-in routes and before the 404 and
// error handlers, with the same auth and body-parsing middleware.

import express, { type ErrorRequestHandler, type Express, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

import { isSoftserveError, SoftserveError, type ErrorCode } from '../kernels/errors.ts';
import type { ModelSpec } from '../models/spec.ts';
import type { PromptStore } from '../prompts/store.ts';
import { metricsAuth, requireAdmin, requireTenant, tenantOf } from './auth.ts';
import type { ServerConfig } from './config.ts';
import { requireJson } from './json-only.ts';
import { redactPaths } from './redact.ts';
import { requestIds, requestLog } from './request-id.ts';
import { ensemblesRouter } from './routes/ensembles.ts';
import { inspectRouter, type PromptInspector } from './routes/inspect.ts';
import { promptsRouter } from './routes/prompts.ts';
import { tasksRouter } from './routes/tasks.ts';
import { tenantsRouter } from './routes/tenants.ts';
import { tenantView } from './routes/views.ts';

export interface AppContext {
  app: Express;
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
}

export type AppExtension = (ctx: AppContext) => void;

export interface AppDeps {
  store: PromptStore;
  spec: ModelSpec;
  config: ServerConfig;
  logger?: Logger;
  /** Served at GET /metrics when given. */
  registry?: Registry;
  extensions?: AppExtension[];
  /** Serves GET /v1/tasks/:task/prompts/:name/inspect when given. */
  inspector?: PromptInspector;
}

/** Maps body-parser's errors (they carry `type` and `status`) to our codes. */
function fromHttpError(err: { type?: unknown; status?: unknown; message?: unknown }): SoftserveError | null {
  const status = typeof err.status === 'number' ? err.status : undefined;
  if (status === undefined || status < 400 || status >= 500) return null;
  const byType: Record<string, ErrorCode> = {
    'entity.too.large': 'PAYLOAD_TOO_LARGE',
    'entity.parse.failed': 'INVALID_JSON',
    'charset.unsupported': 'UNSUPPORTED_MEDIA_TYPE',
    'encoding.unsupported': 'UNSUPPORTED_MEDIA_TYPE',
    'entity.verify.failed': 'BAD_REQUEST',
    'request.aborted': 'BAD_REQUEST',
    'request.size.invalid': 'BAD_REQUEST',
  };
  const code = (typeof err.type === 'string' ? byType[err.type] : undefined) ?? (status === 413 ? 'PAYLOAD_TOO_LARGE' : 'BAD_REQUEST');
  const message = code === 'INVALID_JSON' ? `body is not valid JSON: ${String(err.message)}` : String(err.message ?? 'bad request');
  return new SoftserveError(code, message);
}

export function createApp(deps: AppDeps): Express {
  const { store, config, logger } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  const jsonBody = express.json({ limit: config.maxJsonBytes, strict: true });
  const tenantAuth = requireTenant(config, store);
  const adminAuth = requireAdmin(config, store);

  app.use(requestIds(logger));
  // API keys travel in /v1 bodies (tenant and key creation): no cache may keep any /v1 answer.
  app.use('/v1', (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  if (deps.registry) {
    const registry = deps.registry;
    app.get('/metrics', metricsAuth(config.metricsToken), async (_req, res) => {
      res.type(registry.contentType).send(await registry.metrics());
    });
  }

  app.use('/v1/tenants', adminAuth, requireJson, jsonBody, tenantsRouter(store));
  app.get('/v1/whoami', tenantAuth, (_req, res) => {
    res.json(tenantView(tenantOf(res)));
  });
  if (deps.inspector) app.use('/v1/tasks/:task/prompts/:name/inspect', tenantAuth, inspectRouter(store, deps.inspector));
  app.use('/v1/tasks/:task/prompts', tenantAuth, jsonBody, promptsRouter(store, config));
  app.use('/v1/tasks/:task/ensembles', tenantAuth, requireJson, jsonBody, ensemblesRouter(store));
  app.use('/v1/tasks', tenantAuth, jsonBody, tasksRouter(store));

  const ctx: AppContext = { app, store, spec: deps.spec, config, tenantAuth, adminAuth, jsonBody, ...(logger ? { logger } : {}) };
  for (const ext of deps.extensions ?? []) ext(ctx);

  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(new SoftserveError('NOT_FOUND', `no route ${req.method} ${req.path}`));
  });

  const onError: ErrorRequestHandler = (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    let e: SoftserveError;
    if (isSoftserveError(err)) e = err;
    else e = fromHttpError((err ?? {}) as Record<string, unknown>) ?? new SoftserveError('INTERNAL', 'internal error');
    const requestId = typeof res.locals.requestId === 'string' ? res.locals.requestId : undefined;
    if (e.status >= 500) {
      requestLog(res, logger)?.error({ err, method: req.method, path: req.path, code: e.code }, 'request failed');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // An upload cut off mid-body: answer, then drop the connection.
    if (e.code === 'PAYLOAD_TOO_LARGE' && !req.complete) res.setHeader('Connection', 'close');
    // The server's own failures (500) say only that they happened: their text
    // (fs errors, file names) stays in the log line that carries the same id.
    const internal = e.status === 500;
    // An unknown route's message is the client's own URL path: nothing to redact.
    const message = internal ? `internal error; the server log has the detail under request id ${requestId ?? 'unknown'}`
      : e.code === 'NOT_FOUND' ? e.message : redactPaths(e.message);
    const body: { error: { code: string; message: string; request_id?: string; details?: Record<string, unknown> } } = { error: { code: e.code, message } };
    if (requestId) body.error.request_id = requestId;
    if (e.details && !internal) body.error.details = e.details;
    // A refusal that knows when to come back says so the standard way too (training's 429).
    if (typeof e.details?.retryAfter === 'number' && !res.hasHeader('Retry-After')) res.setHeader('Retry-After', String(e.details.retryAfter));
    res.status(e.status).json(body);
  };
  app.use(onError);
  return app;
}
