// Tenant administration (admin key only): /v1/tenants. A tenant's API key is
// returned once, when it is made; only its hash is kept.

import express, { type Request, type Response } from 'express';

import { SoftserveError } from '../../kernels/errors.ts';
import type { PromptStore } from '../../prompts/store.ts';
import { tenantOf } from '../auth.ts';
import { requireJson } from '../json-only.ts';
import { errors, json, name, ok, ref } from '../openapi.ts';
import type { RouteModule } from '../route-module.ts';
import { keyView, tenantView } from './views.ts';

export function tenantsRouter(store: PromptStore): express.Router {
  const r = express.Router();
  const id = (req: Request): string => req.params.id as string;

  r.post('/', async (req: Request, res: Response) => {
    const b = req.body as unknown;
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new SoftserveError('BAD_REQUEST', 'body must be a JSON object {name}');
    const { tenant, apiKey, key } = await store.createTenant((b as Record<string, unknown>).name as string);
    res.status(201).json({ ...tenantView(tenant), api_key: apiKey, key: keyView(key) });
  });

  r.get('/', async (_req: Request, res: Response) => {
    res.json({ tenants: (await store.listTenants()).map(tenantView) });
  });

  r.get('/:id', async (req: Request, res: Response) => {
    res.json(tenantView(await store.getTenant(id(req))));
  });

  r.delete('/:id', async (req: Request, res: Response) => {
    await store.deleteTenant(id(req));
    res.status(204).end();
  });

  r.post('/:id/keys', async (req: Request, res: Response) => {
    const { apiKey, key } = await store.createApiKey(id(req));
    res.status(201).json({ api_key: apiKey, key: keyView(key) });
  });

  r.get('/:id/keys', async (req: Request, res: Response) => {
    res.json({ keys: (await store.listApiKeys(id(req))).map(keyView) });
  });

  r.delete('/:id/keys/:keyId', async (req: Request, res: Response) => {
    await store.revokeApiKey(id(req), req.params.keyId as string);
    res.status(204).end();
  });

  return r;
}

/** /v1/tenants: admin key, JSON bodies. */
export const tenantsRoutes: RouteModule = {
  name: 'tenants',
  mount(_app, ctx) {
    ctx.mount('/v1/tenants', ctx.adminAuth, requireJson, ctx.jsonBody, tenantsRouter(ctx.store));
  },
  openapi: {
    paths: {
      '/v1/tenants': {
        post: { summary: 'Create a tenant (admin); the API key is shown once', requestBody: { content: json({ type: 'object', required: ['name'], properties: { name: { type: 'string' } } }) }, responses: { 201: ok('tenant and key', { allOf: [ref('Tenant'), ref('NewKey')] }), ...errors(400, 401, 403, 409) } },
        get: { summary: 'List tenants (admin)', responses: { 200: ok('tenants'), ...errors(401, 403) } },
      },
      '/v1/tenants/{id}': {
        parameters: [name('id')],
        get: { summary: 'A tenant (admin)', responses: { 200: ok('tenant', ref('Tenant')), ...errors(401, 403, 404) } },
        delete: { summary: 'Delete a tenant and everything it owns (admin)', responses: { 204: ok('deleted'), ...errors(401, 403, 404) } },
      },
      '/v1/tenants/{id}/keys': {
        parameters: [name('id')],
        post: { summary: 'New API key (admin)', responses: { 201: ok('key', ref('NewKey')), ...errors(401, 403, 404) } },
        get: { summary: 'List keys (admin)', responses: { 200: ok('keys'), ...errors(401, 403, 404) } },
      },
      '/v1/tenants/{id}/keys/{keyId}': {
        parameters: [name('id'), name('keyId')],
        delete: { summary: 'Revoke a key (admin)', responses: { 204: ok('revoked'), ...errors(401, 403, 404) } },
      },
    },
    schemas: {
      Tenant: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, created_at: { type: 'string', format: 'date-time' } } },
      Key: { type: 'object', properties: { id: { type: 'string' }, prefix: { type: 'string' }, created_at: { type: 'string' }, revoked_at: { type: 'string', nullable: true } } },
      NewKey: { type: 'object', properties: { api_key: { type: 'string', description: 'shown once' }, key: ref('Key') } },
    },
  },
};

/** GET /v1/whoami: the calling tenant. */
export const whoamiRoutes: RouteModule = {
  name: 'whoami',
  mount(app, ctx) {
    app.get('/v1/whoami', ctx.tenantAuth, (_req, res) => {
      res.json(tenantView(tenantOf(res)));
    });
  },
  openapi: {
    paths: {
      '/v1/whoami': { get: { summary: 'The calling tenant', responses: { 200: ok('tenant', ref('Tenant')), ...errors(401, 403) } } },
    },
  },
};
