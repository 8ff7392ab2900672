// The routes that are not the tenant API: liveness and readiness probes,
// Prometheus metrics, /info, /openapi.json and the web console. All of them
// answer while the server drains (a load balancer must see /readyz turn 503).

import type { Request, Response } from 'express';
import type { Registry } from 'prom-client';

import { SoftserveError, type ErrorCode } from '../../kernels/errors.ts';
import { metricsAuth } from '../auth.ts';
import { consoleRouter } from '../console.ts';
import { errors, ok, ref, openApiDocument } from '../openapi.ts';
import type { RouteModule } from '../route-module.ts';
import { FAMILIES } from '../../models/families.ts';

/** Why the server is not ready (null: ready). */
export type Readiness = () => 'NOT_READY' | 'DRAINING' | 'INFERENCE_WORKER_RESTARTING' | null;

const NOT_READY_MESSAGE: Record<ReturnType<Readiness> & ErrorCode, string> = {
  NOT_READY: 'model not loaded',
  DRAINING: 'draining',
  INFERENCE_WORKER_RESTARTING: 'the inference worker is restarting',
};

/** GET /healthz (the process is up), and GET /readyz when the server knows its readiness. */
export function healthRoutes(readiness?: Readiness): RouteModule {
  return {
    name: 'health',
    whileDraining: true,
    mount(app, ctx) {
      app.get('/healthz', (_req: Request, res: Response) => {
        res.json({ status: 'ok' });
      });
      if (!readiness) return;
      app.get('/readyz', (_req: Request, res: Response) => {
        const why = readiness();
        if (why !== null) throw new SoftserveError(why, NOT_READY_MESSAGE[why]);
        res.json({ status: 'ready', model: ctx.spec.modelType, family: ctx.spec.family });
      });
    },
    openapi: {
      paths: {
        '/healthz': { get: { summary: 'The process is up', security: [], responses: { 200: ok('up') } } },
        '/readyz': { get: { summary: 'Model loaded, warm-up run, not draining', security: [], responses: { 200: ok('ready'), ...errors(503) } } },
      },
    },
  };
}

/** GET /metrics (Prometheus text), behind SOFTSERVE_METRICS_TOKEN when set. */
/** GET /metrics: this process's registry, or `render` (a front worker's view of every process of its server). */
export function metricsRoutes(registry: Registry, render: () => Promise<string> = () => registry.metrics()): RouteModule {
  return {
    name: 'metrics',
    whileDraining: true,
    mount(app, ctx) {
      app.get('/metrics', metricsAuth(ctx.config.metricsToken), async (_req: Request, res: Response) => {
        res.type(registry.contentType).send(await render());
      });
    },
    openapi: {
      paths: {
        '/metrics': { get: { summary: 'Prometheus metrics (text format)', security: [], responses: { 200: { description: 'metrics', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
      },
    },
  };
}

/** GET /info: the model, the provider, the product version and every client-facing limit (server/info.ts). */
export function infoRoutes(info: Record<string, unknown>): RouteModule {
  return {
    name: 'info',
    whileDraining: true,
    mount(app) {
      app.get('/info', (_req: Request, res: Response) => {
        res.json(info);
      });
    },
    openapi: {
      paths: {
        '/info': { get: { summary: 'The model, the execution provider, the product version and every limit a client must respect', security: [], responses: { 200: ok('server information', ref('Info')) } } },
      },
      schemas: {
        Info: {
          type: 'object',
          properties: {
            product: { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' } } },
            model: {
              type: 'object',
              properties: {
                name: { type: 'string', description: 'the model directory\'s name' }, family: { enum: FAMILIES.map((f) => f.name) }, model_type: { type: 'string' },
                hidden_size: { type: 'integer' }, num_layers: { type: 'integer' }, num_heads: { type: 'integer' }, num_kv_heads: { type: 'integer' },
                head_dim: { type: 'integer' }, vocab_size: { type: 'integer' }, max_positions: { type: 'integer' },
              },
            },
            execution_provider: { enum: ['cpu', 'cuda', 'webgpu'] },
            limits: {
              type: 'object',
              properties: {
                max_inputs: { type: 'integer' }, max_input_chars: { type: 'integer' }, max_text_tokens: { type: 'integer' },
                max_virtual_tokens: { type: 'integer' }, max_labels: { type: 'integer' }, max_ensemble_size: { type: 'integer' },
                max_prompts: { type: 'integer' }, deadline_ms: { type: 'integer' }, max_json_bytes: { type: 'integer' }, max_upload_bytes: { type: 'integer' },
                batch: { type: 'object', properties: { max_rows: { type: 'integer' }, max_tokens: { type: 'integer' }, max_wait_ms: { type: 'integer' } } },
              },
            },
          },
        },
      },
    },
  };
}

/** GET /openapi.json: the union of the app's route modules' fragments (this one's included). */
export function openApiRoutes(): RouteModule {
  return {
    name: 'openapi',
    whileDraining: true,
    mount(app, ctx) {
      const doc = openApiDocument(ctx.modules);
      app.get('/openapi.json', (_req: Request, res: Response) => {
        res.json(doc);
      });
    },
    openapi: {
      paths: {
        '/openapi.json': { get: { summary: 'This document', security: [], responses: { 200: ok('OpenAPI 3') } } },
      },
    },
  };
}

/** /console: the web console's static files (server/console.ts). */
export const consoleRoutes: RouteModule = {
  name: 'console',
  whileDraining: true,
  mount(_app, ctx) {
    ctx.mount('/console', consoleRouter());
  },
};
