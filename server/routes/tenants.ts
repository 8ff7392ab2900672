// Tenant administration (admin key only): /v1/tenants. A tenant's API key is
// returned once, when it is made; only its hash is kept.

import express, { type Request, type Response } from 'express';

import { SoftserveError } from '../../kernels/errors.ts';
import type { PromptStore } from '../../prompts/store.ts';
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
